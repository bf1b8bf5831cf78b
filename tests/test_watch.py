"""The watcher, on real file-system events in temporary folders."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import MeanMel

from simlib import audio, example_library
from simlib.catalog import Catalog
from simlib.library.watch import Watcher, WatchSettings

FAST = WatchSettings(settle_s=0.4, closed_settle_s=0.1, quiet_s=0.5, tick_s=0.05, batch_size=8)


def mean_mel_factory():
    return [MeanMel()]


@pytest.fixture
def watched(tmp_path, example_lib):
    """A running in-process watcher over a library of two albums; yields (root, catalog, log)."""
    root = tmp_path / "music"
    for album in sorted(p for p in example_lib.glob("*/*") if p.is_dir())[:2]:
        shutil.copytree(album, root / album.parent.name / album.name)
    catalog = Catalog(tmp_path / "home")
    events: list[dict] = []
    stop = threading.Event()
    watcher = Watcher(catalog, [root], mean_mel_factory, settings=FAST, log=events.append)
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    wait_for(lambda: any(e["event"] == "watching" for e in events))
    yield root, Catalog(tmp_path / "home"), events
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def rows(catalog):
    return {
        Path(path).relative_to(catalog.home.parent / "music").as_posix(): (track_id, status)
        for track_id, path, status in catalog.db.execute("SELECT id, path, status FROM tracks")
    }


def analysed_at(catalog, track_id):
    return catalog.db.execute(
        "SELECT analysed_at, title FROM tracks WHERE id = ?", [track_id]
    ).fetchone()


def test_reconciles_on_start(watched):
    root, catalog, events = watched
    assert len(rows(catalog)) == 4
    assert events[0]["event"] == "reconciled" and events[0]["analysed"] == 4


def test_add_retag_modify_rename_delete(watched, example_lib):
    root, catalog, _ = watched
    new = root / "new.flac"
    shutil.copy2(sorted(example_lib.rglob("*.flac"))[-1], new)
    wait_for(lambda: rows(catalog).get("new.flac", (0, ""))[1] == "ok")
    track_id = rows(catalog)["new.flac"][0]
    stamp = analysed_at(catalog, track_id)[0]

    example_library.tag(new, {"title": "Retagged"})
    wait_for(lambda: analysed_at(catalog, track_id)[1] == "Retagged")
    assert analysed_at(catalog, track_id)[0] == stamp  # tags only: no re-analysis

    vector = catalog.vector(track_id, "mean-mel")
    example_library.encode(
        new, example_library.synthesize(example_library.default_styles()[5], 5, 6.0)
    )
    wait_for(lambda: not np.array_equal(catalog.vector(track_id, "mean-mel"), vector))

    new.rename(root / "renamed.flac")
    wait_for(lambda: "renamed.flac" in rows(catalog) and "new.flac" not in rows(catalog))
    assert rows(catalog)["renamed.flac"][0] == track_id

    (root / "renamed.flac").unlink()
    wait_for(lambda: "renamed.flac" not in rows(catalog))
    assert len(rows(catalog)) == 4


def test_moved_folder_keeps_its_analysis(watched):
    root, catalog, _ = watched
    before = rows(catalog)
    artist = next(p for p in root.iterdir() if p.is_dir())
    artist.rename(root / "Moved Artist")
    wait_for(lambda: any(k.startswith("Moved Artist/") for k in rows(catalog)))
    wait_for(lambda: not any(k.startswith(artist.name + "/") for k in rows(catalog)))
    after = rows(catalog)
    assert sorted(i for i, _ in after.values()) == sorted(i for i, _ in before.values())


def test_slow_copy_is_read_only_when_complete(watched, example_lib):
    root, catalog, events = watched
    data = sorted(example_lib.rglob("*.wav"))[0].read_bytes()
    with open(root / "slow.wav", "wb") as handle:
        for start in range(0, len(data), len(data) // 8):
            handle.write(data[start : start + len(data) // 8])
            handle.flush()
            time.sleep(0.15)
    wait_for(lambda: rows(catalog).get("slow.wav", (0, ""))[1] == "ok")
    assert not any("slow.wav" in str(e.get("errors", {})) for e in events)
    duration = catalog.db.execute("SELECT duration_s FROM tracks WHERE path LIKE '%slow.wav'")
    assert duration.fetchone()[0] == pytest.approx(8.0, abs=0.1)


def test_partial_download_is_ignored_until_renamed(watched, example_lib):
    root, catalog, _ = watched
    part = root / "download.mp3.part"
    shutil.copy2(sorted(example_lib.rglob("*.mp3"))[0], part)
    (root / ".hidden.mp3").write_bytes(part.read_bytes())
    time.sleep(1.0)
    assert set(rows(catalog)) == set(rows(catalog)) - {"download.mp3.part", ".hidden.mp3"}
    assert len(rows(catalog)) == 4
    part.rename(root / "download.mp3")
    wait_for(lambda: rows(catalog).get("download.mp3", (0, ""))[1] == "ok")


def test_a_missing_root_is_kept_and_reattached(watched, tmp_path):
    root, catalog, events = watched
    away = tmp_path / "unmounted"
    root.rename(away)
    wait_for(lambda: any(e["event"] == "root-missing" for e in events))
    time.sleep(1.0)
    assert len(rows(catalog)) == 4  # nothing forgotten
    away.rename(root)
    wait_for(lambda: any(e["event"] == "root-returned" for e in events))
    assert len(rows(catalog)) == 4


def test_burst_is_batched(watched, example_lib):
    root, catalog, events = watched
    burst = root / "burst"
    burst.mkdir()
    sources = sorted(p for p in example_lib.rglob("*.*") if p.is_file())
    for index, source in enumerate(sources):
        shutil.copy2(source, burst / f"{index:02d}{source.suffix}")
    wait_for(lambda: len(rows(catalog)) == 4 + len(sources), timeout=60)
    batches = [e for e in events if e["event"] == "batch"]
    assert sum(e["reused"] for e in batches) == 4  # copies of watched tracks: not re-analysed
    assert sum(e["analysed"] for e in batches) == len(sources) - 4
    assert len(batches) >= 3 and all(e["analysed"] + e["reused"] <= 8 for e in batches)


def cli(*args):
    return [sys.executable, "-m", "simlib", *map(str, args)]


def start_watcher(root, env, workers=1) -> subprocess.Popen:
    """`simlib watch ROOT --json-log` as a real subprocess; its log lines on stdout."""
    return subprocess.Popen(
        cli("watch", root, "--json-log", "--workers", workers),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_kill_9_during_ingest_then_restart_is_consistent(tmp_path, example_lib):
    root = tmp_path / "music"
    root.mkdir()
    home = tmp_path / "home"
    env = {**os.environ, "SIMLIB_HOME": str(home)}
    watcher = start_watcher(root, env)
    assert json.loads(watcher.stdout.readline())["event"] in ("reconciled", "watching")
    sources = sorted(p for p in example_lib.rglob("*.*") if p.is_file())
    for source in sources:
        shutil.copytree(source.parent, root / source.parent.name, dirs_exist_ok=True)
    db = home / "catalog.db"
    wait_for(
        lambda: sqlite3.connect(db).execute("SELECT COUNT(*) FROM tracks").fetchone()[0] >= 2,
        timeout=120,
    )
    watcher.send_signal(signal.SIGKILL)
    watcher.wait(timeout=10)
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    restarted = subprocess.Popen(
        cli("watch", "--json-log", "--workers", "1"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = json.loads(restarted.stdout.readline())
        assert first["event"] == "reconciled"
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    catalog = Catalog(home)
    on_disk = {str(p) for p in root.rglob("*.*") if p.is_file()}
    tracks = {
        path: status for path, status in catalog.db.execute("SELECT path, status FROM tracks")
    }
    assert set(tracks) == on_disk and set(tracks.values()) == {"ok"}
    summary = catalog.summary()
    assert all(index["fresh"] for index in summary["indexes"]) and len(summary["indexes"]) == 3
    for index in summary["indexes"]:
        assert index["tracks"] == len(on_disk)


def maps(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        kids = children.get(stack.pop(), [])
        found += kids
        stack += kids
    return found


def test_the_watcher_leaves_the_models_to_its_workers(tmp_path, example_lib):
    """With worker processes, the watcher itself never loads the models' runtime: the
    workers fork from a server that has, and share its pages. No process loads PyTorch."""
    root = tmp_path / "music"
    shutil.copytree(sorted(p for p in example_lib.glob("*/*") if p.is_dir())[0], root)
    env = {**os.environ, "SIMLIB_HOME": str(tmp_path / "home")}
    watcher = start_watcher(root, env, workers=2)
    try:
        assert json.loads(watcher.stdout.readline())["event"] == "reconciled"
        assert json.loads(watcher.stdout.readline())["event"] == "watching"
        tree = descendants(watcher.pid)
        workers = [pid for pid in tree if maps(pid, "onnxruntime")]
        assert not maps(watcher.pid, "onnxruntime")
        assert len(workers) >= 2  # the fork server and at least the pool's workers
        assert not any(maps(pid, "libtorch") for pid in [watcher.pid, *tree])
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=30)
    catalog = Catalog(tmp_path / "home")
    assert catalog.summary()["tracks"] == len(list(root.iterdir()))


def test_concurrent_readers_never_fail_during_ingest_and_rebuilds(tmp_path, example_lib):
    root = tmp_path / "music"
    albums = sorted(p for p in example_lib.glob("*/*") if p.is_dir())
    shutil.copytree(albums[0], root / "first")
    home = tmp_path / "home"
    env = {**os.environ, "SIMLIB_HOME": str(home)}
    watcher = start_watcher(root, env)
    clip = tmp_path / "clip.wav"
    import soundfile

    soundfile.write(clip, audio.decode(sorted((root / "first").iterdir())[0], 1.0, 4.0), 16000)
    reader = (
        "import sys, simlib\n"
        "errors = 0\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    try:\n"
        "        r = simlib.identify([sys.argv[2]])[0]\n"
        "        assert r.error is None and r.match is not None, r\n"
        "        s = simlib.similar([sys.argv[2]], n=3)[0]\n"
        "        assert s.error is None and s.results, s\n"
        "    except Exception as error:\n"
        "        errors += 1; print(repr(error), file=sys.stderr)\n"
        "print(errors)\n"
    )
    try:
        assert json.loads(watcher.stdout.readline())["event"] == "reconciled"
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", reader, "15", str(clip)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        for index, album in enumerate(albums[1:6]):
            shutil.copytree(album, root / f"album{index}")
            time.sleep(0.7)
        outputs = [r.communicate(timeout=300) for r in readers]
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=30)
    for out, err in outputs:
        assert out.strip() == "0", err


def test_batches_name_their_files_and_no_empty_rebuild_is_logged(watched, example_lib):
    root, catalog, events = watched
    new = root / "new.flac"
    shutil.copy2(sorted(example_lib.rglob("*.flac"))[-1], new)
    wait_for(lambda: any(e["event"] == "batch" for e in events))
    batch = next(e for e in events if e["event"] == "batch")
    assert batch["files"] == {"analysed": [str(new)]}
    from simlib.cli import describe_event

    assert describe_event(batch, [str(root)]) == "batch: 1 analysed (new.flac)"
    new.unlink()
    wait_for(lambda: sum(e["event"] == "batch" for e in events) == 2)
    assert [e for e in events if e["event"] == "batch"][1]["files"] == {"removed": [str(new)]}
    time.sleep(FAST.quiet_s * 2)
    rebuilt = [e["indexes"] for e in events if e["event"] == "indexes-rebuilt"]
    assert rebuilt and all(rebuilt)


def test_watch_shows_scan_progress_and_status_tells_a_watcher_keeps_it_current(
    tmp_path, example_lib
):
    """A real `simlib watch` on a never-scanned folder, text log: the first reconcile shows
    the scan's progress; while it runs `simlib status` says so, with the changes waiting."""
    from typer.testing import CliRunner

    from simlib.cli import app

    root = tmp_path / "music"
    shutil.copytree(sorted(p for p in example_lib.glob("*/*") if p.is_dir())[0], root)
    env = {**os.environ, "SIMLIB_HOME": str(tmp_path / "home")}
    watcher = subprocess.Popen(
        cli("watch", root, "--workers", "1"), env=env, stderr=subprocess.PIPE, text=True
    )
    lines = []
    try:
        while not lines or " watching " not in lines[-1]:
            lines.append(watcher.stderr.readline())
            assert lines[-1], "".join(lines)
        progress = [line for line in lines if line.startswith("analyse")]
        assert progress and "2/2" in progress[0] and "min of audio" in progress[0]
        status = CliRunner().invoke(app, ["status", "--home", str(tmp_path / "home")])
        assert "watcher   running" in status.stdout
        assert "keeps the catalog current (0 changes waiting)" in status.stdout
        source = sorted(example_lib.rglob("*.wav"))[0].read_bytes()
        with open(root / "slow.wav", "wb") as handle:  # settling while it is written
            for start in range(0, len(source), 2048):
                handle.write(source[start : start + 2048])
                handle.flush()
                state = api_status(tmp_path / "home")["watcher"]
                if state.get("waiting"):
                    break
                time.sleep(0.05)
            handle.write(source[start + 2048 :])
        assert state["waiting"] == 1
        wait_for(lambda: api_status(tmp_path / "home")["tracks"] == 3)
        status = CliRunner().invoke(app, ["status", "--home", str(tmp_path / "home")])
        assert "no (watcher rebuilds)" in status.stdout
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=30)
    assert api_status(tmp_path / "home")["watcher"] is None


def api_status(home: Path) -> dict:
    from simlib import api

    return api.status(home)
