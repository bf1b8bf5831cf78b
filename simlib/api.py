"""The Python API: every CLI command and plugin calls one of these."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from simlib.catalog import Catalog
from simlib.config import Settings, SimlibError, resolve_home
from simlib.embedders import load_embedders
from simlib.scan import Progress, ScanReport
from simlib.scan import scan as scan_catalog


def open_catalog(home: Path | str | None = None) -> Catalog:
    """The catalog at `home` (default: $SIMLIB_HOME, else the user data dir)."""
    return Catalog(resolve_home(home))


def scan(
    dirs: Sequence[Path | str] = (),
    *,
    home: Path | str | None = None,
    follow_symlinks: bool | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ScanReport:
    """Scan library folders (all registered ones if none are given); see `simlib.scan`."""
    catalog = open_catalog(home)
    settings = Settings.load(catalog.home)
    try:
        return scan_catalog(
            catalog,
            [Path(d) for d in dirs],
            partial(load_embedders, catalog.home),
            follow_symlinks=settings.follow_symlinks
            if follow_symlinks is None
            else follow_symlinks,
            workers=workers or settings.worker_count(),
            progress=progress,
        )
    except sqlite3.Error as error:
        raise SimlibError(f"cannot write the catalog at {catalog.path}: {error}") from error
    finally:
        catalog.close()


def status(home: Path | str | None = None) -> dict:
    """Library counts, failures with reasons, index freshness and disk use."""
    catalog = open_catalog(home)
    try:
        return catalog.summary()
    finally:
        catalog.close()
