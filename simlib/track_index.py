"""Annoy `angular` index over one vector per track, for similar-track search.

Annoy item ids are the catalog's track ids, so the index file is all there is:
`build` writes it under a temporary name and `os.replace`s it into place, and
a reader either has the old file (memory-mapped, still valid after the
replace) or the new one, never a half-written one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

N_TREES = 32


def build(path: Path, ids: np.ndarray, vectors: np.ndarray, n_trees: int = N_TREES) -> None:
    """Write the index of `vectors[i]` under item id `ids[i]` to `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else 1
    index = AnnoyIndex(dim, "angular")
    for track_id, vector in zip(ids.tolist(), vectors, strict=True):
        index.add_item(int(track_id), vector.tolist())
    index.build(n_trees, n_jobs=1)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    index.save(str(temporary))
    index.unload()
    os.replace(temporary, path)


class TrackIndex:
    """A memory-mapped track index; several processes share the pages."""

    def __init__(self, path: Path, dim: int) -> None:
        self.dim = dim
        self._index = AnnoyIndex(dim, "angular")
        self._index.load(str(path), prefault=False)

    def __len__(self) -> int:
        return self._index.get_n_items()

    def nearest(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """Up to `n` (track id, cosine similarity) pairs, most similar first."""
        if len(self) == 0:
            return []
        ids, distances = self._index.get_nns_by_vector(
            np.asarray(vector, dtype=np.float32).tolist(),
            n,
            search_k=max(n * N_TREES * 20, 10_000),
            include_distances=True,
        )
        # Annoy's angular distance is sqrt(2 - 2 cos) for normalised vectors.
        return [(int(i), 1.0 - d * d / 2.0) for i, d in zip(ids, distances, strict=True)]
