"""The registered library folders: list them, forget one with its tracks."""

from __future__ import annotations

import os
from pathlib import Path

from simlib.catalog import Catalog
from simlib.config import SimlibError
from simlib.library.indexes import rebuild_indexes
from simlib.library.sync import EmbedderFactory, known_stages
from simlib.library.workers import LazyPool


def find_root(catalog: Catalog, folder: Path | str) -> dict:
    """The registered root that `folder` names (as given, or with symlinks resolved)."""
    given = Path(folder).expanduser().absolute()
    names = {os.path.normpath(given), str(given.resolve())}
    for row in catalog.root_summaries():
        if row["path"] in names:
            return row
    raise SimlibError(f"{folder}: not a registered library folder (`simlib roots` lists them)")


def forget_root(
    catalog: Catalog,
    folder: Path | str,
    embedder_factory: EmbedderFactory,
    stages_key: str | None = None,
    dry_run: bool = False,
) -> int:
    """Forget root `folder` and its tracks, then rebuild the indexes without them; return
    the number of tracks (analysed or failed) it held. With `dry_run` only count them."""
    root = find_root(catalog, folder)
    count = root["tracks"] + root["failed"]
    if dry_run:
        return count
    catalog.delete_root(root["id"])
    with LazyPool(1, embedder_factory) as pool:
        stages = known_stages(catalog, pool, stages_key)
    rebuild_indexes(catalog, stages)
    return count
