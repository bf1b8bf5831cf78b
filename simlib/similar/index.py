"""Annoy index over one vector per track, ranked by a cosine standardised on the library.

A track vector is made of parts (`Part`): the learned embedding, and optionally each
mel band's mean and spread over time (timbre statistics in their own units). The score of
track x for query q is the sum over parts of the part's share times the cosine of
(q - c) / s and (x - c) / s, with c the part's mean over the indexed tracks and s its
standard deviation per dimension (1 for an embedding). The embeddings sit in a narrow
cone; taking away what every track shares spreads them out (the model card has the
figures). Statistics mean something only against the library's own spread: a band that
varies little in this library should not count as much as one that tells its tracks
apart. The centre and the spread adapt to each library.

The file is all there is. Annoy item ids are the catalog's track ids, which start at 1.
Item 0 holds the centre; when a part is standardised, the item after the last track
holds the spread. `build` replaces the file atomically: a reader has the old file
(memory-mapped, still valid after the replace) or the new one, never a half-written one,
and never a centre from another build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from simlib.catalog import Found
from simlib.files import replace_atomically

N_TREES = 32
CENTRE_ID = 0
MIN_SPREAD = 1e-6
"""A dimension constant over the library is divided by this, not by zero (it is 0 anyway)."""


@dataclass(frozen=True)
class Part:
    """`size` consecutive dimensions of a track vector, and how they count in a score."""

    size: int
    share: float = 1.0
    """The part's weight in a score; a ranking's shares add up to 1."""
    standardised: bool = False
    """Divided by the library's spread per dimension (statistics in their own units)."""


@dataclass(frozen=True)
class Ranking:
    """How the index compares track vectors: their parts, in order."""

    parts: tuple[Part, ...]

    @classmethod
    def plain(cls, dim: int) -> Ranking:
        """The centred cosine of whole vectors (one embedding)."""
        return cls((Part(dim),))

    @classmethod
    def from_settings(cls, settings: list | None, dim: int) -> Ranking:
        """The ranking a model's settings name ([[size, share, standardised], ...]), or
        `plain(dim)` for a model without one."""
        if not settings:
            return cls.plain(dim)
        total = sum(float(w) for _, w, _ in settings)
        return cls(tuple(Part(int(s), float(w) / total, bool(z)) for s, w, z in settings))

    @property
    def standardises(self) -> bool:
        return any(p.standardised for p in self.parts)

    def fit(self, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """The centre and spread of a library's (n, dim) `vectors`: their mean, and per
        dimension their standard deviation in standardised parts, else 1."""
        spread = np.ones(dim, dtype=np.float32)
        if not len(vectors):
            return np.zeros(dim, dtype=np.float32), spread
        for part, dims in self._slices():
            if part.standardised:
                spread[dims] = np.maximum(vectors[:, dims].std(axis=0), MIN_SPREAD)
        return vectors.mean(axis=0), spread

    def apply(self, vectors: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """(n, dim) vectors in the space the index ranks in: each part centred, divided by
        the spread, unit length, times the square root of its share (so that a dot product
        is the score)."""
        scaled = (np.asarray(vectors, dtype=np.float32) - centre) / spread
        return np.concatenate(
            [np.sqrt(part.share) * _unit(scaled[:, dims]) for part, dims in self._slices()],
            axis=1,
        )

    def _slices(self) -> list[tuple[Part, slice]]:
        ends = np.cumsum([p.size for p in self.parts]).tolist()
        return [(p, slice(e - p.size, e)) for p, e in zip(self.parts, ends, strict=True)]


def build(
    path: Path,
    ids: np.ndarray,
    vectors: np.ndarray,
    parts: list | None = None,
    n_trees: int = N_TREES,
) -> None:
    """Write the index of `vectors[i]` under item id `ids[i]` (>= 1) to `path`, atomically;
    `parts` are the model's ranking settings (`Ranking.from_settings`)."""
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else 1
    ranking = Ranking.from_settings(parts, dim)
    centre, spread = ranking.fit(vectors, dim)
    index = AnnoyIndex(dim, "angular")
    index.add_item(CENTRE_ID, centre.tolist())
    if len(ids):
        ranked = ranking.apply(vectors, centre, spread)
        for track_id, vector in zip(ids.tolist(), ranked, strict=True):
            index.add_item(int(track_id), vector.tolist())
    if ranking.standardises:
        index.add_item(int(max(ids.tolist(), default=CENTRE_ID)) + 1, spread.tolist())
    index.build(n_trees, n_jobs=1)
    replace_atomically(path, lambda temporary: index.save(str(temporary)))
    index.unload()


class TrackIndex:
    """A memory-mapped track index; several processes share the pages."""

    def __init__(self, path: Path, dim: int, parts: list | None = None) -> None:
        self.dim = dim
        self.ranking = Ranking.from_settings(parts, dim)
        self._index = AnnoyIndex(dim, "angular")
        self._index.load(str(path), prefault=False)
        self.centre = np.asarray(self._index.get_item_vector(CENTRE_ID), dtype=np.float32)
        self._spread_id = self._index.get_n_items() - 1 if self.ranking.standardises else None
        self.spread = (
            np.asarray(self._index.get_item_vector(self._spread_id), dtype=np.float32)
            if self._spread_id is not None
            else np.ones(dim, dtype=np.float32)
        )

    def __len__(self) -> int:
        """Tracks in the index."""
        return self._index.get_n_items() - 1 - (self._spread_id is not None)

    def ranked(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) vectors in the space the index ranks in: a dot product is the score."""
        return self.ranking.apply(vectors, self.centre, self.spread)

    def nearest(self, query: np.ndarray, n: int) -> Found:
        """Up to `n` tracks nearest to one unit query vector in the space `ranked` gives,
        highest score first."""
        ids: list[int] = []
        distances: list[float] = []
        reserved = {CENTRE_ID, self._spread_id} - {None}
        if len(self) > 0:
            wanted = n + len(reserved)
            ids, distances = self._index.get_nns_by_vector(
                np.asarray(query, dtype=np.float32).tolist(),
                wanted,
                search_k=max(wanted * N_TREES * 20, 10_000),
                include_distances=True,
            )
        keep = [i for i, item in enumerate(ids) if item not in reserved][:n]
        distance = np.asarray(distances, dtype=np.float32)[keep]
        return Found(
            query=np.zeros(len(keep), np.int64),
            track_id=np.asarray(ids, dtype=np.int64)[keep],
            at_s=np.zeros(len(keep), np.float32),
            score=1.0 - distance**2 / 2.0,  # Annoy's angular distance is sqrt(2 - 2 cos)
        )


def ranked_scores(vectors: np.ndarray, parts: list | None = None) -> np.ndarray:
    """(n, n) scores between all (n, dim) `vectors`, as an index built over them ranks."""
    ranking = Ranking.from_settings(parts, vectors.shape[1])
    ranked = ranking.apply(vectors, *ranking.fit(vectors, vectors.shape[1]))
    return ranked @ ranked.T


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
