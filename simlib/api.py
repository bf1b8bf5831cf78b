"""The Python API: every CLI command and plugin calls one of these."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from simlib.catalog import Catalog
from simlib.config import Settings, SimlibError, resolve_home
from simlib.embedders import (
    FINGERPRINT,
    SIMILARITY,
    load_embedders,
    load_fingerprint_model,
    load_similarity_model,
    local_weights,
    weights_in_use,
)
from simlib.scan import Progress, ScanReport
from simlib.scan import scan as scan_catalog
from simlib.watch import Watcher, WatchSettings
from simlib.writer_lock import writer_lock

if TYPE_CHECKING:  # the query modules import torch: a scan or a watcher never needs them
    from simlib.identifier import IdentifyResult
    from simlib.recommender import SimilarResult


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
    on_wait: Callable[[str], None] | None = None,
) -> ScanReport:
    """Scan library folders (all registered ones if none are given); see `simlib.scan`.

    Waits (telling `on_wait`) while another scan or a watcher is writing.
    """
    catalog = open_catalog(home)
    settings = Settings.load(catalog.home)
    follow = settings.follow_symlinks if follow_symlinks is None else follow_symlinks
    try:
        with writer_lock(catalog.home, on_wait):
            return scan_catalog(
                catalog,
                [Path(d) for d in dirs],
                partial(load_embedders, catalog.home),
                follow_symlinks=follow,
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


def identify(
    clips: Sequence[str | Path],
    *,
    home: Path | str | None = None,
    top: int | None = None,
    min_confidence: float | None = None,
) -> list[IdentifyResult]:
    """Which library track is each clip, and where in it? One result per clip, in order.

    "-" reads a clip from standard input. The model is loaded once for all clips.
    """
    from simlib.identifier import identify_clips

    catalog = open_catalog(home)
    settings = Settings.load(catalog.home)
    try:
        return identify_clips(
            catalog,
            load_fingerprint_model(catalog.home),
            [str(c) for c in clips],
            top=top or settings.identify_top,
            min_confidence=settings.min_confidence if min_confidence is None else min_confidence,
        )
    finally:
        catalog.close()


def similar(
    tracks: Sequence[str | Path],
    *,
    home: Path | str | None = None,
    n: int | None = None,
    exclude_artist: bool = False,
    exclude_album: bool = False,
    blend: bool = False,
) -> list[SimilarResult]:
    """Library tracks that sound like each of `tracks` (or like all of them, with `blend`).

    A track may be a library file or any audio file, which is embedded on the fly.
    """
    from simlib.recommender import similar_tracks

    catalog = open_catalog(home)
    settings = Settings.load(catalog.home)
    try:
        return similar_tracks(
            catalog,
            load_similarity_model(catalog.home),
            [str(t) for t in tracks],
            n=n or settings.similar_count,
            exclude_artist=exclude_artist,
            exclude_album=exclude_album,
            blend=blend,
        )
    finally:
        catalog.close()


def watch(
    dirs: Sequence[Path | str] = (),
    *,
    home: Path | str | None = None,
    workers: int | None = None,
    follow_symlinks: bool | None = None,
    settings: WatchSettings | None = None,
    log: Callable[[dict], None] | None = None,
    on_tick: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Keep the catalog and indexes current until `stop` is set (or Ctrl-C); see `simlib.watch`.

    `log` receives one dict per event (batch, indexes-rebuilt, root-missing, ...);
    `on_tick` a status snapshot several times a second.
    """
    catalog = open_catalog(home)
    config = Settings.load(catalog.home)
    watcher = Watcher(
        catalog,
        [Path(d) for d in dirs],
        partial(load_embedders, catalog.home),
        workers=workers or config.worker_count(),
        follow_symlinks=config.follow_symlinks if follow_symlinks is None else follow_symlinks,
        settings=settings,
        log=log,
        on_tick=on_tick,
    )
    try:
        watcher.run(stop or threading.Event())
    except sqlite3.Error as error:
        raise SimlibError(f"cannot write the catalog at {catalog.path}: {error}") from error
    finally:
        catalog.close()


def train(
    kind: str,
    *,
    home: Path | str | None = None,
    minutes: float = 20.0,
    noise_dir: Path | None = None,
    progress: Callable[[dict], None] | None = None,
    rescan: bool = True,
) -> dict:
    """Fine-tune a model on this library, then re-embed the library with it.

    `kind` is "fingerprint" (needs no labels; `noise_dir` holds speech/ and
    ambient/ WAV clips mixed into the training views) or "similarity" (pairs
    from the tracks' tags; untagged tracks give none). Training starts from
    the weights in use, resumes after an interruption, and saves to
    `$SIMLIB_HOME/models/<kind>.pt`, which from then on replaces the shipped
    weights for this home. `progress` gets a dict per update. Returns metrics.
    """
    if kind not in (FINGERPRINT, SIMILARITY):
        raise SimlibError(f"unknown model {kind!r}: train fingerprint or similarity")
    catalog = open_catalog(home)
    try:
        tracks = catalog.library()
        start_from = weights_in_use(catalog.home, kind)
        out_path = local_weights(catalog.home, kind)
    finally:
        catalog.close()
    if not tracks:
        raise SimlibError("the library is empty: run `simlib scan DIR` first")
    report = progress or (lambda _update: None)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if kind == FINGERPRINT:
        from simlib.train.fingerprint_trainer import train_fingerprint

        metrics = train_fingerprint(
            [Path(t.path) for t in tracks],
            noise_dir,
            out_path,
            minutes=minutes,
            init_weights=start_from,
            progress=lambda step, total, loss: report({"step": step, "total": total, "loss": loss}),
        )
    else:
        from simlib.train.similarity_trainer import train_similarity

        metrics = asdict(
            train_similarity(
                [(Path(t.path), t.tags) for t in tracks],
                out_path,
                minutes=minutes,
                init_weights=start_from,
                cache_dir=resolve_home(home) / "cache" / "similarity",
                progress=lambda update: report(asdict(update)),
            )
        )
    if rescan:
        metrics["rescan"] = scan(home=home).as_dict()
    return metrics
