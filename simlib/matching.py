"""Vote nearest-segment hits into ranked (track, offset) matches with a calibrated confidence.

Pure numpy. Each query segment votes once per (track, offset bin) with the similarity of
its best hit there; a bin's support is its summed similarity above `min_similarity`
(rescaled to 0..1), divided by the number of query segments, so it is near 1 when every
part of the clip agrees on one alignment of one track and near 0 for unrelated audio.
A candidate's margin is its support minus RUNNER_UP_WEIGHT times the best other track's:
support carries most of the evidence, the runner-up term discounts clips where several
tracks are about equally supported (audio that matches everything a little). On the
benchmark's calibration clips a full difference (weight 1) rejected more true matches at
the same false-positive rate. Confidence is a logistic function of the margin (slope and
midpoint are fitted by benchmarks/identify.py --calibrate and ship with the model weights).

A candidate must also keep time with its track: the slope of track time over clip time
through its hits (the clip's speed relative to the track) may differ from 1 by at most
MAX_SPEED_CHANGE, allowing SPEED_SE_FACTOR standard errors of the fit. A faster or slower
rendition of a library track (a game's "last lap" version) is another recording, not a
match, although its offsets drift too slowly over a few seconds for the offset bins alone
to tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlib.types import Match

NO_MATCH_THRESHOLD = 0.5
"""Matches whose confidence is below this are not reported."""
MIN_SIMILARITY = 0.5
"""Hits at or below this cosine similarity count nothing; above it a hit weighs
(similarity - MIN_SIMILARITY) / (1 - MIN_SIMILARITY). The nearest neighbours of unrelated
audio have median similarity ~0.6 and aligned true hits ~0.77, so strong hits dominate."""
RUNNER_UP_WEIGHT = 0.5
"""How much of the best other track's support is taken off a candidate's margin."""
MAX_SPEED_CHANGE = 0.03
"""Largest speed change of a clip against its track still matched (the trained range)."""
SPEED_SE_FACTOR = 2.0
"""Standard errors of the fitted speed allowed beyond MAX_SPEED_CHANGE (short clips fit
their speed loosely: about +-0.07 at 3 s, +-0.03 at 5 s, +-0.01 at 10 s)."""


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
    margin: float = 0.0
    """support minus RUNNER_UP_WEIGHT times the best support of any other track."""
    speed: float = 1.0
    """Fitted track seconds per clip second (1.0 when too few segments to fit)."""
    speed_se: float = math.inf
    """Standard error of `speed`."""

    def keeps_time(self) -> bool:
        """Whether the clip plays at its track's speed, within MAX_SPEED_CHANGE."""
        return abs(self.speed - 1.0) - MAX_SPEED_CHANGE <= SPEED_SE_FACTOR * self.speed_se


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
    best_per_track: list[tuple[float, int, int]] = []
    seen: set[int] = set()
    for support, (t, b) in ranked:
        if t not in seen:
            seen.add(t)
            best_per_track.append((support, t, b))
    out: list[Candidate] = []
    for i, (support, t, b) in enumerate(best_per_track[:limit]):
        sel = (track == t) & (bins >= b) & (bins <= b + 1)
        other = best_per_track[1 if i == 0 else 0][0] if len(best_per_track) > 1 else 0.0
        speed, speed_se = fit_speed(query_idx[sel], query_s[sel], db_s[sel], weight[sel])
        out.append(
            Candidate(
                track_id=t,
                offset_s=float(np.average(offset[sel], weights=weight[sel])),
                support=float(support),
                votes=int(np.unique(query_idx[sel]).size),
                margin=float(support - RUNNER_UP_WEIGHT * other),
                speed=speed,
                speed_se=speed_se,
            )
        )
    return out


def fit_speed(
    query_idx: np.ndarray, query_s: np.ndarray, db_s: np.ndarray, weight: np.ndarray
) -> tuple[float, float]:
    """(slope, standard error) of track time over clip time, weighted least squares through
    the strongest hit of each query segment; (1.0, inf) with fewer than 3 segments."""
    order = np.lexsort((-weight, query_idx))
    first = np.ones(order.size, dtype=bool)
    first[1:] = query_idx[order][1:] != query_idx[order][:-1]
    x, y, w = query_s[order][first], db_s[order][first], weight[order][first]
    if x.size < 3:
        return 1.0, math.inf
    w = w / w.sum()
    x_mean, y_mean = float(w @ x), float(w @ y)
    sxx = float(w @ (x - x_mean) ** 2)
    if sxx <= 0.0:
        return 1.0, math.inf
    slope = float(w @ ((x - x_mean) * (y - y_mean))) / sxx
    residual = y - y_mean - slope * (x - x_mean)
    variance = float(w @ residual**2) * x.size / (x.size - 2)
    return slope, math.sqrt(variance / (sxx * x.size))


def confidence(margin: float, calibration: tuple[float, float]) -> float:
    """Logistic map of a candidate's margin to 0..1 with (slope, midpoint) `calibration`."""
    slope, mid = calibration
    return float(1.0 / (1.0 + np.exp(-slope * (margin - mid))))


def vote(
    hits: Hits,
    calibration: tuple[float, float] = (7.42, 0.228),
    threshold: float = NO_MATCH_THRESHOLD,
    limit: int = 5,
    bin_s: float = 0.5,
    min_similarity: float = MIN_SIMILARITY,
) -> list[Match]:
    """Ranked matches with confidence >= `threshold` (at most `limit`); [] means no match."""
    matches = []
    for cand in candidates(hits, bin_s, min_similarity, limit):
        conf = confidence(cand.margin, calibration)
        if conf < threshold:
            break
        if cand.keeps_time():
            matches.append(Match(cand.track_id, cand.offset_s, conf, cand.votes))
    return matches
