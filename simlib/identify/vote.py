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
    """(support, (track, bin)) of every pooled bin, best first: each query segment counts
    its best hit in the bin and its right neighbour."""
    scores: dict[tuple[int, int], dict[int, float]] = {}
    rows = zip(query_idx.tolist(), track.tolist(), bins.tolist(), weight.tolist(), strict=True)
    for q, t, b, w in rows:
        for key in ((t, b), (t, b - 1)):  # bin b pooled with b + 1 is keyed by b
            per_query = scores.setdefault(key, {})
            per_query[q] = max(per_query.get(q, 0.0), w)
    return sorted(((sum(v.values()) / scale, k) for k, v in scores.items()), reverse=True)
