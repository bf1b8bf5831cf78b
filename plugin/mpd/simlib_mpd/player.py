"""The MPD side of `simlib dj`: connection, idle loop, queue, MPD URIs <-> library files.

The DJ waits in MPD's `idle` for player and queue changes (no polling). On each
change it notes which song stopped being current and whether it was skipped,
then, if fewer than `queue_length` songs follow the current one, asks simlib
for tracks similar to the recent songs and lets `radio.Radio` pick which to
append. It stores nothing in MPD and reconnects with back-off when MPD goes away.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import mpd

import simlib
from simlib.config import SimlibError
from simlib_mpd.radio import SKIP_NEIGHBOURS, Candidate, Radio, Selection, Song, was_skipped
from simlib_mpd.settings import DjSettings

log = logging.getLogger("simlib_mpd")

CONNECTION_ERRORS = (OSError, mpd.ConnectionError, mpd.ProtocolError)
COMMAND_TIMEOUT_S = 10.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
"""Reconnection delays double from the first to the max while MPD cannot be reached."""
IDLE_EVENTS = ("player", "playlist")


class MusicDir:
    """MPD's music_directory: song URIs are paths relative to it."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().absolute()
        self.resolved = self.root.resolve()

    def path(self, uri: str) -> str:
        """The absolute library path of a song URI (a stream URL is returned as is)."""
        if "://" in uri:
            return uri
        return str((self.root / uri).resolve())

    def uri(self, path: str) -> str | None:
        """The song URI of a library file, or None if it is outside the music directory."""
        for base in (self.resolved, self.root):
            try:
                return Path(path).relative_to(base).as_posix()
            except ValueError:
                continue
        return None


def first_tag(value: str | list[str] | None) -> str | None:
    """MPD sends a repeated tag as several values (a list in python-mpd2): keep the first."""
    return value[0] if isinstance(value, list) else value


@dataclass
class NowPlaying:
    """The current song and how far into it the player was at monotonic time `at_s`."""

    song_id: str
    song: Song
    duration_s: float | None
    elapsed_s: float
    at_s: float
    playing: bool

    def heard_s(self, now_s: float) -> float:
        """Seconds of the song played by monotonic time `now_s`."""
        return self.elapsed_s + (now_s - self.at_s if self.playing else 0.0)


class Dj:
    """One auto-DJ session: the radio's memory survives reconnections.

    `music_dir`: MPD's music directory if given on the command line (it wins over asking MPD,
    which wins over `settings.music_dir`); `home`: the simlib data folder.
    """

    def __init__(self, settings: DjSettings, home: Path, music_dir: Path | None = None) -> None:
        self.settings = settings
        self.home = home
        self.music_dir_flag = music_dir
        self.radio = Radio(settings.history, settings.blend, settings.allow_same_artist)
        self.music: MusicDir | None = None
        self.now: NowPlaying | None = None
        self.primed = False
        self.warned: set[str] = set()
        self.unplayable: set[str] = set()
        self.stuck = False
        """Whether the last `fill` could not do its job (nothing playing, no seed in the
        catalog, no candidate fitting the rules), as opposed to having nothing to do."""

    @property
    def address(self) -> str:
        host = self.settings.host
        return host if host.startswith(("/", "@")) else f"{host}:{self.settings.port}"

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> mpd.MPDClient:
        """A connected, authenticated client that has noted what is playing.

        Raises CONNECTION_ERRORS if MPD cannot be reached, mpd.CommandError if it refuses
        (wrong password, no permission), SimlibError if its music directory is unknown.
        """
        client = mpd.MPDClient()
        client.timeout = COMMAND_TIMEOUT_S
        client.connect(self.settings.host, self.settings.port)
        try:
            if self.settings.password:
                client.password(self.settings.password)
            self.music = MusicDir(self.music_dir_flag or self._ask_music_dir(client))
            if not self.primed:
                self._prime_history(client)
            self.observe(client)
        except BaseException:
            client.disconnect()
            raise
        return client

    def _ask_music_dir(self, client: mpd.MPDClient) -> str:
        """MPD's music_directory (MPD tells local-socket clients only), else the `[dj]` one."""
        try:
            return client.config()
        except mpd.CommandError:
            if self.settings.music_dir:
                return self.settings.music_dir
        raise SimlibError(
            f"MPD at {self.address} does not tell its music directory to remote clients: "
            "pass --music-dir or set music_dir in the [dj] table of config.toml"
        )

    def _prime_history(self, client: mpd.MPDClient) -> None:
        """Songs before the current one in the queue count as played (not skipped)."""
        position = client.status().get("song")
        if position is not None and self.settings.history:
            start = max(0, int(position) - self.settings.history)
            for entry in client.playlistinfo(f"{start}:{position}"):
                self.radio.played(self.song(entry))
        self.primed = True

    def song(self, entry: dict) -> Song:
        """A queue entry (MPD's song dict) as a radio song."""
        assert self.music is not None
        return Song(self.music.path(entry["file"]), first_tag(entry.get("artist")))

    # -- what is playing ----------------------------------------------------------------

    def observe(self, client: mpd.MPDClient) -> None:
        """Note the current song and, if it changed, whether the previous one was skipped."""
        status = client.status()
        now_s = time.monotonic()
        song_id = status.get("songid")
        entry = client.currentsong() if song_id is not None else {}
        song = self.song(entry) if entry else None
        previous = self.now
        if previous and song and (previous.song_id, previous.song) == (song_id, song):
            previous.elapsed_s = float(status.get("elapsed", 0.0))
            previous.at_s = now_s
            previous.playing = status.get("state") == "play"
            return
        if previous:
            heard_s = previous.heard_s(now_s)
            skipped = song is not None and was_skipped(heard_s, previous.duration_s)
            neighbours = self._neighbours(previous.song.path) if skipped else []
            self.radio.played(previous.song, skipped, neighbours)
            log.info(
                "%s %s after %.0f s",
                "skipped" if skipped else "played",
                self._name(previous.song.path),
                heard_s,
            )
        self.now = None
        if song and song_id is not None:
            duration = entry.get("duration") or status.get("duration")
            self.now = NowPlaying(
                song_id,
                song,
                float(duration) if duration else None,
                float(status.get("elapsed", 0.0)),
                now_s,
                status.get("state") == "play",
            )

    def _neighbours(self, path: str) -> list[str]:
        """The tracks nearest to a catalogued song (none for other songs)."""
        catalog = simlib.open_catalog(self.home)
        try:
            if catalog.track_by_path(path) is None:
                return []
        finally:
            catalog.close()
        try:
            result = simlib.similar([path], home=self.home, n=SKIP_NEIGHBOURS)[0]
        except SimlibError as error:
            log.error("%s", error)
            return []
        return [r.track.path for r in result.results]

    def _name(self, path: str) -> str:
        """How the log names a song: its URI."""
        return (self.music.uri(path) if self.music else None) or path

    # -- filling the queue --------------------------------------------------------------

    def fill(self, client: mpd.MPDClient) -> list[Candidate]:
        """Append similar songs until `queue_length` follow the current one; return them."""
        status = client.status()
        self.stuck = "song" not in status
        if self.stuck:
            log.info("nothing is playing: nothing to queue")
            return []
        position = int(status["song"])
        upcoming = int(status["playlistlength"]) - position - 1
        wanted = self.settings.queue_length - upcoming
        if wanted <= 0:
            log.info(
                "the queue already holds %d song%s after the current one (queue length %d): "
                "nothing to queue",
                upcoming,
                "" if upcoming == 1 else "s",
                self.settings.queue_length,
            )
            return []
        queue = [self.song(entry) for entry in client.playlistinfo(f"{position}:")]
        seeds = self._seeds(queue[0])
        self.stuck = not seeds
        if self.stuck:
            log.warning("no recent song is in the simlib catalog: nothing to queue")
            return []
        selection = self._select(seeds, queue, wanted)
        added: list[Candidate] = []
        for pick in selection.picks:
            candidate = pick.candidate
            try:
                client.add(candidate.uri)
            except mpd.CommandError as error:
                log.warning(
                    "MPD cannot queue %s (%s): is its database up to date?", candidate.uri, error
                )
                self.unplayable.add(candidate.path)
                return added + self.fill(client)
            added.append(candidate)
            log.info(
                "queued %s: #%d most similar to %s (score %.3f)",
                candidate.uri,
                pick.rank,
                " + ".join(self._name(s) for s in seeds),
                candidate.score,
            )
        for path, reason in selection.passed.items():
            log.debug("passed over %s: %s", self._name(path), reason)
        if len(added) < wanted:
            log.warning(
                "only %d of %d songs to queue: no other track fits the rules", len(added), wanted
            )
        self.stuck = not added
        return added

    def _seeds(self, current: Song) -> list[str]:
        """The radio's seeds among catalogued songs; warns once per song missing from it."""
        catalog = simlib.open_catalog(self.home)
        try:

            def known(path: str) -> bool:
                return catalog.track_by_path(path) is not None

            if not known(current.path) and current.path not in self.warned:
                self.warned.add(current.path)
                log.warning(
                    "%s is not in the simlib catalog at %s: run `simlib scan %s`",
                    self._name(current.path),
                    self.home,
                    self.music.root if self.music else "MUSIC_DIR",
                )
            return self.radio.seeds(current, known)
        finally:
            catalog.close()

    def _select(self, seeds: list[str], queue: list[Song], wanted: int) -> Selection:
        """Ask simlib for more and more neighbours until the radio finds `wanted` of them."""
        assert self.music is not None
        n = wanted + len(queue) + len(self.radio.history) + len(self.radio.skipped) + 8
        while True:
            result = simlib.similar(seeds, home=self.home, n=n, blend=True)[0]
            if result.error:
                log.warning("%s", result.error)
            candidates = []
            for found in result.results:
                path = found.track.path
                uri = self.music.uri(path)
                if uri is None or path in self.unplayable:
                    log.debug("not queueable (outside the music directory): %s", path)
                    continue
                candidates.append(Candidate(path, uri, found.track.tags.artist, found.score))
            selection = self.radio.choose(queue, candidates, wanted)
            if len(selection.picks) == wanted or len(result.results) < n:
                return selection
            n *= 4

    # -- running ------------------------------------------------------------------------

    def once(self) -> list[Candidate]:
        """Connect, fill the queue once, disconnect; SimlibError if MPD cannot be reached."""
        try:
            client = self.connect()
            try:
                return self.fill(client)
            finally:
                client.disconnect()
        except mpd.CommandError as error:
            raise SimlibError(f"MPD at {self.address}: {error}") from error
        except CONNECTION_ERRORS as error:
            raise SimlibError(f"cannot connect to MPD at {self.address}: {error}") from error

    def run(self) -> None:
        """Keep the queue filled, reconnecting whenever MPD goes away, until interrupted
        (KeyboardInterrupt: the command turns SIGINT and SIGTERM into one)."""
        delay_s = RETRY_FIRST_S
        while True:
            try:
                client = self.connect()
            except mpd.CommandError as error:
                raise SimlibError(f"MPD at {self.address}: {error}") from error
            except CONNECTION_ERRORS as error:
                log.warning(
                    "cannot connect to MPD at %s (%s); retrying in %.1f s",
                    self.address,
                    error,
                    delay_s,
                )
                time.sleep(delay_s)
                delay_s = min(2 * delay_s, RETRY_MAX_S)
                continue
            delay_s = RETRY_FIRST_S
            log.info("connected to MPD %s at %s", client.mpd_version, self.address)
            try:
                self._serve(client)
            except mpd.CommandError as error:
                raise SimlibError(f"MPD at {self.address}: {error}") from error
            except CONNECTION_ERRORS as error:
                log.warning("lost the connection to MPD (%s); reconnecting", error or "closed")
            finally:
                client.disconnect()

    def _serve(self, client: mpd.MPDClient) -> None:
        """Fill, then wait in `idle` for player and queue changes and react to each."""
        self._fill_logging_errors(client)
        while True:
            events = client.idle(*IDLE_EVENTS)
            if "player" in events:
                self.observe(client)
            self._fill_logging_errors(client)

    def _fill_logging_errors(self, client: mpd.MPDClient) -> None:
        """Fill the queue; a user error (say an empty library) is logged, not fatal."""
        try:
            self.fill(client)
        except SimlibError as error:
            log.error("%s", error)
