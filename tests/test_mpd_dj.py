"""`simlib dj`: the radio rules (pure), and the command against a real MPD.

Expectations come from `simlib.similar` on the same home, so they hold whatever
similarity weights are in use. Songs are played then paused at once, so that no
song ends by itself while a test runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from simlib_mpd.player import MusicDir
from simlib_mpd.radio import SKIP_NEIGHBOURS, Candidate, Radio, Song, was_skipped
from simlib_mpd.settings import DjSettings, split_mpd_host

import simlib

pytest_plugins = ["mpd_server"]

WAIT_S = 60.0


# -- radio rules ---------------------------------------------------------------------------


def cand(path: str, artist: str, score: float = 0.5) -> Candidate:
    return Candidate(path, path.lstrip("/"), artist, score)


def chosen(radio: Radio, queue: list[Song], candidates: list[Candidate], count: int) -> list[str]:
    return [pick.candidate.path for pick in radio.choose(queue, candidates, count).picks]


def test_choose_takes_the_best_ranked_and_skips_history_and_queue():
    radio = Radio(history=2, allow_same_artist=True)
    radio.played(Song("/old", "A"))
    radio.played(Song("/h1", "A"))
    radio.played(Song("/h2", "A"))  # the window holds 2: /old falls out
    queue = [Song("/now", "A"), Song("/next", "A")]
    ranked = [cand(p, "A") for p in ("/h1", "/next", "/old", "/h2", "/now", "/x", "/y")]
    selection = radio.choose(queue, ranked, 3)
    assert [p.candidate.path for p in selection.picks] == ["/old", "/x", "/y"]
    assert [p.rank for p in selection.picks] == [3, 6, 7]
    assert selection.passed["/h1"] == "played within the last 2 songs"
    assert selection.passed["/next"] == "already in the queue"


def test_no_same_artist_back_to_back_unless_allowed():
    ranked = [cand("/a1", "A"), cand("/a2", " a "), cand("/b1", "B"), cand("/b2", "B")]
    ranked.append(cand("/n", ""))  # no artist tag: never "the same artist"
    queue = [Song("/now", "A")]
    assert chosen(Radio(history=5), queue, ranked, 4) == ["/b1", "/a1", "/b2", "/a2"]
    assert chosen(Radio(history=5), queue, ranked[:2], 2) == []
    assert chosen(Radio(history=5), [Song("/now", None)], ranked, 2) == ["/a1", "/b1"]
    allowed = Radio(history=5, allow_same_artist=True)
    assert chosen(allowed, queue, ranked, 3) == ["/a1", "/a2", "/b1"]
    selection = Radio(history=5).choose(queue, ranked[:2], 1)
    assert selection.passed == {
        "/a1": "same artist as the song before (A)",
        "/a2": "same artist as the song before (A)",
    }


def test_skipped_songs_are_never_queued_nor_seeds():
    radio = Radio(history=1, blend=3, allow_same_artist=True)
    radio.played(Song("/s", "A"), skipped=True)
    radio.played(Song("/p", "A"))  # /s leaves the history window, stays skipped
    assert chosen(radio, [Song("/now", "A")], [cand("/s", "A"), cand("/t", "A")], 2) == ["/t"]
    assert radio.seeds(Song("/now", "A"), lambda _: True) == ["/now", "/p"]
    assert radio.seeds(Song("/s", "A"), lambda _: True) == ["/s", "/p"]  # played again by hand


def test_neighbours_of_recent_skips_come_after_all_other_candidates():
    radio = Radio(history=2, allow_same_artist=True)
    radio.played(Song("/s", "A"), skipped=True, neighbours=["/n1", "/n2"])
    radio.played(Song("/p", "A"), neighbours=["/x"])  # not skipped: nothing demoted
    ranked = [cand(p, "A") for p in ("/n1", "/x", "/n2", "/y")]
    selection = radio.choose([Song("/now", "A")], ranked, 3)
    assert [(p.candidate.path, p.rank) for p in selection.picks] == [
        ("/x", 2),
        ("/y", 4),
        ("/n1", 1),
    ]
    radio.played(Song("/q", "A"))
    radio.played(Song("/r", "A"))  # the skip leaves the window: its neighbours are back
    assert chosen(radio, [Song("/now", "A")], ranked, 1) == ["/n1"]


def test_blend_seeds_are_the_current_then_recent_songs_in_the_catalog():
    radio = Radio(history=10, blend=3)
    for path in ("/1", "/2", "/3", "/4"):
        radio.played(Song(path))
    assert radio.seeds(Song("/now"), lambda _: True) == ["/now", "/4", "/3"]
    assert radio.seeds(Song("/now"), lambda p: p in {"/1", "/3"}) == ["/3", "/1"]
    assert Radio(history=10).seeds(Song("/now"), lambda _: True) == ["/now"]


@pytest.mark.parametrize(
    ("heard_s", "duration_s", "skipped"),
    [
        (1.0, 8.0, True),
        (2.9, 8.0, True),
        (3.1, 8.0, False),
        (7.9, 8.0, False),
        (200.0, 300.0, True),
        (245.0, 300.0, False),
        (1.0, None, False),
        (1.0, 0.0, False),
    ],
)
def test_was_skipped_means_stopped_well_before_the_end(heard_s, duration_s, skipped):
    assert was_skipped(heard_s, duration_s) is skipped


def test_settings_precedence_and_mpd_host(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text('[dj]\nhost = "box"\nport = 6601\nhistory = 7\n')
    monkeypatch.delenv("MPD_HOST", raising=False)
    monkeypatch.delenv("MPD_PORT", raising=False)
    settings = DjSettings.load(tmp_path, history=None, blend=3)
    assert (settings.host, settings.port, settings.history, settings.blend) == ("box", 6601, 7, 3)
    assert settings.queue_length == DjSettings.queue_length
    monkeypatch.setenv("MPD_HOST", "secret@/run/mpd/socket")
    monkeypatch.setenv("MPD_PORT", "6602")
    settings = DjSettings.load(tmp_path)
    assert (settings.password, settings.host, settings.port) == ("secret", "/run/mpd/socket", 6602)
    settings = DjSettings.load(tmp_path, host="other", password="flag")
    assert (settings.password, settings.host) == ("flag", "other")
    assert split_mpd_host("@abstract") == (None, "@abstract")
    assert split_mpd_host("pw@@abstract") == ("pw", "@abstract")
    (tmp_path / "config.toml").write_text("[dj]\nqueue = 3\n")
    with pytest.raises(simlib.config.SimlibError, match="unknown setting"):
        DjSettings.load(tmp_path)


def test_music_dir_maps_uris_and_paths(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    music = MusicDir(tmp_path / "link")
    path = music.path("A/b c.mp3")
    assert path == str(tmp_path / "real" / "A" / "b c.mp3")
    assert music.uri(path) == "A/b c.mp3"
    assert music.uri(str(tmp_path / "link" / "x.flac")) == "x.flac"
    assert music.uri(str(tmp_path / "elsewhere.mp3")) is None
    assert music.path("http://radio/stream") == "http://radio/stream"


# -- the command against a real MPD -----------------------------------------------------------


@pytest.fixture(scope="module")
def dj_home(tmp_path_factory, mpd_music) -> Path:
    """A simlib home with MPD's music directory scanned."""
    home = tmp_path_factory.mktemp("dj") / "home"
    report = simlib.scan([mpd_music], home=home, workers=1)
    assert report.failed == 0 and report.analysed == 24
    return home


def uris(music: Path) -> list[str]:
    return sorted(p.relative_to(music).as_posix() for p in music.rglob("*") if p.is_file())


def artist_of(uri: str) -> str:
    return uri.split("/")[0]


def expected(
    home: Path,
    music: Path,
    seeds: list[str],
    queue: list[str],
    exclude: set[str],
    count: int,
    same_artist: bool = False,
    demoted: frozenset[str] = frozenset(),
) -> list[str]:
    """The URIs the DJ should append to `queue`: simlib's ranking for the seeds, without the
    excluded and queued songs, `demoted` ones last, no artist twice in a row unless
    `same_artist`."""
    result = simlib.similar([str(music / s) for s in seeds], home=home, n=100, blend=True)[0]
    left = [Path(r.track.path).relative_to(music).as_posix() for r in result.results]
    left = [u for u in left if u not in exclude and u not in queue]
    left.sort(key=lambda u: u in demoted)
    picks: list[str] = []
    before = queue[-1]
    while len(picks) < count:
        fits = [u for u in left if same_artist or artist_of(u) != artist_of(before)]
        picks.append(fits[0])
        left.remove(fits[0])
        before = fits[0]
    return picks


def play_paused(server, queue: list[str], position: int) -> None:
    """Replace MPD's queue with `queue` and make `queue[position]` the current song, paused."""
    with server.client() as client:
        client.clear()
        for uri in queue:
            client.add(uri)
        client.play(position)
        client.pause(1)


def over_tcp(server) -> list[str]:
    """`simlib dj` options to reach `server` over TCP (so it cannot tell its music dir)."""
    return ["--host", "127.0.0.1", "--port", str(server.port), "--music-dir", str(server.music_dir)]


def dj_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "simlib", "dj", "--home", str(home), *args]


def run_dj(home: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        dj_command(home, *args),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def queue_of(server) -> list[str]:
    """The URIs in the server's queue, in order."""
    with server.client() as client:
        return [song["file"] for song in client.playlistinfo()]


def test_once_queues_the_most_similar_tracks_with_another_artist(mpd_server, dj_home):
    music = mpd_server.music_dir
    song = uris(music)[0]
    play_paused(mpd_server, [song], 0)
    done = run_dj(dj_home, "--once", "-v", *over_tcp(mpd_server))
    assert done.returncode == 0, done.stderr
    want = expected(dj_home, music, [song], [song], set(), 2)
    assert queue_of(mpd_server) == [song, *want]
    assert done.stdout.splitlines() == [f"queued {u}" for u in want]
    assert f"queued {want[0]}: #" in done.stderr


def test_once_honours_history_queue_length_and_allow_same_artist(mpd_server, dj_home):
    music = mpd_server.music_dir
    song = uris(music)[5]
    history = expected(dj_home, music, [song], [song], set(), 2, same_artist=True)
    play_paused(mpd_server, [*history, song], 2)
    args = ["--queue-length", "3", "--allow-same-artist"]
    done = run_dj(dj_home, "--once", *over_tcp(mpd_server), *args)
    assert done.returncode == 0, done.stderr
    want = expected(dj_home, music, [song], [song], set(history), 3, same_artist=True)
    assert queue_of(mpd_server) == [*history, song, *want]


def test_once_over_the_local_socket_asks_mpd_for_its_music_dir_and_blends(mpd_server, dj_home):
    music = mpd_server.music_dir
    earlier, song = uris(music)[10], uris(music)[17]
    play_paused(mpd_server, [earlier, song], 1)
    done = run_dj(dj_home, "--once", "--blend", "2", env={"MPD_HOST": str(mpd_server.socket)})
    assert done.returncode == 0, done.stderr
    want = expected(dj_home, music, [song, earlier], [song], {earlier}, 2)
    assert queue_of(mpd_server) == [earlier, song, *want]


def test_once_warns_about_songs_missing_from_the_catalog(mpd_server, tmp_path):
    song = uris(mpd_server.music_dir)[0]
    play_paused(mpd_server, [song], 0)
    port = str(mpd_server.port)
    done = run_dj(
        tmp_path / "empty-home",
        "--once",
        "--port",
        port,
        "--music-dir",
        str(mpd_server.music_dir),
        env={"MPD_HOST": "127.0.0.1"},
    )
    assert done.returncode == 1, done.stderr  # it could do nothing
    assert f"{song} is not in the simlib catalog" in done.stderr
    assert "nothing to queue" in done.stderr
    assert queue_of(mpd_server) == [song]


def test_once_reports_an_unreachable_mpd(dj_home, tmp_path):
    done = run_dj(
        dj_home, "--once", "--host", "127.0.0.1", "--port", "1", "--music-dir", str(tmp_path)
    )
    assert done.returncode == 1
    assert "error: cannot connect to MPD at 127.0.0.1:1" in done.stderr


def wait_for(ready, log: Path) -> None:
    """Poll `ready()` until it is true, or fail with the DJ log after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out; DJ log:\n{log.read_text()}")


def wait_for_queue(server, length: int, log: Path) -> list[str]:
    """The server's queue once it holds at least `length` songs."""
    queue: list[str] = []

    def long_enough() -> bool:
        queue[:] = queue_of(server)
        return len(queue) >= length

    wait_for(long_enough, log)
    return queue


def test_background_dj_follows_the_player_skips_and_restarts(mpd_server, dj_home, tmp_path):
    music = mpd_server.music_dir
    log = tmp_path / "dj.log"
    with log.open("w") as stderr:
        dj = subprocess.Popen(dj_command(dj_home, "-v", *over_tcp(mpd_server)), stderr=stderr)
    try:
        first = uris(music)[3]
        play_paused(mpd_server, [first], 0)
        want = expected(dj_home, music, [first], [first], set(), 2)
        assert wait_for_queue(mpd_server, 3, log) == [first, *want]

        with mpd_server.client() as client:
            client.next()  # skip `first` after 0 s: the DJ tops the queue up again
            client.pause(1)
        near_first = simlib.similar([music / first], home=dj_home, n=SKIP_NEIGHBOURS)[0].results
        demoted = frozenset(Path(r.track.path).relative_to(music).as_posix() for r in near_first)
        third = expected(dj_home, music, [want[0]], want, {first}, 1, demoted=demoted)
        assert wait_for_queue(mpd_server, 4, log) == [first, *want, *third]
        assert f"skipped {first} after 0 s" in log.read_text()

        mpd_server.restart()  # MPD forgets the queue: `want[0]` joins the history, not skipped
        wait_for(lambda: f"played {want[0]}" in log.read_text(), log)
        assert "lost the connection to MPD" in log.read_text()
        second = uris(music)[20]
        play_paused(mpd_server, [second], 0)
        after = expected(dj_home, music, [second], [second], {first, want[0]}, 2, demoted=demoted)
        assert wait_for_queue(mpd_server, 3, log) == [second, *after]
    finally:
        dj.send_signal(signal.SIGTERM)
        code = dj.wait(timeout=20)
    assert code == 0, log.read_text()
    assert log.read_text().endswith("stopped\n")


def test_once_says_why_nothing_was_queued(mpd_server, dj_home):
    queue = uris(mpd_server.music_dir)[:3]
    play_paused(mpd_server, queue, 0)  # two songs after the current one: enough
    verbose = run_dj(dj_home, "--once", "-v", *over_tcp(mpd_server))
    assert verbose.returncode == 0, verbose.stderr  # nothing to do is not a failure
    assert "the queue already holds 2 songs after the current one" in verbose.stderr
    assert "-v tells why" not in verbose.stderr
    quiet = run_dj(dj_home, "--once", *over_tcp(mpd_server))
    assert quiet.returncode == 0 and quiet.stderr == "queued nothing (-v tells why)\n"
    assert queue_of(mpd_server) == queue


def test_sighup_stops_the_background_dj(mpd_server, dj_home, tmp_path):
    log = tmp_path / "dj.log"
    with log.open("w") as stderr:
        dj = subprocess.Popen(dj_command(dj_home, "-v", *over_tcp(mpd_server)), stderr=stderr)
    try:
        wait_for(lambda: "connected to MPD" in log.read_text(), log)
    finally:
        dj.send_signal(signal.SIGHUP)
        code = dj.wait(timeout=20)
    assert code == 0, log.read_text()
    assert log.read_text().endswith("stopped\n")
