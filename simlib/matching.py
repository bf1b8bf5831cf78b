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
   reported one, finer than the vote's bins. The best track's other offsets that fit
   nearly as well (`repeats`: other passes of a looping tune) are listed for the caller's
   source check to choose from.

A candidate's margin is its score minus RUNNER_UP_WEIGHT times the best other track's:
the runner-up term discounts clips that match several tracks about equally. Confidence is
a logistic function of the margin, or of the margin and `source_z` where the caller checked
the alignment against the track's audio (`simlib.source_check`); both are fitted by
benchmarks/identify.py --calibrate and ship with the model weights (`Calibration`). A match
must also keep time with its track: a clip that fits its track clearly better at a speed
beyond MAX_SPEED_CHANGE (a game's "last lap" rendition, 10 % faster) is another recording,
although its offsets drift too slowly over a few seconds for the offset bins alone to tell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
REPEAT_RATIO, REPEATS, REPEAT_GAP_S = 0.95, 3, 1.5
"""Other offsets of an alignment's track listed as its `repeats`: those fitting at least
REPEAT_RATIO as well, at most REPEATS, more than REPEAT_GAP_S apart (the benchmark's offset
tolerance). On seed 7, 9 and 11 clips, 92 % of right-track-wrong-offset answers had the
true offset among the best three such places. Replaying those clips' searches with the
source check choosing the pass, at most 2, 3, 4 and 6 repeats answered 1,735, 1,745,
1,745 and 1,750 of 1,800 right; each repeat costs an excerpt decode."""
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
    repeats: list[float] = field(default_factory=list)
    """Other offsets where the clip fits nearly as well (`repeats`), seconds."""
    source_z: float | None = None
    """Spectral-peak agreement with the track's own audio (`simlib.source_check`), None
    when not checked."""

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


def repeats(
    query: Segments, track: Segments, offset_s: float, score: float, hop_s: float
) -> list[float]:
    """Up to REPEATS other offsets (best first, each more than REPEAT_GAP_S from `offset_s`
    and from each other) where the clip fits `track` at speed 1 with at least REPEAT_RATIO
    times `score`: the other passes of a looping tune, which the vectors cannot tell apart."""
    if len(query) == 0 or len(track) == 0:
        return []
    lo = float(track.start_s.min() - query.start_s.min())
    hi = float(track.start_s.max() - query.start_s.max())
    offsets = np.arange(lo, hi + 1e-9, OFFSET_STEP_S)
    if offsets.size < 3:
        return []
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
    return chosen


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
    verified, tracks = [], {}
    for candidate in candidates(hits, bin_s, min_similarity, shortlist):
        track = track_segments(candidate.track_id)
        if track is not None and len(track):
            verified.append(verify(candidate, query, track, bin_s))
            tracks[candidate.track_id] = track
    verified.sort(key=lambda a: a.score, reverse=True)
    for i, found in enumerate(verified):
        other = verified[1 if i == 0 else 0].score if len(verified) > 1 else 0.0
        found.margin = found.score - RUNNER_UP_WEIGHT * other
    if verified:
        best = verified[0]
        best.repeats = repeats(query, tracks[best.track_id], best.offset_s, best.score, bin_s)
    return verified


@dataclass(frozen=True)
class Calibration:
    """Logistic maps from an alignment's evidence to the probability that it is right."""

    margin: tuple[float, float]
    """(slope, midpoint) on the margin alone."""
    with_source: tuple[float, float, float]
    """(weight of the margin, weight of source_z, bias) for checked alignments."""

    def from_margin(self, margin: float) -> float:
        """0..1 from the margin alone."""
        slope, mid = self.margin
        return _logistic(slope * (margin - mid))

    def confidence(self, aligned: Alignment) -> float:
        """0..1, from margin and source_z where the source was checked."""
        if aligned.source_z is None:
            return self.from_margin(aligned.margin)
        w_margin, w_source, bias = self.with_source
        return _logistic(w_margin * aligned.margin + w_source * aligned.source_z + bias)


def _logistic(logit: float) -> float:
    return float(1.0 / (1.0 + np.exp(-logit)))


def decide(
    found: list[Alignment],
    calibration: Calibration,
    threshold: float = NO_MATCH_THRESHOLD,
    limit: int = 5,
) -> list[Match]:
    """The alignments that keep time with their track and have confidence >= `threshold`,
    most confident first (at most `limit`)."""
    matches = []
    for aligned in found:
        conf = calibration.confidence(aligned)
        if aligned.keeps_time() and conf >= threshold:
            matches.append(Match(aligned.track_id, aligned.offset_s, conf, aligned.votes))
    matches.sort(key=lambda m: m.confidence, reverse=True)
    return matches[:limit]
