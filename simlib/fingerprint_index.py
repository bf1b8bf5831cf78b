"""Annoy index over fingerprint segments of many tracks, independent of the catalog.

On disk an index is a directory: `<build_id>.ann` (Annoy, memory-mapped when opened),
`<build_id>.npz` (item -> track id and segment start) and `CURRENT`, a one-line pointer
to the live build id. A build writes both data files under a fresh id and then swaps
`CURRENT` with `os.replace`, so a reader never pairs an Annoy file with another build's
map; the previous build is kept (readers may still be opening it), older ones removed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from simlib.matching import Hits
from simlib.types import Segments

POINTER = "CURRENT"
SEARCH_THREADS = min(4, os.cpu_count() or 1)
"""Query segments are searched in parallel threads: Annoy releases the GIL while it searches."""


@dataclass
class BuildStats:
    """What a build wrote: item count, bytes on disk for this build, seconds taken."""

    build_id: str
    items: int
    tracks: int
    bytes: int
    seconds: float


def to_bits(vectors: np.ndarray) -> np.ndarray:
    """Sign bits of float vectors (0/1 per dimension), the item form of the hamming metric."""
    return (np.asarray(vectors) > 0).astype(np.uint8)


def build(
    path: Path,
    items: Iterable[tuple[int, Segments]],
    dim: int,
    metric: str = "angular",
    n_trees: int = 8,
) -> BuildStats:
    """Write a new build of the index at directory `path` from (track_id, Segments) pairs.

    `metric` is "angular" (float vectors) or "hamming" (sign bits of the vectors).
    """
    started = time.perf_counter()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    build_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    annoy = AnnoyIndex(dim, metric)
    track_ids: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    n = 0
    for track_id, segments in items:
        vectors = to_bits(segments.vectors) if metric == "hamming" else segments.vectors
        for row in vectors:
            annoy.add_item(n, row.tolist())
            n += 1
        track_ids.append(np.full(len(segments), track_id, dtype=np.int64))
        starts.append(np.asarray(segments.start_s, dtype=np.float32))
    annoy.build(n_trees if n else 1, n_jobs=1)
    ann_path, map_path = path / f"{build_id}.ann", path / f"{build_id}.npz"
    annoy.save(str(path / f".{build_id}.ann.tmp"))
    annoy.unload()
    os.replace(path / f".{build_id}.ann.tmp", ann_path)
    with open(path / f".{build_id}.npz.tmp", "wb") as f:
        np.savez(
            f,
            track_id=np.concatenate(track_ids) if track_ids else np.zeros(0, np.int64),
            start_s=np.concatenate(starts) if starts else np.zeros(0, np.float32),
            meta=np.array([build_id, str(dim), metric]),
        )
    os.replace(path / f".{build_id}.npz.tmp", map_path)
    (path / f".{POINTER}.tmp").write_text(build_id + "\n")
    previous = _current_id(path)
    os.replace(path / f".{POINTER}.tmp", path / POINTER)
    for old in path.iterdir():
        if old.suffix in (".ann", ".npz") and old.stem not in (build_id, previous):
            old.unlink(missing_ok=True)
    size = ann_path.stat().st_size + map_path.stat().st_size
    tracks = len({int(t[0]) for t in track_ids if t.size})
    return BuildStats(build_id, n, tracks, size, time.perf_counter() - started)


def _current_id(path: Path) -> str | None:
    try:
        return (path / POINTER).read_text().strip() or None
    except FileNotFoundError:
        return None


class FingerprintIndex:
    """A read-only, memory-mapped build of the index."""

    def __init__(self, annoy: AnnoyIndex, track_id: np.ndarray, start_s: np.ndarray, meta):
        self.annoy = annoy
        self.track_id = track_id
        self.start_s = start_s
        self.build_id, dim, self.metric = (str(m) for m in meta)
        self.dim = int(dim)

    @classmethod
    def open(cls, path: Path) -> FingerprintIndex:
        """Open the live build at directory `path` (FileNotFoundError if none was built)."""
        path = Path(path)
        build_id = _current_id(path)
        if build_id is None:
            raise FileNotFoundError(f"no fingerprint index at {path}")
        with np.load(path / f"{build_id}.npz") as sidecar:
            track_id, start_s, meta = sidecar["track_id"], sidecar["start_s"], sidecar["meta"]
        if str(meta[0]) != build_id:
            raise RuntimeError(f"index sidecar {build_id} holds build {meta[0]}")
        annoy = AnnoyIndex(int(meta[1]), str(meta[2]))
        if track_id.size:
            annoy.load(str(path / f"{build_id}.ann"), prefault=False)
        return cls(annoy, track_id, start_s, meta)

    def __len__(self) -> int:
        return int(self.track_id.size)

    def search(self, query: Segments, k: int = 10, search_k: int = -1) -> Hits:
        """The `k` nearest database segments of every query segment, with cosine similarity.

        Hamming distances d over `dim` bits are reported as similarity 1 - 2 d / dim.
        """
        vectors = to_bits(query.vectors) if self.metric == "hamming" else query.vectors
        rows_q, rows_i, rows_d = [], [], []
        if len(self) and len(vectors):

            def nearest(vector: np.ndarray) -> tuple[list[int], list[float]]:
                return self.annoy.get_nns_by_vector(
                    vector.tolist(), k, search_k=search_k, include_distances=True
                )

            with ThreadPoolExecutor(min(SEARCH_THREADS, len(vectors))) as pool:
                found = list(pool.map(nearest, vectors))
            for qs, (ids, dist) in zip(query.start_s.tolist(), found, strict=True):
                rows_q.extend([qs] * len(ids))
                rows_i.extend(ids)
                rows_d.extend(dist)
        idx = np.asarray(rows_i, dtype=np.int64)
        dist = np.asarray(rows_d, dtype=np.float32)
        if self.metric == "hamming":
            similarity = 1.0 - 2.0 * dist / self.dim
        else:
            similarity = 1.0 - dist**2 / 2.0
        return Hits(
            query_s=np.asarray(rows_q, dtype=np.float32),
            track_id=self.track_id[idx],
            db_s=self.start_s[idx],
            similarity=similarity.astype(np.float32),
            n_query=len(query),
        )
