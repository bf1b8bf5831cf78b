"""Annoy index over one vector per track, scored by cosine after centring on the library.

The score of track x for query q is the cosine of (q - c) and (x - c), with c the
mean of the indexed vectors. The embeddings sit in a narrow cone; taking away what
every track shares spreads them out (the model card has the figures). The centre
adapts to each library.

The file is all there is. Annoy item ids are the catalog's track ids, which start at 1.
Item 0 holds the centre. `build` replaces the file atomically: a reader has the old file
(memory-mapped, still valid after the replace) or the new one, never a half-written one,
and never a centre from another build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from simlib.catalog import Found
from simlib.files import replace_atomically

N_TREES = 32
CENTRE_ID = 0


def build(path: Path, ids: np.ndarray, vectors: np.ndarray, n_trees: int = N_TREES) -> None:
    """Write the index of `vectors[i]` (centred) under item id `ids[i]` (>= 1) to `path`,
    atomically."""
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else 1
    centre = vectors.mean(axis=0) if len(ids) else np.zeros(dim, dtype=np.float32)
    index = AnnoyIndex(dim, "angular")
    index.add_item(CENTRE_ID, centre.tolist())
    for track_id, vector in zip(ids.tolist(), vectors, strict=True):
        index.add_item(int(track_id), (vector - centre).tolist())
    index.build(n_trees, n_jobs=1)
    replace_atomically(path, lambda temporary: index.save(str(temporary)))
    index.unload()


class TrackIndex:
    """A memory-mapped track index; several processes share the pages."""

    def __init__(self, path: Path, dim: int) -> None:
        self.dim = dim
        self._index = AnnoyIndex(dim, "angular")
        self._index.load(str(path), prefault=False)
        self.centre = np.asarray(self._index.get_item_vector(CENTRE_ID), dtype=np.float32)

    def __len__(self) -> int:
        """Tracks in the index."""
        return self._index.get_n_items() - 1

    def centred(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) vectors in the space the index ranks in: centred, unit length."""
        return _unit(np.asarray(vectors, dtype=np.float32) - self.centre)

    def nearest(self, query: np.ndarray, n: int) -> Found:
        """Up to `n` tracks nearest to one query vector, highest score first."""
        ids: list[int] = []
        distances: list[float] = []
        if len(self) > 0:
            ids, distances = self._index.get_nns_by_vector(
                (np.asarray(query, dtype=np.float32) - self.centre).tolist(),
                n + 1,
                search_k=max((n + 1) * N_TREES * 20, 10_000),
                include_distances=True,
            )
        keep = [i for i, item in enumerate(ids) if item != CENTRE_ID][:n]
        distance = np.asarray(distances, dtype=np.float32)[keep]
        return Found(
            query=np.zeros(len(keep), np.int64),
            track_id=np.asarray(ids, dtype=np.int64)[keep],
            at_s=np.zeros(len(keep), np.float32),
            score=1.0 - distance**2 / 2.0,  # Annoy's angular distance is sqrt(2 - 2 cos)
        )


def centred_scores(vectors: np.ndarray) -> np.ndarray:
    """(n, n) scores between all (n, dim) `vectors`, as an index built over them ranks."""
    units = _unit(vectors - vectors.mean(axis=0))
    return units @ units.T


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
