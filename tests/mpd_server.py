"""A real MPD for tests: `mpd --no-daemon` on 127.0.0.1 (and a local socket), null output.

Use the `mpd_music` and `mpd_server` fixtures by adding `pytest_plugins = ["mpd_server"]`
to a test module. The server's database is up to date with its music directory
when the fixture returns; `MpdServer.restart()` stops it by pid and starts it again
on the same port (with an empty queue, as there is no state file).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import mpd
import pytest

from simlib import example_library

MPD = shutil.which("mpd")
START_TIMEOUT_S = 15.0
MUSIC_FORMATS = ("mp3", "flac", "ogg")

CONFIG = """\
music_directory     "{music_dir}"
playlist_directory  "{state_dir}/playlists"
db_file             "{state_dir}/database"
log_file            "{state_dir}/mpd.log"
bind_to_address     "127.0.0.1"
bind_to_address     "{socket}"
port                "{port}"
auto_update         "no"
zeroconf_enabled    "no"
audio_output {{
    type "null"
    name "null"
}}
"""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MpdServer:
    """One MPD process serving `music_dir`; its files live in `state_dir`."""

    def __init__(self, music_dir: Path, state_dir: Path) -> None:
        if MPD is None:
            raise RuntimeError("mpd is not installed")
        self.music_dir = music_dir
        self.state_dir = state_dir
        self.port = free_port()
        # A short folder of its own: a socket path must fit in 108 bytes.
        self.socket = Path(tempfile.mkdtemp(prefix="simlib-mpd-")) / "socket"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start MPD and return once it answers and its database update has finished."""
        (self.state_dir / "playlists").mkdir(parents=True, exist_ok=True)
        config = self.state_dir / "mpd.conf"
        config.write_text(
            CONFIG.format(
                music_dir=self.music_dir,
                state_dir=self.state_dir,
                socket=self.socket,
                port=self.port,
            )
        )
        self.process = subprocess.Popen(
            [MPD, "--no-daemon", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.state_dir / "mpd.stderr").open("ab"),
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with self.client() as client:
                    client.update()
                    while "updating_db" in client.status():
                        time.sleep(0.05)
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.state_dir / "mpd.log").read_text(errors="replace")
                    self.stop()
                    raise RuntimeError(f"mpd did not start; its log:\n{log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop MPD by its pid (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.socket.parent, ignore_errors=True)

    @contextmanager
    def client(self) -> Iterator[mpd.MPDClient]:
        """A python-mpd2 client connected over TCP."""
        client = mpd.MPDClient()
        client.timeout = 10
        client.connect("127.0.0.1", self.port)
        try:
            yield client
        finally:
            client.disconnect()


@pytest.fixture(scope="module")
def mpd_music(tmp_path_factory) -> Path:
    """MPD's music directory: 24 generated 8 s tracks (6 artists x 2 albums x 2)."""
    root = tmp_path_factory.mktemp("mpd") / "music"
    example_library.make_library(root, tracks_per_album=2, seconds=8.0, formats=MUSIC_FORMATS)
    return root


@pytest.fixture
def mpd_server(tmp_path, mpd_music) -> Iterator[MpdServer]:
    """A running MPD serving `mpd_music`, with an empty queue; stopped after the test."""
    if MPD is None:
        pytest.skip("mpd (Music Player Daemon) is not installed: apt-get install mpd")
    server = MpdServer(mpd_music, tmp_path / "mpd")
    try:
        server.start()
        yield server
    finally:
        server.close()
