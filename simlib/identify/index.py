"""Annoy index over the fingerprint segments of many tracks, independent of the catalog.

On disk an index is a directory: `<build_id>.ann` (Annoy, memory-mapped when opened),
`<build_id>.npz` (item -> track id and segment start) and `CURRENT`, a one-line pointer
to the live build id. A build writes both data files under a fresh id and then swaps
`CURRENT` atomically, so a reader never pairs an Annoy file with another build's map;
the previous build is kept (readers may still be opening it), older ones removed.
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

from simlib.catalog import Found
from simlib.files import replace_atomically
from simlib.types import Segments

POINTER = "CURRENT"
METRIC = "angular"
SEARCH_THREADS = min(4, os.cpu_count() or 1)
"""Query segments are searched in parallel threads: Annoy releases the GIL while it searches."""


@dataclass(frozen=True)
class BuildStats:
    """What a build wrote: item count, bytes on disk for this build, seconds taken."""

    build_id: str
    items: int
    tracks: int
    bytes: int
    seconds: float


def build(path: Path, items: Iterable[tuple[int, Segments]], dim: int, n_trees: int) -> BuildStats:
    """Write a new build of the index at directory `path` from (track_id, Segments) pairs."""
    started = time.perf_counter()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    build_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    annoy = AnnoyIndex(dim, METRIC)
    track_ids: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    n = 0
    for track_id, segments in items:
        for row in segments.vectors:
            annoy.add_item(n, row.tolist())
            n += 1
        track_ids.append(np.full(len(segments), track_id, dtype=np.int32))  # 4 bytes an item
        starts.append(np.asarray(segments.start_s, dtype=np.float32))
    annoy.build(n_trees if n else 1, n_jobs=1)
    ann_path, map_path = path / f"{build_id}.ann", path / f"{build_id}.npz"
    replace_atomically(ann_path, lambda temporary: annoy.save(str(temporary)))
    annoy.unload()
    sidecar = {
        "track_id": np.concatenate(track_ids) if track_ids else np.zeros(0, np.int32),
        "start_s": np.concatenate(starts) if starts else np.zeros(0, np.float32),
        "meta": np.array([build_id, str(dim)]),
    }
    replace_atomically(map_path, lambda temporary: np.savez(temporary, **sidecar))
    previous = _current_id(path)
    replace_atomically(path / POINTER, lambda temporary: temporary.write_text(build_id + "\n"))
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

    def __init__(
        self, build_id: str, annoy: AnnoyIndex, track_id: np.ndarray, start_s: np.ndarray
    ) -> None:
        self.build_id = build_id
        self.annoy = annoy
        self.track_id = track_id
        self.start_s = start_s

    @classmethod
    def open(cls, path: Path) -> FingerprintIndex:
        """Open the live build at directory `path` (FileNotFoundError if none was built)."""
        path = Path(path)
        build_id = _current_id(path)
        if build_id is None:
            raise FileNotFoundError(f"no fingerprint index at {path}")
        with np.load(path / f"{build_id}.npz") as sidecar:
            track_id, start_s, meta = sidecar["track_id"], sidecar["start_s"], sidecar["meta"]
        track_id = track_id.astype(np.int64)
        if str(meta[0]) != build_id:
            raise RuntimeError(f"index sidecar {build_id} holds build {meta[0]}")
        annoy = AnnoyIndex(int(meta[1]), METRIC)
        if track_id.size:
            annoy.load(str(path / f"{build_id}.ann"), prefault=False)
        return cls(build_id, annoy, track_id, start_s)

    def __len__(self) -> int:
        return int(self.track_id.size)

    def search(self, vectors: np.ndarray, k: int, search_k: int) -> Found:
        """The `k` nearest database segments of every query vector, with cosine similarity."""
        rows, ids, distances = [], [], []
        if len(self) and len(vectors):

            def nearest(vector: np.ndarray) -> tuple[list[int], list[float]]:
                return self.annoy.get_nns_by_vector(
                    vector.tolist(), k, search_k=search_k, include_distances=True
                )

            with ThreadPoolExecutor(min(SEARCH_THREADS, len(vectors))) as pool:
                for row, (found, distance) in enumerate(pool.map(nearest, vectors)):
                    rows.extend([row] * len(found))
                    ids.extend(found)
                    distances.extend(distance)
        item = np.asarray(ids, dtype=np.int64)
        distance = np.asarray(distances, dtype=np.float32)
        return Found(
            query=np.asarray(rows, dtype=np.int64),
            track_id=self.track_id[item],
            at_s=self.start_s[item],
            score=(1.0 - distance**2 / 2.0).astype(np.float32),  # angular d = sqrt(2 - 2 cos)
        )
