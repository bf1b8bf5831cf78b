"""Rebuild the indexes from the catalog when they are stale.

Each analysis stage has one index under `$SIMLIB_HOME/indexes/`. It is rebuilt when its
model's outputs changed after its build (`Catalog.holds_current`) or the model version
differs from what its build holds, and the build is recorded in the catalog's `indexes`
table. An index that still holds its model's outputs is only noted as current: a retag,
or a new version of another model, rebuilds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simlib.catalog import Catalog
from simlib.config import INDEX_DIR_NAME
from simlib.identify import index as segment_index
from simlib.library.pipeline import StageSpec
from simlib.similar import index as track_index


def index_path(catalog: Catalog, stage: StageSpec) -> Path:
    """A track index is one `.npz` file; a segment index is a folder of builds."""
    folder = catalog.home / INDEX_DIR_NAME
    return folder / (stage.name if stage.kind == "segments" else f"{stage.name}.npz")


def is_fresh(catalog: Catalog, stage: StageSpec) -> bool:
    info = catalog.index_info(stage.name)
    return bool(
        info
        and catalog.holds_current(info)
        and info["model_version"] == stage.version
        and Path(info["path"]) == index_path(catalog, stage)  # an earlier simlib's is rebuilt
        and Path(info["path"]).exists()
        and (stage.kind != "segments" or segment_index.has_build(Path(info["path"])))
    )


INDEXED_KINDS = ("segments", "track")
"""The kinds of analysis output that have an index (a track's peaks are read one by one)."""


def rebuild_indexes(
    catalog: Catalog,
    stages: list[StageSpec],
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> list[str]:
    """Rebuild every stale index; return the names rebuilt."""
    indexed = [stage for stage in stages if stage.kind in INDEXED_KINDS]
    stale = [stage for stage in indexed if force or not is_fresh(catalog, stage)]
    for stage in indexed:
        if stage not in stale:
            catalog.advance_index(stage.name)
    for done, stage in enumerate(stale):
        if progress:
            progress(done, len(stale))
        generation = catalog.generation
        path = index_path(catalog, stage)
        if stage.kind == "segments":
            stats = segment_index.build(path, catalog.segments(stage.name), **stage.index_params)
            dim, items, tracks = stage.index_params["dim"], stats.items, stats.tracks
            size = stats.bytes
        else:
            ids, vectors = catalog.vectors(stage.name)
            track_index.build(path, ids, vectors, **stage.index_params)
            path.with_suffix(".ann").unlink(missing_ok=True)  # an earlier simlib's index
            dim = vectors.shape[1] if len(ids) else 0
            items = tracks = len(ids)
            size = path.stat().st_size
        catalog.record_index(stage.name, path, stage.version, dim, items, tracks, size, generation)
    if progress:
        progress(len(stale), len(stale))
    return [stage.name for stage in stale]
