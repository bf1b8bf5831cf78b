"""The `simlib` command: parses arguments, calls `simlib.api`, prints results."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from simlib import api
from simlib.config import HOME_ENV, SimlibError

app = typer.Typer(
    help="Know what your music library sounds like: identify clips, find similar tracks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar=HOME_ENV,
        help="Data folder (catalog and indexes). Default: the user data dir.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
STDIN = "-"
"""An input named "-" is read from standard input."""


def say(text: str, console: Console = out) -> None:
    """Print user data as is: no markup, no highlighting, no wrapping of long paths."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    say(f"error: {message}", err)
    raise typer.Exit(code)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


class RateColumn(ProgressColumn):
    """Items per second, with the unit of the task."""

    def render(self, task) -> Text:  # noqa: ANN001 - rich's Task
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {task.fields.get('unit', 'it')}/s" if speed else "")


@contextmanager
def scan_progress(enabled: bool):
    """A rich progress bar per scan phase, on stderr; yields the scan's callback."""
    progress = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled,
    )
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int, _audio_s: float) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=total, unit="tracks")
        progress.update(tasks[phase], completed=done, total=total)

    with progress:
        yield update


@contextmanager
def user_errors():
    """Turn SimlibError and Ctrl-C into one-line messages and exit codes."""
    try:
        yield
    except SimlibError as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted; finished work is saved, run the command again to resume", 130)


@app.command()
def scan(
    dirs: Annotated[
        list[Path] | None, typer.Argument(help="Library folders (default: all registered).")
    ] = None,
    home: HomeOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Analysis processes (default: one per core).")
    ] = None,
    follow_symlinks: Annotated[
        bool | None,
        typer.Option("--follow-symlinks/--no-follow-symlinks", help="Follow symbolic links."),
    ] = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Add library folders and analyse new or changed files."""
    with user_errors(), scan_progress(not quiet and not as_json) as progress:
        report = api.scan(
            dirs or [],
            home=home,
            follow_symlinks=follow_symlinks,
            workers=workers,
            progress=progress,
        )
    if as_json:
        print_json(report.as_dict())
        return
    say(
        f"{report.files} files: {report.analysed} analysed, {report.reused} reused, "
        f"{report.unchanged} unchanged, {report.failed} failed, {report.removed} removed "
        f"({report.audio_s / 60:.1f} min of audio in {report.seconds:.1f} s)"
    )
    for root in report.missing_roots:
        say(f"warning: library folder not found, kept as is: {root}", err)
    for path, reason in report.errors.items():
        say(f"failed: {path}: {reason}", err)


@app.command()
def status(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Library counts, failures with reasons, index freshness, disk use."""
    with user_errors():
        summary = api.status(home)
    if as_json:
        print_json(summary)
        return
    say(f"home      {summary['home']}")
    say(f"roots     {', '.join(summary['roots']) or '(none)'}")
    say(
        f"tracks    {summary['tracks']} ok, {summary['failed']} failed, "
        f"{summary['audio_hours']:.2f} h of audio"
    )
    disk = summary["disk"]
    say(
        f"disk      catalog {disk['catalog_bytes'] / 1e6:.1f} MB, "
        f"indexes {disk['index_bytes'] / 1e6:.1f} MB"
    )
    if summary["indexes"]:
        table = Table("index", "items", "tracks", "built", "fresh")
        for row in summary["indexes"]:
            table.add_row(
                row["name"],
                str(row["items"]),
                str(row["tracks"]),
                row["built_at"],
                "yes" if row["fresh"] else "no (run scan)",
            )
        out.print(table)
    for failure in summary["failures"]:
        say(f"failed    {failure['path']}: {failure['error']}")


def _report_errors(results: list) -> None:
    """Name the inputs that could not be read on stderr (the exit code stays 0)."""
    for result in results:
        if result.error:
            say(f"{result.query}: {result.error}", err)


@app.command()
def identify(
    clips: Annotated[list[str], typer.Argument(help="Audio clips; - reads one from stdin.")],
    home: HomeOption = None,
    top: Annotated[int | None, typer.Option("--top", "-k", help="Candidates per clip.")] = None,
    min_confidence: Annotated[
        float | None, typer.Option(help="Below this confidence (0..1) answer 'no match'.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Which library track is each clip, and where in it?"""
    named = [(STDIN, io.BytesIO(sys.stdin.buffer.read())) if c == STDIN else c for c in clips]
    with user_errors():
        results = api.identify(named, home=home, top=top, min_confidence=min_confidence)
    for result in results:
        if as_json:
            print_json(result.as_dict())
        elif result.error:
            continue
        elif result.match:
            m = result.match.as_dict()
            at_s = round(m["offset_s"], 1) + 0.0  # no "-0.0"
            say(
                f"{result.query}: {m['artist'] or '?'} - {m['title']} ({m['album'] or '?'}) "
                f"at {at_s:.1f} s, confidence {m['confidence']:.2f}  [{m['path']}]"
            )
        else:
            say(f"{result.query}: no match")
    _report_errors(results)


@app.command()
def similar(
    tracks: Annotated[list[str], typer.Argument(help="Library tracks or any audio files.")],
    home: HomeOption = None,
    n: Annotated[int | None, typer.Option("-n", help="Results per track.")] = None,
    exclude_artist: Annotated[bool, typer.Option(help="Leave out the query's artist.")] = False,
    exclude_album: Annotated[bool, typer.Option(help="Leave out the query's album.")] = False,
    blend: Annotated[
        bool, typer.Option(help="Treat all TRACKS as one seed set: one playlist.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Library tracks that sound like each TRACK."""
    with user_errors():
        results = api.similar(
            tracks,
            home=home,
            n=n,
            exclude_artist=exclude_artist,
            exclude_album=exclude_album,
            blend=blend,
        )
    for result in results:
        if as_json:
            print_json(result.as_dict())
            continue
        if result.error and not result.results:
            continue
        say(result.query)
        for rank, r in enumerate((r.as_dict() for r in result.results), 1):
            say(
                f"{rank:3d}. {r['score']:.3f}  {r['artist'] or '?'} - {r['title']} "
                f"({r['album'] or '?'})  [{r['path']}]"
            )
    _report_errors(results)


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="fingerprint or similarity")],
    home: HomeOption = None,
    minutes: Annotated[float, typer.Option(help="Training time budget.")] = 20.0,
    noise: Annotated[
        Path | None,
        typer.Option(help="Folder with speech/ and ambient/ WAV clips (fingerprint only)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune a model on your library (resumable), then re-embed the library."""
    bar = Progress(
        TextColumn("training {task.fields[model]}"),
        BarColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]}"),
        console=err,
        disable=as_json,
    )
    task = bar.add_task("train", total=minutes * 60, model=model, loss=float("nan"), rate="")
    started = time.monotonic()

    def progress(update: dict) -> None:
        rate = f"{update['pairs_per_s']:.0f} pairs/s" if "pairs_per_s" in update else ""
        if update.get("members", 1) > 1:
            rate = f"encoder {update['member'] + 1}/{update['members']}  {rate}"
        bar.update(task, completed=time.monotonic() - started, loss=update["loss"], rate=rate)

    with user_errors(), bar:
        metrics = api.train(model, home=home, minutes=minutes, noise_dir=noise, progress=progress)
    if as_json:
        print_json(metrics)
        return
    for key, value in metrics.items():
        if key != "rescan":
            say(f"{key:22} {value:.4f}" if isinstance(value, float) else f"{key:22} {value}")
    rescan = metrics.get("rescan", {})
    say(f"library re-embedded: {rescan.get('analysed', 0)} tracks")


def _describe_event(event: dict) -> str:
    kind = event["event"]
    if kind in ("batch", "reconciled", "root-returned"):
        counts = ", ".join(
            f"{event[k]} {k}" for k in ("analysed", "reused", "removed", "failed") if event.get(k)
        )
        where = f" {event['root']}" if "root" in event else ""
        return f"{kind}{where}: {counts or 'nothing new'}"
    if kind == "indexes-rebuilt":
        return f"indexes rebuilt: {', '.join(event['indexes']) or 'none'}"
    if kind == "watching":
        return f"watching {', '.join(event['roots'])}"
    if kind == "root-missing":
        return f"library folder missing (kept as is until it returns): {event['root']}"
    return event.get("message", kind)


@app.command()
def watch(
    dirs: Annotated[
        list[Path] | None, typer.Argument(help="Folders to follow (default: all registered).")
    ] = None,
    home: HomeOption = None,
    workers: Annotated[int | None, typer.Option(help="Analysis processes.")] = None,
    json_log: Annotated[bool, typer.Option("--json-log", help="One JSON line per event.")] = False,
) -> None:
    """Keep the catalog and indexes current as files come and go (Ctrl-C stops)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    status_line = err.status("starting", spinner="dots") if not json_log else nullcontext()

    def log(event: dict) -> None:
        event = {"time": datetime.now().isoformat(timespec="seconds"), **event}
        if json_log:
            print_json(event)
        else:
            say(f"{event['time']} {_describe_event(event)}", err)

    def on_tick(snapshot: dict) -> None:
        if not json_log:
            status_line.update(
                f"watching: {snapshot['settling']} settling, {snapshot['queued']} queued, "
                f"{snapshot['removals']} removals pending"
            )

    with user_errors(), status_line:
        try:
            api.watch(dirs or [], home=home, workers=workers, log=log, on_tick=on_tick, stop=stop)
        except KeyboardInterrupt:
            stop.set()


PLUGIN_GROUP = "simlib.cli"
"""Entry-point group through which installed plugins add commands (e.g. `simlib dj`)."""


def add_plugin_commands() -> None:
    """Register each installed plugin's command; a broken plugin is reported, not fatal."""
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            app.command(name=entry.name)(entry.load())
        except Exception as error:  # a plugin's import failure must not break simlib
            say(f"warning: plugin command {entry.name!r} not loaded: {error}", err)


add_plugin_commands()


def main() -> None:
    """Console entry point. Once a command is done, the process ends without Python's
    interpreter teardown: with PyTorch loaded that teardown took 0.5-0.8 s, a third of a
    cold `simlib identify`. Commands close their own resources (catalog transactions are
    committed, worker pools shut down) before they return."""
    try:
        app()
        code = 0
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
