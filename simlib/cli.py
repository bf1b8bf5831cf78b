"""The `simlib` command: parses arguments, calls `simlib.api`, prints results."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
from rich.status import Status
from rich.table import Table
from rich.text import Text

from simlib import api
from simlib.config import HOME_ENV, SimlibError

app = typer.Typer(
    help="Know what your music library sounds like: identify clips, find similar tracks.\n\n"
    "Exit codes: 0 done; 1 an input or the catalog failed (each failure is named on "
    "stderr, the other inputs are still answered); 2 a usage error; 128 + N when stopped "
    "by signal N (Ctrl-C: 130), finished work kept.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no <bool>/<int> type labels after flags
)
out = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        envvar=HOME_ENV,
        help="Data folder (catalog and indexes) "
        "[default: the user data dir, ~/.local/share/simlib on Linux].",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (one object per line) instead of text.")
]
STDIN = "-"
"""An input named "-" is read from standard input."""
NO_STDIN_AUDIO = "no audio on standard input"
INPUT_FAILED = 1
"""The exit code when an input could not be read (the others are still answered)."""
USAGE = 2
"""The exit code of a usage error, as Click gives it."""
MODELS = tuple(api.TRAINING_MINUTES)
"""What `simlib train` trains."""


def say(text: str, console: Console = out) -> None:
    """Print user data as is: no markup, no highlighting, no wrapping of long paths."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    say(f"error: {message}", err)
    raise typer.Exit(code)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is: work stops, finished work is kept."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def stop_on_signals() -> None:
    """Make SIGTERM (kill, timeout, a service manager) and SIGHUP (a closed terminal) stop
    a command the way Ctrl-C does, so that its worker processes are stopped with it. A
    signal the caller set to be ignored (nohup) stays ignored."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _stop)


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


class RateColumn(ProgressColumn):
    """Items per second, with the unit of the task."""

    def render(self, task) -> Text:  # noqa: ANN001 - rich's Task
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {task.fields.get('unit', 'it')}/s" if speed else "")


def new_scan_progress(enabled: bool = True) -> Progress:
    """The progress display of a scan, on stderr: per phase, files done of all, minutes
    of audio analysed, rate and time left."""
    return Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[audio]}"),
        RateColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled,
    )


def progress_callback(progress: Progress):  # noqa: ANN201 - a ScanProgress
    """The scan's progress callback, drawing on `progress`."""
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int, audio_s: float) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=total, unit="files", audio="")
        audio = f"{audio_s / 60:.1f} min of audio" if audio_s else ""
        progress.update(tasks[phase], completed=done, total=total, audio=audio)

    return update


@contextmanager
def scan_progress(enabled: bool):
    """A progress bar per scan phase, on stderr; yields the scan's callback."""
    progress = new_scan_progress(enabled)
    with progress:
        yield progress_callback(progress)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn SimlibError, Ctrl-C, SIGTERM and SIGHUP into one-line messages and exit codes
    (1, and 128 + the signal's number)."""
    try:
        yield
    except SimlibError as error:
        fail(str(error))
    except KeyboardInterrupt as stop:
        code = 128 + (stop.signum if isinstance(stop, Stopped) else signal.SIGINT)
        fail("interrupted; finished work is saved, run the command again to resume", code)


WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=1, metavar="N", help="Analysis processes [default: one per core, or workers in config]."
    ),
]


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be scanned, in the user's words, or None."""
    if folder.is_dir():
        return None
    return "not a folder" if folder.exists() else "no such folder"


@app.command()
def scan(
    dirs: Annotated[
        list[Path] | None,
        typer.Argument(metavar="DIR", help="Library folders (default: all registered)."),
    ] = None,
    home: HomeOption = None,
    workers: WorkersOption = None,
    follow_symlinks: Annotated[
        bool | None,
        typer.Option(
            "--follow-symlinks/--no-follow-symlinks",
            help="Follow symbolic links [default: follow_symlinks in config, else no].",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Add library folders and analyse new or changed files.

    A folder that is not there is named on stderr and the others are scanned; the exit
    code is then 1. Files that cannot be analysed are recorded with a reason (see
    `simlib status`) and do not change the exit code.
    """
    problems = {str(d): why for d in dirs or [] if (why := folder_problem(d))}
    for folder, why in problems.items():
        say(f"{folder}: {why}", err)
    if dirs and len(problems) == len(dirs):
        raise typer.Exit(INPUT_FAILED)
    with user_errors(), scan_progress(not quiet and not as_json) as progress:
        report = api.scan(
            [d for d in dirs or [] if str(d) not in problems],
            home=home,
            follow_symlinks=follow_symlinks,
            workers=workers,
            progress=progress,
        )
    print_scan_report(report, as_json)
    if problems:
        raise typer.Exit(INPUT_FAILED)


def print_scan_report(report: api.ScanReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    say(
        f"{report.files} files: {report.analysed} analysed, {report.reused} reused, "
        f"{report.unchanged} unchanged, {report.failed} failed, {report.removed} removed "
        f"({report.audio_s / 60:.1f} min of audio in {report.seconds:.1f} s)"
    )
    for root in report.missing_roots:
        if root in report.empty_missing_roots:
            say(
                f"warning: library folder not found and it holds no tracks any more: {root} "
                f"(`simlib roots remove {root}` forgets it)",
                err,
            )
        else:
            say(f"warning: library folder not found, its tracks kept as they are: {root}", err)
    for path, reason in report.errors.items():
        say(f"failed: {path}: {reason}", err)


@app.command()
def status(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Library counts, failures with reasons, index freshness, disk use, the watcher."""
    with user_errors():
        summary = api.status(home)
    if as_json:
        print_json(summary)
        return
    missing = set(summary["missing_roots"])
    roots = [f"{r} (missing)" if r in missing else r for r in summary["roots"]]
    say(f"home      {summary['home']}")
    say(f"roots     {', '.join(roots) or '(none)'}")
    say(
        f"tracks    {summary['tracks']} ok, {summary['failed']} failed, "
        f"{summary['audio_hours']:.2f} h of audio"
    )
    disk = summary["disk"]
    say(
        f"disk      catalog {disk['catalog_bytes'] / 1e6:.1f} MB, "
        f"indexes {disk['index_bytes'] / 1e6:.1f} MB"
    )
    watcher = summary["watcher"]
    if watcher is not None:
        say(f"watcher   {describe_watcher(watcher)}")
    if summary["indexes"]:
        stale = "no (watcher rebuilds)" if watcher is not None else "no (run scan)"
        table = Table("index", "items", "tracks", "built", "fresh")
        for row in summary["indexes"]:
            fresh = "yes" if row["fresh"] else stale
            built = datetime.fromisoformat(row["built_at"]).astimezone()  # local time
            table.add_row(
                row["name"],
                str(row["items"]),
                str(row["tracks"]),
                built.strftime("%Y-%m-%d %H:%M"),
                fresh,
            )
        out.print(table)
    for failure in summary["failures"]:
        say(f"failed    {failure['path']}: {failure['error']}")


def describe_watcher(state: dict) -> str:
    """What a running watcher noted, as one line of `simlib status`."""
    pid = f" (pid {state['pid']})" if "pid" in state else ""
    phase = state.get("phase", "watching")
    if phase != "watching":
        return f"running{pid}: {phase}"
    waiting = state.get("waiting", 0)
    changes = f"{waiting} change{'s' if waiting != 1 else ''} waiting"
    return f"running{pid}: keeps the catalog current ({changes})"


def read_clips(clips: list[str]) -> list:
    """The clips as the API takes them: "-" becomes standard input's bytes."""
    return [(STDIN, io.BytesIO(sys.stdin.buffer.read())) if c == STDIN else c for c in clips]


def in_user_words(result):  # noqa: ANN001, ANN201 - any QueryResult
    """The result, with the error of empty standard input said as the user knows it."""
    if result.query == STDIN and result.error and "0 bytes" in result.error:
        return dataclasses.replace(result, error=NO_STDIN_AUDIO)
    return result


def exit_code(results: list) -> int:
    """1 if any input failed (each was named on stderr), else 0."""
    return INPUT_FAILED if any(r.error for r in results) else 0


def describe_match(result) -> str:  # noqa: ANN001 - an IdentifyResult
    if result.match is None:
        return f"{result.query}: no match"
    m = result.match.as_dict()
    at_s = round(m["offset_s"], 1) + 0.0  # no "-0.0"
    copies = f" (+{len(m['copies'])} copies)" if m["copies"] else ""
    return (
        f"{result.query}: {m['artist'] or '?'} - {m['title']} ({m['album'] or '?'}) "
        f"at {at_s:.1f} s, confidence {m['confidence']:.2f}  [{m['path']}]{copies}"
    )


@app.command()
def identify(
    clips: Annotated[
        list[str],
        typer.Argument(metavar="CLIP", help="Audio clips; - reads one from stdin."),
    ],
    home: HomeOption = None,
    top: Annotated[
        int | None,
        typer.Option(
            "--top",
            "-k",
            min=1,
            metavar="N",
            help="Candidates per clip [default: identify_top in config, else 5].",
        ),
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="P",
            help="Below this confidence answer 'no match' "
            "[default: min_confidence in config, else 0.5].",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Which library track is each CLIP, and where in it?

    Every clip is answered; one that cannot be read is named on stderr (and gets an
    "error" in --json), and the exit code is then 1.
    """
    with user_errors():
        results = api.identify(read_clips(clips), home=home, top=top, min_confidence=min_confidence)
    for result in map(in_user_words, results):
        if as_json:
            print_json(result.as_dict())
        if result.error:
            say(f"{result.query}: {result.error}", err)
        elif not as_json:
            say(describe_match(result))
    raise typer.Exit(exit_code(results))


@app.command()
def similar(
    tracks: Annotated[
        list[str],
        typer.Argument(metavar="TRACK", help="Library tracks or any audio files."),
    ],
    home: HomeOption = None,
    n: Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            min=1,
            metavar="N",
            help="Results per track [default: similar_count in config, else 10].",
        ),
    ] = None,
    exclude_artist: Annotated[
        bool, typer.Option("--exclude-artist", help="Leave out the query's artist.")
    ] = False,
    exclude_album: Annotated[
        bool, typer.Option("--exclude-album", help="Leave out the query's album.")
    ] = False,
    blend: Annotated[
        bool, typer.Option("--blend", help="Treat all TRACKS as one seed set: one playlist.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Library tracks that sound like each TRACK.

    Copies of one recording count once, and never the query's own. Every track is
    answered; one that cannot be read is named on stderr (and gets an "error" in
    --json), and the exit code is then 1.
    """
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
        if result.error:  # a blend's error names each input that failed
            say(result.error if blend else f"{result.query}: {result.error}", err)
        if as_json or (result.error and not result.results):
            continue
        say(result.query)
        for rank, r in enumerate((r.as_dict() for r in result.results), 1):
            say(
                f"{rank:3d}. {r['score']:.3f}  {r['artist'] or '?'} - {r['title']} "
                f"({r['album'] or '?'})  [{r['path']}]"
            )
    raise typer.Exit(exit_code(results))


@app.command()
def train(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="fingerprint or similarity")],
    home: HomeOption = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            metavar="M",
            help="Training time budget, minutes (default: fingerprint 20; similarity 0,"
            " only the album scatter of your tags).",
        ),
    ] = None,
    noise: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            file_okay=False,
            exists=True,
            help="Folder with speech/ and ambient/ WAV clips (fingerprint: required).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fine-tune a model on your library (resumable), then re-embed the library."""
    if model not in MODELS:
        fail(f"unknown model {model!r}: train fingerprint or similarity", USAGE)
    if model == "fingerprint" and noise is None:
        fail(
            "train fingerprint needs --noise DIR: a folder of speech/ (and ambient/) WAV clips",
            USAGE,
        )
    bar = Progress(
        TextColumn("training {task.fields[model]}"),
        BarColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]}"),
        console=err,
        disable=as_json,
    )
    budget_s = 60 * api.training_minutes(model, minutes)
    task = bar.add_task("train", total=budget_s, model=model, loss=float("nan"), rate="")
    started = time.monotonic()

    def progress(update: dict) -> None:
        bar.start()  # on the first update: nothing shows if training cannot start
        rate = f"{update['pairs_per_s']:.0f} pairs/s" if "pairs_per_s" in update else ""
        if update.get("members", 1) > 1:
            rate = f"encoder {update['member'] + 1}/{update['members']}  {rate}"
        bar.update(task, completed=time.monotonic() - started, loss=update["loss"], rate=rate)

    try:
        with user_errors():
            metrics = api.train(
                model, home=home, minutes=minutes, noise_dir=noise, progress=progress
            )
    finally:
        if bar.live.is_started:
            bar.stop()
    if as_json:
        print_json(metrics)
        return
    for key, value in metrics.items():
        if key != "rescan":
            say(f"{key:22} {value:.4f}" if isinstance(value, float) else f"{key:22} {value}")
    rescan = metrics.get("rescan", {})
    say(f"library re-embedded: {rescan.get('analysed', 0)} tracks")


FILES_NAMED = 5
"""Files a watcher's log line names per kind of change (the JSON log has them all)."""


def _named(paths: list[str], roots: list[str]) -> str:
    """Paths as a log line names them: relative to their root, the first few only."""
    names = []
    for path in paths[:FILES_NAMED]:
        root = next((r for r in roots if path.startswith(r + os.sep)), None)
        names.append(path[len(root) + 1 :] if root else path)
    more = f" and {len(paths) - FILES_NAMED} more" if len(paths) > FILES_NAMED else ""
    return ", ".join(names) + more


def describe_event(event: dict, roots: list[str]) -> str:
    """One line of the watcher's text log; `roots` shorten the paths it names."""
    kind = event["event"]
    if kind in ("batch", "reconciled", "root-returned"):
        files = event.get("files", {})
        counts = ", ".join(
            f"{event[k]} {k}" + (f" ({_named(files[k], roots)})" if files.get(k) else "")
            for k in ("analysed", "reused", "removed", "failed")
            if event.get(k)
        )
        where = f" {event['root']}" if "root" in event else ""
        return f"{kind}{where}: {counts or 'nothing new'}"
    if kind == "indexes-rebuilt":
        return f"indexes rebuilt: {', '.join(event['indexes'])}"
    if kind == "watching":
        return f"watching {', '.join(event['roots'])}"
    if kind == "root-missing":
        return f"library folder missing (kept as is until it returns): {event['root']}"
    return event.get("message", kind)


class WatchDisplay:
    """The watcher's text display on stderr: a scan's progress bars while it reconciles,
    then a status line; log lines print above either."""

    def __init__(self, json_log: bool) -> None:
        self.json_log = json_log
        self.roots: list[str] = []
        self.progress = new_scan_progress(enabled=not json_log)
        self.update = progress_callback(self.progress)
        self.status = err.status("starting", spinner="dots")
        self.live: Progress | Status | None = None

    def show(self, live: Progress | Status | None) -> None:
        """Swap the live part of the display (one may run at a time)."""
        if self.json_log or live is self.live:
            return
        if self.live is not None:
            self.live.stop()
        self.live = live
        if live is not None:
            live.start()

    def on_progress(self, phase: str, done: int, total: int, audio_s: float) -> None:
        self.show(self.progress)
        self.update(phase, done, total, audio_s)

    def log(self, event: dict) -> None:
        event = {"time": datetime.now().isoformat(timespec="seconds"), **event}
        if event["event"] == "watching":
            self.roots = event["roots"]
        if self.json_log:
            print_json(event)
            return
        if event["event"] in ("reconciled", "root-returned"):
            self.status.update("loading the analysis models")
            self.show(self.status)
        say(f"{event['time']} {describe_event(event, self.roots)}", err)

    def on_tick(self, snapshot: dict) -> None:
        if not self.json_log:
            self.show(self.status)
            self.status.update(
                f"watching: {snapshot['settling']} settling, {snapshot['queued']} queued, "
                f"{snapshot['removals']} removals pending"
            )


@app.command()
def watch(
    dirs: Annotated[
        list[Path] | None,
        typer.Argument(metavar="DIR", help="Folders to follow (default: all registered)."),
    ] = None,
    home: HomeOption = None,
    workers: WorkersOption = None,
    json_log: Annotated[bool, typer.Option("--json-log", help="One JSON line per event.")] = False,
) -> None:
    """Keep the catalog and indexes current as files come and go (Ctrl-C stops)."""
    problems = {str(d): why for d in dirs or [] if (why := folder_problem(d))}
    for folder, why in problems.items():
        say(f"{folder}: {why}", err)
    if problems:
        raise typer.Exit(INPUT_FAILED)
    display = WatchDisplay(json_log)
    display.show(display.status)
    try:
        with user_errors():
            try:
                api.watch(
                    dirs or [],
                    home=home,
                    workers=workers,
                    log=display.log,
                    on_tick=display.on_tick,
                    progress=display.on_progress,
                    stop=threading.Event(),
                )
            except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: how a watcher ends
                display.log({"event": "stopped"})
    finally:
        display.show(None)


roots_app = typer.Typer(
    help="The registered library folders: list them (with track counts), or forget one.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(roots_app, name="roots")


@roots_app.callback()
def roots(ctx: typer.Context, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List the registered library folders, their tracks, and whether each is there."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        rows = api.roots(home)
    if as_json:
        print_json(rows)
        return
    if not rows:
        say("no library folders yet: run `simlib scan DIR`")
    for row in rows:
        where = "" if row["present"] else "  (missing)"
        failed = f", {row['failed']} failed" if row["failed"] else ""
        say(f"{row['path']}  {row['tracks']} tracks{failed}{where}")


@roots_app.command("remove")
def remove_root(
    folder: Annotated[Path, typer.Argument(metavar="DIR", help="A registered library folder.")],
    home: HomeOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say how many tracks would leave.")
    ] = False,
) -> None:
    """Forget a library folder: its tracks leave the catalog and the indexes (the files
    stay where they are)."""
    with user_errors():
        count = api.remove_root(folder, home=home, dry_run=dry_run)
    if dry_run:
        say(f"would forget {folder} and its {count} tracks (nothing changed)")
    else:
        say(f"forgot {folder} and its {count} tracks")


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
    stop_on_signals()
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
