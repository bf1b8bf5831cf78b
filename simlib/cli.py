"""The `simlib` command: parses arguments, calls `simlib.api`, prints results."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
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


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
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
    out.print(
        f"{report.files} files: {report.analysed} analysed, {report.reused} reused, "
        f"{report.unchanged} unchanged, {report.failed} failed, {report.removed} removed "
        f"({report.audio_s / 60:.1f} min of audio in {report.seconds:.1f} s)",
        highlight=False,
    )
    for root in report.missing_roots:
        err.print(f"[yellow]warning:[/yellow] library folder not found, kept as is: {root}")
    for path, reason in report.errors.items():
        err.print(f"[yellow]failed:[/yellow] {path}: {reason}", highlight=False, soft_wrap=True)


@app.command()
def status(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Library counts, failures with reasons, index freshness, disk use."""
    with user_errors():
        summary = api.status(home)
    if as_json:
        print_json(summary)
        return
    out.print(f"home      {summary['home']}", highlight=False)
    out.print(f"roots     {', '.join(summary['roots']) or '(none)'}", highlight=False)
    out.print(
        f"tracks    {summary['tracks']} ok, {summary['failed']} failed, "
        f"{summary['audio_hours']:.2f} h of audio",
        highlight=False,
    )
    disk = summary["disk"]
    out.print(
        f"disk      catalog {disk['catalog_bytes'] / 1e6:.1f} MB, "
        f"indexes {disk['index_bytes'] / 1e6:.1f} MB",
        highlight=False,
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
        out.print(
            f"failed    {failure['path']}: {failure['error']}", highlight=False, soft_wrap=True
        )


def main() -> None:
    app()
