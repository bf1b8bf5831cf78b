"""Stage 2 of a clip's identification: verify each candidate against its track's stored
segments.

Every query segment is compared with the candidate track's stored vector at its aligned
time (interpolated between the two nearest database segments), also where its own
nearest neighbours missed the track, over offsets within OFFSET_SEARCH_S of the vote and
over the playback speeds in SPEEDS. The score is the mean aligned similarity above
VERIFY_FLOOR (rescaled to 0..1) at speed 1; its offset is the reported one, finer than the
vote's bins. A candidate's margin is its score minus RUNNER_UP_WEIGHT times the best other
track's, which discounts clips that match several tracks about equally. The best track's
other offsets that fit nearly as well (its repeats: other passes of a looping tune) are
listed for the source check to choose from.

A match must also keep time with its track: a clip that fits clearly better at a speed
beyond MAX_SPEED_CHANGE (a game's "last lap" rendition, 10 % faster) is another
recording, although its offsets drift too slowly over a few seconds for the vote to tell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from simlib.identify.vote import Candidate
from simlib.types import Segments

RUNNER_UP_WEIGHT = 0.5
"""How much of the best other track's score is taken off a candidate's margin (0.25-0.75
fit the calibration clips about equally well; 1 lost matches)."""
VERIFY_FLOOR = 0.2
"""Aligned similarities count above this, rescaled to 0..1. Lower than the vote's floor:
every segment is compared with the aligned one, not with a shortlist, so weak agreement
of noisy segments adds evidence."""
OFFSET_SEARCH_S, OFFSET_STEP_S = 0.5, 0.1
"""Offsets tried around a candidate's voted offset, seconds."""
REPEAT_RATIO, REPEATS, REPEAT_GAP_S = 0.95, 6, 1.5
"""Other offsets listed as an alignment's repeats: those fitting at least REPEAT_RATIO as
well, at most REPEATS (each costs the source check a decode; long looping tracks have
many passes: of 88 test clips whose best track had 3 or more, 66 / 70 / 70 / 71 found the
right pass with at most 3 / 6 / 10 / 20), more than REPEAT_GAP_S apart (the benchmark's
offset tolerance)."""
SPEEDS = (0.90, 0.93, 0.96, 1.0, 1.04, 1.07, 1.10)
"""Playback speeds of the clip relative to the track tried."""
MAX_SPEED_CHANGE = 0.05
"""A clip whose best-fitting speed is further from 1 than this is not a match (the encoder
is trained on +-3 % speed changes; 0.96 and 1.04 in SPEEDS count as the track's speed)."""
SPEED_EVIDENCE = 1.02
"""Another speed is the clip's only when it scores this many times the best at speed 1,
and only when it moves the clip's last segment at least half a database hop away from
where speed 1 puts it: smaller drifts are within the interpolation's reach."""


@dataclass(frozen=True)
class Alignment:
    """A verified candidate: how well the whole clip agrees with its track at `offset_s`."""

    track_id: int
    offset_s: float
    """Track time at clip time 0 (track time = clip time + offset_s), seconds."""
    score: float
    """Mean over query segments of (aligned similarity - VERIFY_FLOOR) / (1 - VERIFY_FLOOR),
    clipped at 0; 0..1."""
    speed: float
    """Best-fitting track seconds per clip second among SPEEDS (1.0 unless another speed
    scores SPEED_EVIDENCE times better)."""
    votes: int
    margin: float = 0.0
    """score minus RUNNER_UP_WEIGHT times the best score of any other verified track."""
    repeats: tuple[float, ...] = ()
    """Other offsets where the clip fits nearly as well, seconds (the best alignment's only)."""

    def keeps_time(self) -> bool:
        """Whether the clip plays at its track's speed, within MAX_SPEED_CHANGE."""
        return abs(self.speed - 1.0) <= MAX_SPEED_CHANGE


def aligned_similarity(
    query: Segments, track: Segments, offsets_s: np.ndarray, speeds: np.ndarray, hop_s: float
) -> np.ndarray:
    """(speeds, offsets, query segments) cosine of each query segment with `track` at
    track time = clip centre + offset + speed x (segment time - clip centre), interpolated
    linearly between the track's segments (every `hop_s` from 0 s, some may be missing);
    0 where the track has no segment within `hop_s` (past its ends, digital silence)."""
    centre = float(query.start_s.mean()) if len(query) else 0.0
    when = (
        centre
        + offsets_s[None, :, None]
        + speeds[:, None, None] * (query.start_s[None, None, :] - centre)
    )
    if len(track) == 0 or len(query) == 0:
        return np.zeros(when.shape)
    slot = np.round(track.start_s / hop_s).astype(np.int64)
    first, n = int(slot.min()), int(slot.max() - slot.min()) + 1
    cosine = np.zeros((len(query), n + 1), np.float32)  # column n: no segment
    cosine[:, slot - first] = query.vectors.astype(np.float32) @ track.vectors.astype(np.float32).T
    present = np.zeros(n + 1, np.float32)
    present[slot - first] = 1.0
    position = when / hop_s - first
    below = np.floor(position).astype(np.int64)
    rows = np.arange(len(query))
    summed, total = np.zeros(when.shape), np.zeros(when.shape)
    for column, weight in ((below, 1.0 - (position - below)), (below + 1, position - below)):
        column = np.where((column >= 0) & (column < n), column, n)
        weight = weight * present[column]
        summed += weight * cosine[rows, column]
        total += weight
    return np.divide(summed, total, out=np.zeros(when.shape), where=total > 0)


def fit_score(aligned: np.ndarray) -> np.ndarray:
    """Mean over the last axis (query segments) of aligned similarity above VERIFY_FLOOR,
    rescaled to 0..1."""
    return np.clip(aligned - VERIFY_FLOOR, 0.0, None).mean(axis=-1) / (1.0 - VERIFY_FLOOR)


def find_repeats(
    query: Segments, track: Segments, offset_s: float, score: float, hop_s: float
) -> tuple[float, ...]:
    """Up to REPEATS other offsets (best first, each more than REPEAT_GAP_S from `offset_s`
    and from each other) where the clip fits `track` at speed 1 with at least REPEAT_RATIO
    times `score`: the other passes of a looping tune, which the vectors cannot tell apart."""
    if len(query) == 0 or len(track) == 0:
        return ()
    lo = float(track.start_s.min() - query.start_s.min())
    hi = float(track.start_s.max() - query.start_s.max())
    offsets = np.arange(lo, hi + 1e-9, OFFSET_STEP_S)
    if offsets.size < 3:
        return ()
    curve = fit_score(aligned_similarity(query, track, offsets, np.ones(1), hop_s)[0])
    inner = curve[1:-1]
    peak = np.flatnonzero((inner >= curve[:-2]) & (inner >= curve[2:])) + 1
    peak = peak[
        (curve[peak] >= REPEAT_RATIO * score) & (np.abs(offsets[peak] - offset_s) > REPEAT_GAP_S)
    ]
    chosen: list[float] = []
    for i in peak[np.argsort(-curve[peak], kind="stable")]:
        if len(chosen) == REPEATS:
            break
        if all(abs(offsets[i] - other) > REPEAT_GAP_S for other in chosen):
            chosen.append(float(offsets[i]))
    return tuple(chosen)


def verify(candidate: Candidate, query: Segments, track: Segments, hop_s: float) -> Alignment:
    """Score `candidate` on every query segment against its track's stored vectors (`track`),
    over offsets within OFFSET_SEARCH_S of its vote and over SPEEDS; the best offset at
    speed 1 gives score and offset, the best (speed, offset) overall the speed."""
    steps = np.arange(-OFFSET_SEARCH_S, OFFSET_SEARCH_S + 1e-9, OFFSET_STEP_S)
    speeds = np.asarray(SPEEDS)
    scores = fit_score(aligned_similarity(query, track, candidate.offset_s + steps, speeds, hop_s))
    at_speed_one = scores[SPEEDS.index(1.0)]
    span_s = float(query.start_s.max() - query.start_s.min()) if len(query) else 0.0
    telling = np.abs(speeds - 1.0) * span_s >= hop_s / 2
    best_other = np.where(telling, scores.max(axis=1), -np.inf)
    best_speed = int(np.argmax(best_other))
    clear = best_other[best_speed] > SPEED_EVIDENCE * at_speed_one.max()
    offset = candidate.offset_s + float(steps[int(np.argmax(at_speed_one))])
    return Alignment(
        track_id=candidate.track_id,
        offset_s=offset,
        score=float(at_speed_one.max()),
        speed=float(speeds[best_speed]) if clear else 1.0,
        votes=candidate.votes,
    )


def align(
    candidates: tuple[Candidate, ...],
    query: Segments,
    track_segments: Callable[[int], Segments | None],
    hop_s: float,
) -> tuple[Alignment, ...]:
    """Every candidate verified against its track's stored segments (`track_segments(id)`,
    None for a track no longer in the library), best score first, each with its margin over
    the best other track, the best with its repeats."""
    verified, tracks = [], {}
    for candidate in candidates:
        track = track_segments(candidate.track_id)
        if track is not None and len(track):
            verified.append(verify(candidate, query, track, hop_s))
            tracks[candidate.track_id] = track
    verified.sort(key=lambda a: a.score, reverse=True)
    ranked = []
    for i, found in enumerate(verified):
        other = verified[1 if i == 0 else 0].score if len(verified) > 1 else 0.0
        ranked.append(replace(found, margin=found.score - RUNNER_UP_WEIGHT * other))
    if ranked:
        best = ranked[0]
        repeats = find_repeats(query, tracks[best.track_id], best.offset_s, best.score, hop_s)
        ranked[0] = replace(best, repeats=repeats)
    return tuple(ranked)
