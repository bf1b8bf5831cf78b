"""`simlib dj`: registered as a simlib command through the `simlib.cli` entry-point group."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from simlib.config import HOME_ENV, SimlibError, resolve_home
from simlib_mpd.player import Dj
from simlib_mpd.settings import DjSettings

DEFAULTS = DjSettings()
"""Named in the help texts."""


def fill_once(player: Dj, verbose: int) -> None:
    """`--once`: print what was queued; exit 1 if nothing could be (the log says why)."""
    queued = player.once()
    for candidate in queued:
        typer.echo(f"queued {candidate.uri}")
    if not queued and not verbose:
        typer.echo("queued nothing (-v tells why)", err=True)
    if player.stuck:
        raise typer.Exit(1)


def dj(
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST",
            help="MPD host, socket path or password@host "
            f"(default: $MPD_HOST, else {DEFAULTS.host}).",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(metavar="PORT", help=f"MPD port (default: $MPD_PORT, else {DEFAULTS.port})."),
    ] = None,
    password: Annotated[str | None, typer.Option(metavar="PASSWORD", help="MPD password.")] = None,
    music_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="MPD's music_directory (default: asked from MPD over a local socket, "
            "else music_dir of the dj table in config.toml).",
        ),
    ] = None,
    queue_length: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help=f"Songs to keep queued after the current one (default: {DEFAULTS.queue_length}).",
        ),
    ] = None,
    history: Annotated[
        int | None,
        typer.Option(
            min=0,
            metavar="N",
            help=f"Recently played songs never queued again (default: {DEFAULTS.history}).",
        ),
    ] = None,
    blend: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help=f"Seed from the last N played songs (default: {DEFAULTS.blend}).",
        ),
    ] = None,
    allow_same_artist: Annotated[
        bool | None,
        typer.Option(
            "--allow-same-artist/--no-allow-same-artist",
            help="Allow one artist back to back (default: no).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Fill the queue once and exit (exit code 1 if nothing could be queued).",
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            show_default=False,
            help="-v: what is queued and why (or why nothing is); -vv: more.",
        ),
    ] = 0,
    home: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", envvar=HOME_ENV, help="simlib data folder.", show_default=False
        ),
    ] = None,
) -> None:
    """Auto-DJ for MPD: keep the queue filled with tracks similar to what is playing.

    Flags override the dj table of $SIMLIB_HOME/config.toml (same names, with _).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("simlib dj: %(levelname)s: %(message)s"))
    logger = logging.getLogger("simlib_mpd")
    logger.addHandler(handler)
    logger.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
    try:
        data_home = resolve_home(home)
        settings = DjSettings.load(
            data_home,
            host=host,
            port=port,
            password=password,
            queue_length=queue_length,
            history=history,
            blend=blend,
            allow_same_artist=allow_same_artist,
        )
        player = Dj(settings, data_home, music_dir)
        for signum in (signal.SIGTERM, signal.SIGHUP):  # stop as Ctrl-C does (not if ignored)
            if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler):
                signal.signal(signum, signal.default_int_handler)
        if once:
            fill_once(player, verbose)
            return
        player.run()
    except KeyboardInterrupt:
        logger.info("stopped")
    except SimlibError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
