"""The Python API: every CLI command and plugin calls one of these."""

from __future__ import annotations

import importlib.util
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from simlib import weights
from simlib.catalog import Catalog, writer_lock
from simlib.config import Settings, SimlibError, resolve_home
from simlib.library.embedders import (
    load_embedders,
    load_fingerprint_model,
    load_similarity_model,
    stages_key,
)

if TYPE_CHECKING:  # each command imports only what it runs: a cold `identify` starts faster
    from simlib.identify.query import Clip, IdentifyResult
    from simlib.library.sync import ScanProgress, ScanReport
    from simlib.library.watch import WatchSettings
    from simlib.similar.query import SimilarResult


def open_catalog(home: Path | str | None = None) -> Catalog:
    """The catalog at `home` (default: $SIMLIB_HOME, else the user data dir)."""
    return Catalog(resolve_home(home))


@contextmanager
def session(home: Path | str | None = None) -> Iterator[tuple[Catalog, Settings]]:
    """The catalog at `home` and its settings, closed when the block ends; a failed write
    to the catalog becomes a one-line error."""
    catalog = open_catalog(home)
    try:
        yield catalog, Settings.load(catalog.home)
    except sqlite3.Error as error:
        raise SimlibError(f"cannot write the catalog at {catalog.path}: {error}") from error
    finally:
        catalog.close()


def scan(
    dirs: Sequence[Path | str] = (),
    *,
    home: Path | str | None = None,
    follow_symlinks: bool | None = None,
    workers: int | None = None,
    progress: ScanProgress | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> ScanReport:
    """Scan library folders (all registered ones if none are given); see
    `simlib.library.sync`. Waits (telling `on_wait`) while another writer works."""
    from simlib.library.sync import scan as sync_catalog

    with session(home) as (catalog, settings), writer_lock(catalog.home, on_wait):
        follow = settings.follow_symlinks if follow_symlinks is None else follow_symlinks
        return sync_catalog(
            catalog,
            [Path(d) for d in dirs],
            partial(load_embedders, catalog.home),
            follow_symlinks=follow,
            workers=workers or settings.worker_count(),
            progress=progress,
            stages_key=stages_key(catalog.home),
        )


def status(home: Path | str | None = None) -> dict:
    """Library counts, failures with reasons, index freshness, disk use, and the state of
    a running watcher (None if none runs)."""
    with session(home) as (catalog, _settings):
        return catalog.summary()


def roots(home: Path | str | None = None) -> list[dict]:
    """The registered library folders: path, present (the folder is there), tracks (ok),
    failed and last_scan_at."""
    with session(home) as (catalog, _settings):
        return [{k: v for k, v in row.items() if k != "id"} for row in catalog.root_summaries()]


def remove_root(
    folder: Path | str, *, home: Path | str | None = None, dry_run: bool = False
) -> int:
    """Forget a registered library folder: its tracks leave the catalog and the indexes.
    Returns how many tracks it held; with `dry_run` nothing changes."""
    from simlib.library.roots import forget_root

    with session(home) as (catalog, _settings), writer_lock(catalog.home):
        factory = partial(load_embedders, catalog.home)
        return forget_root(catalog, folder, factory, stages_key(catalog.home), dry_run)


def identify(
    clips: Sequence[str | Path | Clip],
    *,
    home: Path | str | None = None,
    top: int | None = None,
    min_confidence: float | None = None,
) -> list[IdentifyResult]:
    """Which library track is each clip, and where in it? One result per clip, in order.

    A clip is a path, or a (name, binary file) pair such as ("-", standard input's bytes).
    `top` and `min_confidence` override the policy of the model in use and config.toml.
    """
    from simlib.identify.policy import Policy
    from simlib.identify.query import identify_clips

    with session(home) as (catalog, settings):
        model = load_fingerprint_model(catalog.home)
        policy = (
            Policy.from_settings(model.settings)
            .override(top=settings.identify_top, min_confidence=settings.min_confidence)
            .override(top=top, min_confidence=min_confidence)
        )
        named = [c if isinstance(c, tuple) else (str(c), Path(c)) for c in clips]
        return identify_clips(catalog, model, policy, named)


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
    from simlib.similar.query import Filters, similar_tracks

    with session(home) as (catalog, settings):
        return similar_tracks(
            catalog,
            load_similarity_model(catalog.home),
            [str(t) for t in tracks],
            n=n or settings.similar_count,
            filters=Filters(exclude_artist, exclude_album),
            blend=blend,
        )


def watch(
    dirs: Sequence[Path | str] = (),
    *,
    home: Path | str | None = None,
    workers: int | None = None,
    follow_symlinks: bool | None = None,
    settings: WatchSettings | None = None,
    log: Callable[[dict], None] | None = None,
    on_tick: Callable[[dict], None] | None = None,
    progress: ScanProgress | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Keep the catalog and indexes current until `stop` is set (or Ctrl-C); see
    `simlib.library.watch`. `log` receives one dict per event (batch, indexes-rebuilt,
    root-missing, ...); `on_tick` a status snapshot several times a second; `progress`
    follows the scans of whole folders (on start, and when a missing one returns)."""
    from simlib.library.watch import Watcher

    with session(home) as (catalog, config):
        watcher = Watcher(
            catalog,
            [Path(d) for d in dirs],
            partial(load_embedders, catalog.home),
            workers=workers or config.worker_count(),
            follow_symlinks=config.follow_symlinks if follow_symlinks is None else follow_symlinks,
            settings=settings,
            log=log,
            on_tick=on_tick,
            progress=progress,
        )
        watcher.run(stop or threading.Event())


def _check_noise_dir(noise_dir: Path | None) -> None:
    """Fingerprint training mixes speech clips (and ambient ones, if any) into its views."""
    if noise_dir is None:
        raise SimlibError("train fingerprint needs a noise folder (--noise DIR): speech/*.wav")
    if not any(Path(noise_dir, "speech").glob("*.wav")):
        raise SimlibError(
            f"{noise_dir}: no speech/*.wav clips (train fingerprint mixes them into its views; "
            "ambient/*.wav are optional)"
        )


TRAINING_MINUTES = {"fingerprint": 20.0, "similarity": 0.0}
"""Default budgets of `train`. Similarity: none, so only the album scatter of your tags is
measured; fine-tuning the encoders lost album-P@10 on held-out albums (docs/benchmarks.md)."""


def training_minutes(kind: str, minutes: float | None = None) -> float:
    """The training budget of `train`: `minutes`, else the kind's `TRAINING_MINUTES`."""
    return TRAINING_MINUTES[kind] if minutes is None else minutes


def train(
    kind: str,
    *,
    home: Path | str | None = None,
    minutes: float | None = None,
    noise_dir: Path | None = None,
    progress: Callable[[dict], None] | None = None,
    rescan: bool = True,
) -> dict:
    """Fine-tune a model on this library, then re-embed the library with it.

    `kind` is "fingerprint" (needs no labels; `noise_dir` holds speech/ and ambient/ WAV
    clips mixed into the training views) or "similarity" (pairs from the tracks' tags;
    untagged tracks give none; then the album scatter of the tagged albums). `minutes`
    bounds training (default `TRAINING_MINUTES`). Training starts from the weights in use,
    resumes after an interruption, and saves a checkpoint and its ONNX export to
    `simlib.weights.local_path`, which from then on replace the shipped weights for this
    home. `progress` gets a dict per update. Returns metrics.
    """
    if kind not in TRAINING_MINUTES:
        raise SimlibError(f"unknown model {kind!r}: train fingerprint or similarity")
    minutes = training_minutes(kind, minutes)
    if kind == weights.FINGERPRINT.name:
        if minutes <= 0:
            raise SimlibError("train fingerprint needs more than 0 minutes")
        _check_noise_dir(noise_dir)
    with session(home) as (catalog, _settings):
        tracks = catalog.library()
        home_dir = catalog.home
    if not tracks:
        raise SimlibError("the library is empty: run `simlib scan DIR` first")
    report = progress or (lambda _update: None)
    start_from = weights.path_in_use(home_dir, kind, "training")
    out_path = weights.local_path(home_dir, kind, "training")
    if importlib.util.find_spec("torch") is None:
        raise SimlibError("training needs PyTorch: pip install 'simlib[train]'")
    if kind == weights.FINGERPRINT.name:
        from simlib.train.fingerprint import train_fingerprint

        metrics = train_fingerprint(
            [Path(t.path) for t in tracks],
            noise_dir,
            out_path,
            minutes=minutes,
            init_weights=start_from,
            progress=lambda step, total, loss: report({"step": step, "total": total, "loss": loss}),
        )
    else:
        from simlib.train.similarity import train_similarity

        metrics = asdict(
            train_similarity(
                [(Path(t.path), t.tags) for t in tracks],
                out_path,
                minutes=minutes,
                init_weights=start_from,
                cache_dir=home_dir / "cache" / "similarity",
                progress=lambda update: report(asdict(update)),
            )
        )
    if rescan:
        metrics["rescan"] = scan(home=home).as_dict()
    return metrics
