"""Turn nearest-segment hits into ranked (track, offset) matches with a calibrated confidence.

Pure numpy, two stages.

1. Vote (`candidates`). Each query segment votes once per (track, offset bin) with the
   similarity of its best hit there; a bin's support is its summed similarity above
   `min_similarity` (rescaled to 0..1) over the number of query segments. The SHORTLIST
   best-supported tracks go on.
2. Verify (`verify`). Every query segment is compared with the candidate track's stored
   vector at its aligned time (interpolated between the two nearest database segments),
   also where its own nearest neighbours missed the track, over offsets within
   OFFSET_SEARCH_S of the vote and over the playback speeds in SPEEDS. The score is the mean
   aligned similarity above VERIFY_FLOOR (rescaled to 0..1) at speed 1; its offset is the
   reported one, finer than the vote's bins.

A candidate's margin is its score minus RUNNER_UP_WEIGHT times the best other track's:
the runner-up term discounts clips that match several tracks about equally. Confidence is
a logistic function of the margin (slope and midpoint are fitted by
benchmarks/identify.py --calibrate and ship with the model weights). A match must also
keep time with its track: a clip that fits its track clearly better at a speed beyond
MAX_SPEED_CHANGE (a game's "last lap" rendition, 10 % faster) is another recording, although
its offsets drift too slowly over a few seconds for the offset bins alone to tell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simlib.types import Match, Segments

NO_MATCH_THRESHOLD = 0.5
"""Matches whose confidence is below this are not reported."""
MIN_SIMILARITY = 0.5
"""Hits at or below this cosine similarity count nothing; above it a hit weighs
(similarity - MIN_SIMILARITY) / (1 - MIN_SIMILARITY). The nearest neighbours of unrelated
audio have median similarity ~0.6 and aligned true hits ~0.77, so strong hits dominate."""
RUNNER_UP_WEIGHT = 0.5
"""How much of the best other track's score is taken off a candidate's margin (0.25-0.75
were within noise of each other on the benchmark's calibration clips; 1 lost matches)."""
VERIFY_FLOOR = 0.2
"""Aligned similarities count above this in a verified score, rescaled to 0..1. Lower than
MIN_SIMILARITY: every segment is compared with the aligned one, not with a shortlist, so
weak agreement of noisy segments adds evidence. 0.2 separated seed-7 clips best (0.3-0.5
tried)."""
SHORTLIST = 5
"""Tracks verified per clip (more when more matches are asked for)."""
OFFSET_SEARCH_S, OFFSET_STEP_S = 0.5, 0.1
"""Offsets tried around a candidate's voted offset, seconds."""
SPEEDS = (0.90, 0.93, 0.96, 1.0, 1.04, 1.07, 1.10)
"""Playback speeds of the clip relative to the track tried in verification."""
MAX_SPEED_CHANGE = 0.05
"""A clip whose best-fitting speed is further from 1 than this is not a match (the encoder
is trained on +-3 % speed changes; 0.96 and 1.04 in SPEEDS count as the track's speed)."""
SPEED_EVIDENCE = 1.02
"""Another speed is the clip's only when it scores this many times the best at speed 1,
and only when it moves the clip's last segment at least half a database hop away from
where speed 1 puts it: smaller drifts are within the interpolation's reach (a 3 s clip
cannot tell 10 % faster from the same speed)."""


@dataclass
class Hits:
    """Nearest database segments of every query segment, flattened (one row per hit)."""

    query_s: np.ndarray
    """Start of the query segment in the clip, seconds."""
    track_id: np.ndarray
    db_s: np.ndarray
    """Start of the database segment in its track, seconds."""
    similarity: np.ndarray
    """Cosine similarity, -1..1."""
    n_query: int
    """Number of query segments searched (hits may be fewer when the index is small)."""

    def __len__(self) -> int:
        return int(self.track_id.shape[0])


@dataclass
class Candidate:
    """One (track, offset) alignment and how much of the clip supports it (0..1)."""

    track_id: int
    offset_s: float
    support: float
    votes: int


@dataclass
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

    def keeps_time(self) -> bool:
        """Whether the clip plays at its track's speed, within MAX_SPEED_CHANGE."""
        return abs(self.speed - 1.0) <= MAX_SPEED_CHANGE


def candidates(
    hits: Hits,
    bin_s: float = 0.5,
    min_similarity: float = MIN_SIMILARITY,
    limit: int | None = None,
) -> list[Candidate]:
    """Best alignment per track, ranked by support (at most `limit`); track time = clip
    time + offset_s.

    Offsets are binned in `bin_s` seconds and each bin is pooled with its right
    neighbour, so an alignment straddling two bins is not split. Hits below
    `min_similarity` count nothing.
    """
    keep = hits.similarity > min_similarity
    if hits.n_query == 0 or not keep.any():
        return []
    query_s, track, db_s = hits.query_s[keep], hits.track_id[keep], hits.db_s[keep]
    weight = hits.similarity[keep] - min_similarity
    offset = db_s - query_s
    bins = np.floor(offset / bin_s).astype(np.int64)
    _, query_idx = np.unique(query_s, return_inverse=True)
    scores: dict[tuple[int, int], dict[int, float]] = {}
    rows = zip(query_idx.tolist(), track.tolist(), bins.tolist(), weight.tolist(), strict=True)
    for q, t, b, w in rows:
        for key in ((t, b), (t, b - 1)):  # bin b pooled with b + 1 is keyed by b
            per_query = scores.setdefault(key, {})
            per_query[q] = max(per_query.get(q, 0.0), w)
    scale = hits.n_query * (1.0 - min_similarity)
    ranked = sorted(((sum(v.values()) / scale, k) for k, v in scores.items()), reverse=True)
    out: list[Candidate] = []
    seen: set[int] = set()
    for support, (t, b) in ranked:
        if t in seen:
            continue
        if len(out) == limit:
            break
        seen.add(t)
        sel = (track == t) & (bins >= b) & (bins <= b + 1)
        out.append(
            Candidate(
                track_id=t,
                offset_s=float(np.average(offset[sel], weights=weight[sel])),
                support=float(support),
                votes=int(np.unique(query_idx[sel]).size),
            )
        )
    return out


def aligned_similarity(
    query: Segments, track: Segments, offsets_s: np.ndarray, speeds: np.ndarray, hop_s: float
) -> np.ndarray:
    """(speeds, offsets, query segments) cosine of each query segment with `track` at
    track time = clip centre + offset + speed x (segment time - clip centre), interpolated
    linearly between database segments `hop_s` apart; 0 where the track has no segment
    within `hop_s` (past its ends, digital silence)."""
    centre = float(query.start_s.mean())
    when = (
        centre
        + offsets_s[None, :, None]
        + speeds[:, None, None] * (query.start_s[None, None, :] - centre)
    )
    near = (track.start_s >= when.min() - hop_s) & (track.start_s <= when.max() + hop_s)
    if not near.any():
        return np.zeros(when.shape)
    cosine = query.vectors.astype(np.float32) @ track.vectors[near].astype(np.float32).T
    kernel = np.clip(1.0 - np.abs(when[..., None] - track.start_s[near]) / hop_s, 0.0, None)
    total = kernel.sum(axis=-1)
    summed = np.einsum("soqd,qd->soq", kernel, cosine)
    return np.divide(summed, total, out=np.zeros(when.shape), where=total > 0)


def verify(candidate: Candidate, query: Segments, track: Segments, hop_s: float) -> Alignment:
    """Score `candidate` on every query segment against its track's stored vectors (`track`),
    over offsets within OFFSET_SEARCH_S of its vote and over SPEEDS; the best offset at
    speed 1 gives score and offset, the best (speed, offset) overall the speed."""
    steps = np.arange(-OFFSET_SEARCH_S, OFFSET_SEARCH_S + 1e-9, OFFSET_STEP_S)
    speeds = np.asarray(SPEEDS)
    aligned = aligned_similarity(query, track, candidate.offset_s + steps, speeds, hop_s)
    scores = np.clip(aligned - VERIFY_FLOOR, 0.0, None).mean(axis=-1) / (1.0 - VERIFY_FLOOR)
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


def alignments(
    hits: Hits,
    query: Segments,
    track_segments: Callable[[int], Segments | None],
    bin_s: float = 0.5,
    min_similarity: float = MIN_SIMILARITY,
    shortlist: int = SHORTLIST,
) -> list[Alignment]:
    """The `shortlist` best-supported candidates verified (`verify`) against their tracks'
    stored segments (`track_segments(track_id)`, None for a track no longer in the library),
    ranked by score, each with its margin over the best other track."""
    verified = []
    for candidate in candidates(hits, bin_s, min_similarity, shortlist):
        track = track_segments(candidate.track_id)
        if track is not None and len(track):
            verified.append(verify(candidate, query, track, bin_s))
    verified.sort(key=lambda a: a.score, reverse=True)
    for i, found in enumerate(verified):
        other = verified[1 if i == 0 else 0].score if len(verified) > 1 else 0.0
        found.margin = found.score - RUNNER_UP_WEIGHT * other
    return verified


def confidence(margin: float, calibration: tuple[float, float]) -> float:
    """Logistic map of a candidate's margin to 0..1 with (slope, midpoint) `calibration`."""
    slope, mid = calibration
    return float(1.0 / (1.0 + np.exp(-slope * (margin - mid))))


def vote(
    hits: Hits,
    query: Segments,
    track_segments: Callable[[int], Segments | None],
    calibration: tuple[float, float],
    threshold: float = NO_MATCH_THRESHOLD,
    limit: int = 5,
    bin_s: float = 0.5,
    min_similarity: float = MIN_SIMILARITY,
) -> list[Match]:
    """Ranked matches of a clip's `hits` (see `alignments` and `decide`); [] means no match.
    At least SHORTLIST tracks are verified, more when `limit` asks for more."""
    found = alignments(hits, query, track_segments, bin_s, min_similarity, max(limit, SHORTLIST))
    return decide(found, calibration, threshold, limit)


def decide(
    found: list[Alignment],
    calibration: tuple[float, float],
    threshold: float = NO_MATCH_THRESHOLD,
    limit: int = 5,
) -> list[Match]:
    """The alignments that keep time with their track and have confidence >= `threshold`, in
    rank order (at most `limit`)."""
    matches = []
    for aligned in found:
        conf = confidence(aligned.margin, calibration)
        if aligned.keeps_time() and conf >= threshold:
            matches.append(Match(aligned.track_id, aligned.offset_s, conf, aligned.votes))
    return matches[:limit]
