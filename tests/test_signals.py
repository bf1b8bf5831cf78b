"""SIGTERM and SIGHUP stop a command the way Ctrl-C does: workers stop, finished work is
kept, and no process (fork server, workers) outlives the command. Real subprocesses, each
in a session of its own, so that every process it started can be found in /proc."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from simlib import api

WAIT_S = 120.0


def session_of(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # exited meanwhile
    return int(fields[3])  # after state, ppid, pgrp: the session id


def session_processes(session: int) -> list[int]:
    """Every live process of a session (zombies count as gone)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        if session_of(pid) == session and " Z " not in stat.read_text().rsplit(")", 1)[1][:3]:
            found.append(pid)
    return found


def assert_nothing_outlives(session: int) -> None:
    deadline = time.monotonic() + 15
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = session_processes(session)
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # leave the machine clean for the other tests
    assert not left, f"processes outlived the command: {left}"


def stop(process: subprocess.Popen, signum: int) -> tuple[str, str]:
    """Send `signum`, wait for the command to end, then check that nothing it started is
    left; (stdout, stderr)."""
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        out, err = "", "(still running: a process it started holds its output open)"
    assert_nothing_outlives(process.pid)
    return out, err


def start(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "simlib", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def tracks_in(home: Path) -> int:
    try:
        db = sqlite3.connect(home / "catalog.db")
        return db.execute("SELECT COUNT(*) FROM tracks WHERE status = 'ok'").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_for_tracks(home: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while tracks_in(home) < 1:
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)


@pytest.fixture
def env(home) -> dict:
    return {**os.environ, "SIMLIB_HOME": str(home)}


def test_sigterm_stops_a_scan_like_ctrl_c(home, library, env):
    scan = start("scan", str(library), "-q", "--workers", "2", env=env)
    wait_for_tracks(home, scan)
    _out, err = stop(scan, signal.SIGTERM)
    if scan.returncode == 0:
        pytest.skip("the scan finished before it could be stopped")
    assert scan.returncode == 128 + signal.SIGTERM, err
    assert "interrupted" in err and "Traceback" not in err
    kept = tracks_in(home)
    assert 1 <= kept < 24
    report = api.scan([library], workers=1)
    assert report.unchanged == kept and report.analysed == 24 - kept


def test_sighup_stops_a_watcher_mid_reconcile(home, library, env):
    watcher = start("watch", str(library), "--json-log", "--workers", "2", env=env)
    wait_for_tracks(home, watcher)
    out, err = stop(watcher, signal.SIGHUP)
    assert watcher.returncode == 0, err  # stopping is how a watcher ends
    assert json.loads(out.splitlines()[-1])["event"] == "stopped"
    kept = tracks_in(home)
    if kept == 24:
        pytest.skip("the watcher reconciled everything before it could be stopped")
    assert api.scan(workers=1).analysed == 24 - kept


def test_sigterm_stops_training(home, library, env, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for path in sorted(library.glob("*/*/*.*"))[:4]:
        shutil.copy(path, small)
    assert api.scan([small], workers=1).analysed == 4
    noise = tmp_path / "noise"
    (noise / "speech").mkdir(parents=True)
    rng = np.random.default_rng(0)
    soundfile.write(noise / "speech" / "0.wav", rng.standard_normal(16000) * 0.1, 16000)
    train = start("train", "fingerprint", "--noise", str(noise), "--minutes", "5", env=env)
    time.sleep(8)  # loading, then training: wherever it is, it must stop cleanly
    _out, err = stop(train, signal.SIGTERM)
    assert train.returncode == 128 + signal.SIGTERM, err
    assert "interrupted" in err and "Traceback" not in err
