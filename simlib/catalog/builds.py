"""Which index build is current, and the tracks analysed since it.

An index build records the catalog generation it holds. Tracks analysed after that
(new files, or new audio in a known file) are missing or stale in the index until the
next build, so a query searches them exactly and ignores the index's entries for them.
Tracks deleted since are no longer in the catalog, and queries drop them on lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simlib.catalog.store import Catalog
from simlib.config import SimlibError


@dataclass(frozen=True)
class IndexBuild:
    """The catalog's record of an index: where it is and what it holds."""

    name: str
    path: Path
    model_version: str
    dim: int
    generation: int


def current_build(catalog: Catalog, name: str, model_version: str) -> IndexBuild:
    """The live build of index `name`, which must hold vectors of `model_version`."""
    info = catalog.index_info(name)
    if info is None:
        raise SimlibError(f"no {name} index yet: run `simlib scan DIR` first")
    if info["model_version"] != model_version:
        raise SimlibError(f"the {name} index is from another model: run `simlib scan`")
    return IndexBuild(
        name, Path(info["path"]), info["model_version"], info["dim"] or 0, info["generation"]
    )


@dataclass(frozen=True)
class Found:
    """What a vector search found: one row per (query vector, item) pair."""

    query: np.ndarray
    """Row of the query vector that found the item."""
    track_id: np.ndarray
    at_s: np.ndarray
    """Where the item starts in its track, seconds (0 for one vector per track)."""
    score: np.ndarray
    """Higher is nearer; a cosine for every index simlib builds."""

    def __len__(self) -> int:
        return int(self.track_id.shape[0])


@dataclass(frozen=True)
class AddedSince:
    """The analysis rows of every track analysed after an index build."""

    track_id: np.ndarray
    at_s: np.ndarray
    vectors: np.ndarray

    @classmethod
    def segments(cls, catalog: Catalog, model: str, build: IndexBuild) -> AddedSince:
        """Fingerprint segments of the tracks analysed since `build`."""
        rows = list(catalog.segments(model, since=build.generation))
        if not rows:
            return cls.empty()
        return cls(
            np.concatenate([np.full(len(s), i, np.int64) for i, s in rows]),
            np.concatenate([s.start_s for _, s in rows]).astype(np.float32),
            np.concatenate([s.vectors for _, s in rows]).astype(np.float32),
        )

    @classmethod
    def embeddings(cls, catalog: Catalog, model: str, build: IndexBuild) -> AddedSince:
        """Track embeddings of the tracks analysed since `build`."""
        ids, vectors = catalog.vectors(model, since=build.generation)
        if not ids.size:
            return cls.empty()
        return cls(ids, np.zeros(ids.size, np.float32), vectors.astype(np.float32))

    @classmethod
    def empty(cls) -> AddedSince:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 1), np.float32))

    def merge(self, found: Found, queries: np.ndarray, k: int) -> Found:
        """`found` without the rows of tracks analysed since, plus the `k` nearest rows of
        those tracks to each of `queries` by dot product (the rows must be in the space
        the queries are in)."""
        if self.track_id.size == 0 or len(queries) == 0:
            return found
        keep = ~np.isin(found.track_id, self.track_id)
        score = np.asarray(queries, np.float32) @ self.vectors.T
        k = min(k, self.track_id.size)
        best = np.argpartition(-score, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(queries)), k)
        cols = best.reshape(-1)
        return Found(
            query=np.concatenate([found.query[keep], rows]),
            track_id=np.concatenate([found.track_id[keep], self.track_id[cols]]),
            at_s=np.concatenate([found.at_s[keep], self.at_s[cols]]),
            score=np.concatenate([found.score[keep], score[rows, cols]]),
        )
