"""Rebuild the Annoy indexes from the catalog when they are stale.

Each analysis stage has one index, at `$SIMLIB_HOME/indexes/<name>.ann`. It is
rebuilt when the catalog's generation or the model version differs from what
the index was built from, and recorded in the catalog's `indexes` table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simlib import fingerprint_index, track_index
from simlib.catalog import Catalog
from simlib.config import INDEX_DIR_NAME, SimlibError
from simlib.pipeline import StageSpec


def index_path(catalog: Catalog, stage: StageSpec) -> Path:
    """A track index is one Annoy file; a segment index is a folder of builds."""
    folder = catalog.home / INDEX_DIR_NAME
    return folder / (stage.name if stage.kind == "segments" else f"{stage.name}.ann")


def is_fresh(catalog: Catalog, stage: StageSpec) -> bool:
    info = catalog.index_info(stage.name)
    return bool(
        info
        and info["generation"] == catalog.generation
        and info["model_version"] == stage.version
        and Path(info["path"]).exists()
    )


def current_index(catalog: Catalog, name: str, model_version: str) -> dict:
    """The catalog's record of index `name`, if it was built with `model_version`."""
    info = catalog.index_info(name)
    if info is None:
        raise SimlibError(f"no {name} index yet: run `simlib scan DIR` first")
    if info["model_version"] != model_version:
        raise SimlibError(f"the {name} index is from another model: run `simlib scan`")
    return info


def rebuild_indexes(
    catalog: Catalog,
    stages: list[StageSpec],
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> list[str]:
    """Rebuild every stale index; return the names rebuilt."""
    stale = [e for e in stages if force or not is_fresh(catalog, e)]
    rebuilt = []
    for done, stage in enumerate(stale):
        if progress:
            progress(done, len(stale))
        generation = catalog.generation
        path = index_path(catalog, stage)
        if stage.kind == "segments":
            stats = fingerprint_index.build(
                path,
                catalog.segments(stage.name),
                **stage.index_params,
            )
            dim, items, tracks = stage.index_params["dim"], stats.items, stats.tracks
            size = stats.bytes
        else:
            ids, vectors = catalog.vectors(stage.name)
            track_index.build(path, ids, vectors)
            dim = vectors.shape[1] if len(ids) else 0
            items = tracks = len(ids)
            size = path.stat().st_size
        catalog.record_index(stage.name, path, stage.version, dim, items, tracks, size, generation)
        rebuilt.append(stage.name)
    if progress:
        progress(len(stale), len(stale))
    return rebuilt
