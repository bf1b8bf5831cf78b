"""Inverted-file index over the fingerprint segments of many tracks, independent of the catalog.

The segments are grouped into lists around centroids (spherical k-means on a sample); a
query vector scans only the lists of its `probes` nearest centroids, with exact int8
dot products. Memory-mapped, a query touches a few lists and not the whole index.

On disk an index is a directory of builds: `<build_id>/` holds `centroids.npy`,
`offsets.npy` (list i is rows offsets[i]:offsets[i+1]), `vectors.npy` (int8, round(127 x
component) as the catalog keeps them), `track_id.npy` and `start_s.npy`, rows in list
order; `CURRENT` is a one-line pointer to the live build id. A build writes its folder
under a temporary name, renames it and then swaps `CURRENT` atomically, so a reader never
sees half a build; the previous build is kept (readers may still be opening it), older
ones removed.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simlib.catalog import Found
from simlib.catalog.segments import quantised
from simlib.files import replace_atomically
from simlib.types import Segments

POINTER = "CURRENT"
LISTS_PER_ROOT = 1.0
"""Lists = this x sqrt(segments): a query's cost (centroids + `probes` lists) then grows
with the square root of the library."""
SAMPLE_PER_LIST = 40
"""k-means learns the centroids from this many segments a list (a sample: assigning every
segment each iteration would cost minutes at 10,000 tracks)."""
KMEANS_ITERATIONS = 12
"""Enough for the lists to settle: on 173,000 segments (real and benchmark distractors)
the 12th moved 1.0 % of the sample to another list, the 13th 0.7 %."""
KMEANS_SEED = 0
"""The same segments always build the same index."""
ASSIGN_ROWS = 16_384
"""Segments assigned to their list per matrix product: bounds the temporaries (~150 MB
at 10,000 tracks' 2,300 lists)."""
FILES = ("centroids", "offsets", "vectors", "track_id", "start_s")


@dataclass(frozen=True)
class BuildStats:
    """What a build wrote: item count, bytes on disk for this build, seconds taken."""

    build_id: str
    items: int
    tracks: int
    bytes: int
    seconds: float


def build(path: Path, items: Iterable[tuple[int, Segments]], dim: int) -> BuildStats:
    """Write a new build of the index at directory `path` from (track_id, Segments) pairs."""
    started = time.perf_counter()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    build_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    vectors, track_id, start_s = _gather(items, dim)
    centroids = spherical_kmeans(vectors, n_lists(len(vectors)))
    order, offsets = _list_order(vectors, centroids)
    arrays = {
        "centroids": centroids,
        "offsets": offsets,
        "vectors": quantised(vectors[order]),
        "track_id": track_id[order],
        "start_s": start_s[order],
    }
    temporary = path / f".{build_id}.tmp"
    temporary.mkdir()
    for name, array in arrays.items():
        np.save(temporary / f"{name}.npy", array)
    os.replace(temporary, path / build_id)
    previous = _current_id(path)
    replace_atomically(path / POINTER, lambda temporary: temporary.write_text(build_id + "\n"))
    for old in path.iterdir():
        if old.name not in (build_id, previous, POINTER):
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    size = sum(f.stat().st_size for f in (path / build_id).iterdir())
    tracks = int(np.unique(track_id).size)
    return BuildStats(build_id, len(vectors), tracks, size, time.perf_counter() - started)


def _gather(
    items: Iterable[tuple[int, Segments]], dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vectors, track_ids, starts = [np.zeros((0, dim), np.float32)], [], []
    for track_id, segments in items:
        vectors.append(np.asarray(segments.vectors, np.float32))
        track_ids.append(np.full(len(segments), track_id, dtype=np.int32))  # 4 bytes an item
        starts.append(np.asarray(segments.start_s, dtype=np.float32))
    return (
        np.concatenate(vectors),
        np.concatenate(track_ids) if track_ids else np.zeros(0, np.int32),
        np.concatenate(starts) if starts else np.zeros(0, np.float32),
    )


def n_lists(items: int) -> int:
    """How many lists an index of `items` segments has."""
    return max(1, round(LISTS_PER_ROOT * math.sqrt(items)))


def spherical_kmeans(vectors: np.ndarray, k: int) -> np.ndarray:
    """`k` unit centroids of unit `vectors` (fewer rows than k: the rows themselves)."""
    rng = np.random.default_rng(KMEANS_SEED)
    if len(vectors) <= k:
        return vectors.astype(np.float32).copy()
    sample = vectors[
        np.sort(rng.choice(len(vectors), min(len(vectors), k * SAMPLE_PER_LIST), False))
    ]
    centroids = sample[rng.choice(len(sample), k, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        nearest = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        empty = ~sums.any(axis=1)  # an empty list takes a random segment and tries again
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centroids.astype(np.float32)


def _nearest_list(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            np.argmax(vectors[i : i + ASSIGN_ROWS] @ centroids.T, axis=1)
            for i in range(0, len(vectors), ASSIGN_ROWS)
        ]
    )


def _list_order(vectors: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by list (stable: within a list, in the order given), and list offsets."""
    lists = _nearest_list(vectors, centroids)
    order = np.argsort(lists, kind="stable")
    counts = np.bincount(lists, minlength=len(centroids))
    return order, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def _current_id(path: Path) -> str | None:
    try:
        return (path / POINTER).read_text().strip() or None
    except FileNotFoundError:
        return None


def _live_build(path: Path) -> Path | None:
    """The folder of the live build at directory `path`, if it is one this simlib reads
    (an earlier simlib's index, of another format, is rebuilt by the next scan)."""
    build_id = _current_id(Path(path))
    if build_id is None:
        return None
    folder = Path(path) / build_id
    return folder if all((folder / f"{name}.npy").exists() for name in FILES) else None


def has_build(path: Path) -> bool:
    """Whether directory `path` has a live build this simlib reads."""
    return _live_build(path) is not None


@dataclass(frozen=True)
class FingerprintIndex:
    """A read-only, memory-mapped build of the index."""

    build_id: str
    centroids: np.ndarray
    offsets: np.ndarray
    vectors: np.ndarray
    track_id: np.ndarray
    start_s: np.ndarray

    @classmethod
    def open(cls, path: Path) -> FingerprintIndex:
        """Open the live build at directory `path` (FileNotFoundError if none was built,
        or only by a simlib that kept another format)."""
        folder = _live_build(path)
        if folder is None:
            raise FileNotFoundError(f"no fingerprint index at {path}")
        return cls(
            folder.name, **{name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in FILES}
        )

    def __len__(self) -> int:
        return int(self.track_id.shape[0])

    def search(self, vectors: np.ndarray, k: int, probes: int) -> Found:
        """The `k` nearest segments of every query vector among the lists of its `probes`
        nearest centroids, with cosine similarity."""
        rows, items, scores = (
            [np.zeros(0, np.int64)],
            [np.zeros(0, np.int64)],
            [np.zeros(0, np.float32)],
        )
        queries = np.asarray(vectors, np.float32)
        if len(self) and len(queries):
            probes = min(probes, len(self.centroids))
            near = np.argpartition(-(queries @ self.centroids.T), probes - 1, axis=1)[:, :probes]
            scored = self._score_lists(queries, near)
            for row, lists in enumerate(near):
                item, score = self._best(row, [scored[i] for i in lists], k)
                rows.append(np.full(item.size, row, np.int64))
                items.append(item)
                scores.append(score)
        item = np.concatenate(items)
        return Found(
            query=np.concatenate(rows),
            track_id=self.track_id[item].astype(np.int64),
            at_s=np.asarray(self.start_s[item], np.float32),
            score=np.concatenate(scores),
        )

    def _score_lists(self, queries: np.ndarray, near: np.ndarray) -> dict[int, ScoredList]:
        """Every list some query probes, read once and scored against all the queries that
        probe it: a clip's overlapping segments mostly probe the same lists, and at 10,000
        tracks this halves the search's time against a product per query and list."""
        scored = {}
        for i in np.unique(near).tolist():
            probing = np.flatnonzero((near == i).any(axis=1))
            begin, end = int(self.offsets[i]), int(self.offsets[i + 1])
            block = np.asarray(self.vectors[begin:end], np.float32)
            scored[i] = ScoredList(begin, probing, block @ queries[probing].T)
        return scored

    def _best(self, row: int, lists: list[ScoredList], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` best index rows of `lists` for query `row`: row numbers and cosines."""
        score = np.concatenate([s.of_query(row) for s in lists])
        item = np.concatenate([s.rows() for s in lists])
        best = np.argpartition(-score, k - 1)[:k] if k < score.size else np.arange(score.size)
        item = item[best]
        # the cosine with the stored vector, as the catalog's unpacked segments give it
        norm = np.linalg.norm(np.asarray(self.vectors[item], np.float32), axis=1)
        return item, (score[best] / np.maximum(norm, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class ScoredList:
    """One index list scored against the queries that probe it."""

    begin: int
    """The list's first index row."""
    queries: np.ndarray
    """The query rows that probe it, ascending."""
    scores: np.ndarray
    """(list rows, len(queries)) dot products of the stored vectors with those queries."""

    def of_query(self, row: int) -> np.ndarray:
        """The list's scores for query `row` (one of `queries`)."""
        return self.scores[:, int(np.searchsorted(self.queries, row))]

    def rows(self) -> np.ndarray:
        """The index rows of the list."""
        return np.arange(self.begin, self.begin + self.scores.shape[0])
