"""Index over one vector per track, ranked exactly by a cosine standardised on the library.

A track vector is made of parts (`Part`): the learned embedding, and optionally each
mel band's mean and spread over time (timbre statistics in their own units). The score of
track x for query q is the sum over parts of the part's share times the cosine of
(q - c) / s and (x - c) / s, with c the part's mean over the indexed tracks and s its
standard deviation per dimension (1 for an embedding). The embeddings sit in a narrow
cone; taking away what every track shares spreads them out (the model card has the
figures). Statistics mean something only against the library's own spread: a band that
varies little in this library should not count as much as one that tells its tracks
apart. The centre and the spread adapt to each library.

A model may also carry the scatter of its training library's tracks around their album's
mean, in that space (`album_scatter`): scores are then cosines after whitening by it, so
that the ways an album's own tracks differ count less than the ways albums differ (within-
class covariance normalisation; `simlib train similarity` refits it on a library's tags).

A model may also name a neighbour expansion k: the index holds each track plus its k
nearest library tracks (`expanded`), and a query adds its k nearest tracks as the index
holds them (`TrackIndex.expanded_query`), each weighted by its score (`plus_nearest`), so
album-mates reached through one another rise together.

The file is all there is: an uncompressed `.npz` of the track ids, their vectors in the
ranking space, the centre and the spread. A query is one matrix-vector product over every
track (exact; 10,000 tracks of 512 dimensions are 20 MB). `build` replaces the file
atomically: a reader has the old file or the new one, never a half-written one, and never
a centre from another build.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from simlib.catalog import Found
from simlib.files import replace_atomically

EXPANSION_ROWS = 1024
"""Tracks whose nearest neighbours are found in one product (memory: this times the library)."""
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
    whitener: np.ndarray | None = field(default=None, compare=False)
    """(dim, dim) inverse square root of the album scatter plus a ridge, or None."""
    expansion: int = 0
    """Nearest library tracks each indexed track (`expanded`) and each query
    (`TrackIndex.expanded_query`) are expanded by; 0: none."""

    @classmethod
    def plain(cls, dim: int) -> Ranking:
        """The centred cosine of whole vectors (one embedding)."""
        return cls((Part(dim),))

    @classmethod
    def from_settings(cls, settings: dict | list | None, dim: int) -> Ranking:
        """The ranking a model's settings name: {"parts": [[size, share, standardised],
        ...], "album_scatter": `pack_scatter` text or "", "scatter_ridge": r}, or the parts
        list alone, or nothing (`plain(dim)`); a dict may add "neighbour_expansion": k."""
        if isinstance(settings, dict):
            scatter = settings.get("album_scatter") or ""
            parts = cls.from_settings(settings["parts"], dim).parts
            whitener = _whitener(scatter, float(settings["scatter_ridge"])) if scatter else None
            return cls(parts, whitener, int(settings.get("neighbour_expansion", 0)))
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
        the spread, unit length, times the square root of its share, then whitened by the
        album scatter and made unit length again (so that a dot product is the score)."""
        scaled = (np.asarray(vectors, dtype=np.float32) - centre) / spread
        joined = np.concatenate(
            [math.sqrt(part.share) * _unit(scaled[:, dims]) for part, dims in self._slices()],
            axis=1,
        )
        return joined if self.whitener is None else _unit(joined @ self.whitener)

    def _slices(self) -> list[tuple[Part, slice]]:
        ends = np.cumsum([p.size for p in self.parts]).tolist()
        return [(p, slice(e - p.size, e)) for p, e in zip(self.parts, ends, strict=True)]


def build(
    path: Path, ids: np.ndarray, vectors: np.ndarray, ranking: dict | list | None = None
) -> None:
    """Write the index of `vectors[i]` under track id `ids[i]` to `path`, atomically;
    `ranking` is the model's ranking settings (`Ranking.from_settings`)."""
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[0] else 1
    ranked_by = Ranking.from_settings(ranking, dim)
    centre, spread = ranked_by.fit(vectors, dim)
    ranked = np.zeros((0, dim), np.float32)
    if len(ids):
        ranked = expanded(ranked_by.apply(vectors, centre, spread), ranked_by.expansion)
    arrays = {
        "track_id": np.asarray(ids, np.int64),
        "vectors": ranked.astype(np.float32),
        "centre": np.asarray(centre, np.float32),
        "spread": np.asarray(spread, np.float32),
    }

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as file:  # a file object: numpy adds no ".npz" to the name
            np.savez(file, **arrays)

    replace_atomically(path, write)


class TrackIndex:
    """A track index, read whole (20 MB at 10,000 tracks of 512 dimensions)."""

    def __init__(self, path: Path, dim: int, ranking: dict | list | None = None) -> None:
        self.dim = dim
        self.ranking = Ranking.from_settings(ranking, dim)
        with np.load(path) as stored:
            self.track_id = stored["track_id"]
            self.vectors = stored["vectors"]
            self.centre = stored["centre"]
            self.spread = stored["spread"]

    def __len__(self) -> int:
        """Tracks in the index."""
        return int(self.track_id.size)

    def ranked(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) vectors in the space the index ranks in: a dot product is the score."""
        return self.ranking.apply(vectors, self.centre, self.spread)

    def nearest(self, query: np.ndarray, n: int) -> Found:
        """Up to `n` tracks nearest to one unit query vector in the space `ranked` gives,
        highest score first (ties: lower track id first)."""
        rows, score = self._nearest_rows(query, n)
        return Found(
            query=np.zeros(rows.size, np.int64),
            track_id=self.track_id[rows],
            at_s=np.zeros(rows.size, np.float32),
            score=score,
        )

    def _nearest_rows(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ np.asarray(query, np.float32)
        n = min(n, scores.size)
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.lexsort((self.track_id[best], -scores[best]))]
        return best, scores[best]

    def expanded_query(
        self, query: np.ndarray, excluded: frozenset[int] = frozenset()
    ) -> np.ndarray:
        """One unit query vector plus its nearest indexed tracks as the index holds them
        (the ranking's `expansion` of them, none of `excluded`: the query's own track and
        its copies), weighted by their score (`plus_nearest`), made unit length."""
        k = self.ranking.expansion
        if k == 0 or len(self) == 0:
            return query
        rows, score = self._nearest_rows(query, k + len(excluded))
        near = [i for i, row in enumerate(rows.tolist()) if self.track_id[row] not in excluded][:k]
        if not near:
            return query
        neighbours = self.vectors[rows[near]]
        return plus_nearest(query[None, :], score[near][None, :], neighbours, k)[0]

    def expanded_added(self, ranked: np.ndarray, own: list[frozenset[int]]) -> np.ndarray:
        """(n, dim) ranked vectors of tracks analysed after the build, each expanded as a
        query is (`expanded_query`, without `own[i]`: its track and copies), so that they
        rank like the indexed tracks until the next build."""
        rows = [self.expanded_query(row, ids) for row, ids in zip(ranked, own, strict=True)]
        return np.stack(rows) if rows else ranked


def ranked_scores(vectors: np.ndarray, ranking: dict | list | None = None) -> np.ndarray:
    """(n, n) scores of every (n, dim) vector as a query (row) against every vector as an
    indexed track (column), as an index built over them ranks: each query expanded by its
    nearest indexed tracks other than itself (`TrackIndex.expanded_query`)."""
    ranked_by = Ranking.from_settings(ranking, vectors.shape[1])
    ranked = library_ranked(vectors, ranked_by)
    indexed = expanded(ranked, ranked_by.expansion)
    scores = ranked @ indexed.T
    if ranked_by.expansion == 0 or len(ranked) < 2:
        return scores
    np.fill_diagonal(scores, -np.inf)  # not itself
    return plus_nearest(ranked, scores, indexed, ranked_by.expansion) @ indexed.T


def expanded(ranked: np.ndarray, k: int) -> np.ndarray:
    """(n, dim) unit `ranked` vectors, each plus its `k` nearest others (`plus_nearest`);
    as given when k is 0."""
    k = min(k, len(ranked) - 1)
    if k <= 0:
        return ranked
    out = np.empty_like(ranked)
    for start in range(0, len(ranked), EXPANSION_ROWS):
        rows = ranked[start : start + EXPANSION_ROWS]
        scores = rows @ ranked.T
        scores[np.arange(len(rows)), np.arange(start, start + len(rows))] = -np.inf  # not itself
        out[start : start + len(rows)] = plus_nearest(rows, scores, ranked, k)
    return out


def plus_nearest(rows: np.ndarray, scores: np.ndarray, others: np.ndarray, k: int) -> np.ndarray:
    """(n, dim) `rows`, each plus the `k` (m, dim) `others` it scores highest with
    (`scores` (n, m), -inf: never), weighted by that score (a negative one counts 0), made
    unit length."""
    k = min(k, scores.shape[1])
    nearest = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    weight = np.take_along_axis(scores, nearest, axis=1).clip(min=0)
    return _unit(rows + np.einsum("nk,nkd->nd", weight, others[nearest]))


def library_ranked(vectors: np.ndarray, ranking: Ranking) -> np.ndarray:
    """(n, dim) `vectors` in the space `ranking` ranks them in, as a library of their own."""
    return ranking.apply(vectors, *ranking.fit(vectors, vectors.shape[1]))


def album_scatter(ranked: np.ndarray, albums: list[str | None]) -> np.ndarray | None:
    """The mean outer product of (n, dim) `ranked` vectors minus their album's mean, over
    albums with two tracks or more; None without such an album."""
    scatter, counted = np.zeros((ranked.shape[1],) * 2), 0
    for album in sorted({a for a in albums if a}):  # one summation order: one result
        rows = ranked[[i for i, a in enumerate(albums) if a == album]].astype(np.float64)
        if len(rows) > 1:
            rows = rows - rows.mean(axis=0)
            scatter += rows.T @ rows
            counted += len(rows)
    return scatter / counted if counted else None


def pack_scatter(scatter: np.ndarray) -> str:
    """A symmetric matrix as text for a model's settings: its upper triangle, float32,
    base64."""
    upper = scatter[np.triu_indices(len(scatter))].astype("<f4")
    return base64.b64encode(upper.tobytes()).decode("ascii")


def unpack_scatter(text: str) -> np.ndarray:
    upper = np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float64)
    dim = int((np.sqrt(8 * len(upper) + 1) - 1) / 2)  # len(upper) = dim (dim + 1) / 2
    matrix = np.zeros((dim, dim))
    matrix[np.triu_indices(dim)] = upper
    return matrix + np.triu(matrix, 1).T


@lru_cache(maxsize=4)
def _whitener(text: str, ridge_share: float) -> np.ndarray:
    """(scatter + ridge)^-1/2 of a packed scatter, the ridge `ridge_share` times its mean
    variance; cached: every index and query of a model uses the same."""
    scatter = unpack_scatter(text)
    ridge = ridge_share * np.trace(scatter) / len(scatter)
    variances, axes = np.linalg.eigh(scatter + ridge * np.eye(len(scatter)))
    whitener = ((axes / np.sqrt(np.maximum(variances, ridge))) @ axes.T).astype(np.float32)
    whitener.setflags(write=False)
    return whitener


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
