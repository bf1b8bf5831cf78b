"""Stage 1 of a clip's identification: nearest-segment hits vote for (track, offset).

Each query segment votes once per (track, offset bin) with the similarity of its best hit
there; a bin's support is its summed similarity above MIN_SIMILARITY (rescaled to 0..1)
over the number of query segments. The best-supported bin of each track is its candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlib.catalog import Found
from simlib.types import Segments

MIN_SIMILARITY = 0.5
"""Hits at or below this cosine count nothing; above it a hit weighs (similarity -
MIN_SIMILARITY) / (1 - MIN_SIMILARITY). Nearest neighbours of unrelated audio have median
similarity ~0.6 and aligned true hits ~0.77, so strong hits dominate."""


@dataclass(frozen=True)
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

    @classmethod
    def of(cls, found: Found, query: Segments) -> Hits:
        """The hits of `query`'s segments, from a search of their vectors."""
        return cls(
            query_s=np.asarray(query.start_s)[found.query],
            track_id=found.track_id,
            db_s=found.at_s,
            similarity=found.score,
            n_query=len(query),
        )

    def __len__(self) -> int:
        return int(self.track_id.shape[0])


@dataclass(frozen=True)
class Candidate:
    """One (track, offset) alignment and how much of the clip supports it (0..1)."""

    track_id: int
    offset_s: float
    """Track time at clip time 0, seconds."""
    support: float
    votes: int
    """Query segments with a hit in the candidate's bins."""


def candidates(
    hits: Hits, bin_s: float, limit: int | None = None, min_similarity: float = MIN_SIMILARITY
) -> tuple[Candidate, ...]:
    """Best alignment per track, ranked by support (at most `limit`).

    Offsets are binned in `bin_s` seconds and each bin is pooled with its right
    neighbour, so an alignment straddling two bins is not split.
    """
    keep = hits.similarity > min_similarity
    if hits.n_query == 0 or not keep.any():
        return ()
    track, weight = hits.track_id[keep], hits.similarity[keep] - min_similarity
    offset = hits.db_s[keep] - hits.query_s[keep]
    bins = np.floor(offset / bin_s).astype(np.int64)
    _, query_idx = np.unique(hits.query_s[keep], return_inverse=True)
    ranked = _ranked_bins(query_idx, track, bins, weight, hits.n_query * (1.0 - min_similarity))
    out: list[Candidate] = []
    seen: set[int] = set()
    for support, (t, b) in ranked:
        if len(out) == limit:
            break
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
    return tuple(out)


def _ranked_bins(
    query_idx: np.ndarray, track: np.ndarray, bins: np.ndarray, weight: np.ndarray, scale: float
) -> list[tuple[float, tuple[int, int]]]:
    """(support, (track, bin)) of every pooled bin, best first (ties: higher track, then
    bin): each query segment counts its best hit in the bin and its right neighbour."""
    # a hit counts in the pool keyed by its bin and in the one keyed by the bin before
    t, b = np.concatenate([track, track]), np.concatenate([bins, bins - 1])
    q, w = np.concatenate([query_idx, query_idx]), np.tile(weight.astype(np.float64), 2)
    order = np.lexsort((-w, q, b, t))  # by pool, then query segment, best hit first
    t, b, q, w = t[order], b[order], q[order], w[order]
    best = _starts(t, b, q)  # each query segment's best hit in each pool
    t, b, w = t[best], b[best], w[best]
    pools = np.flatnonzero(_starts(t, b))
    support = np.add.reduceat(w, pools) / scale
    t, b = t[pools], b[pools]
    rank = np.lexsort((b, t, support))[::-1]
    keys = zip(t[rank].tolist(), b[rank].tolist(), strict=True)
    return list(zip(support[rank].tolist(), keys, strict=True))


def _starts(*columns: np.ndarray) -> np.ndarray:
    """Where a run of equal rows of sorted `columns` begins."""
    start = np.zeros(len(columns[0]), bool)
    start[:1] = True
    for column in columns:
        start[1:] |= column[1:] != column[:-1]
    return start
