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
"""

from __future__ import annotations

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


def candidates(
    hits: Hits, bin_s: float = 0.5, min_similarity: float = MIN_SIMILARITY
) -> list[Candidate]:
    """Best alignment per track, ranked by support; track time = clip time + offset_s.

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
    for i, cand in enumerate(out):
        other = out[1 if i == 0 else 0].support if len(out) > 1 else 0.0
        cand.margin = cand.support - RUNNER_UP_WEIGHT * other
    return out


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
    for cand in candidates(hits, bin_s, min_similarity)[:limit]:
        conf = confidence(cand.margin, calibration)
        if conf < threshold:
            break
        matches.append(Match(cand.track_id, cand.offset_s, conf, cand.votes))
    return matches
