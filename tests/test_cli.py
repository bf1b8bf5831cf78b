"""The command line, in-process (CliRunner) and as a real subprocess."""

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from simlib.cli import app

runner = CliRunner()
DROP_ROOT_POWERS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
"""Run as root but subject to file permissions, as any other user is."""


def as_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root and setpriv (util-linux) is missing")
        return DROP_ROOT_POWERS + command
    return command


def cli(*args):
    return [sys.executable, "-m", "simlib", *map(str, args)]


def test_scan_and_status_json(home, library, bad_files):
    result = runner.invoke(app, ["scan", str(library), "--json", "--workers", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["analysed"] == 25 and report["failed"] == 4
    result = runner.invoke(app, ["status", "--json"])
    status = json.loads(result.stdout)
    assert status["tracks"] == 25 and status["failed"] == 4
    assert {f["path"] for f in status["failures"]} == {
        str(p) for k, p in bad_files.items() if k != "truncated_mp3"
    }


def test_text_output_lists_failures(home, library, bad_files):
    result = runner.invoke(app, ["scan", str(library), "-q", "--workers", "1"])
    assert result.exit_code == 0
    assert "25 analysed" in result.stdout and "4 failed" in result.stdout
    assert "notes.mp3" in result.stderr
    status = runner.invoke(app, ["status"])
    assert "25 ok, 4 failed" in status.stdout and "too short" in status.stdout


def test_missing_folder_is_a_one_line_error(home, tmp_path):
    result = runner.invoke(app, ["scan", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.stderr == f"{tmp_path / 'nope'}: no such folder\n"


def test_home_option_and_env(tmp_path, library, monkeypatch):
    monkeypatch.delenv("SIMLIB_HOME", raising=False)
    result = runner.invoke(
        app, ["scan", str(library), "--home", str(tmp_path / "h"), "--json", "--workers", "1"]
    )
    assert result.exit_code == 0
    assert (tmp_path / "h" / "catalog.db").exists()


def test_real_subprocess_with_two_workers(home, library):
    done = subprocess.run(
        cli("scan", library, "--json"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["analysed"] == 24
    status = subprocess.run(cli("status", "--json"), capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["tracks"] == 24


def test_a_reader_that_stops_early_gets_no_traceback(home, library):
    """A closed pipe (`simlib status | head -0`) gives exit code 1 and nothing on stderr
    (click turns the broken pipe into exit 1; `simlib.cli.main`, which ends the process
    itself, keeps that code)."""
    subprocess.run(cli("scan", library, "-q"), check=True, timeout=300)
    for args in (("status", "--json"), ("similar", sorted(library.rglob("*.flac"))[0])):
        process = subprocess.Popen(
            cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        process.stdout.close()
        assert process.wait(timeout=120) == 1
        assert process.stderr.read() == ""


def test_unreadable_file_is_recorded(home, library):
    secret = next(library.rglob("*.flac"))
    secret.chmod(0)
    home.mkdir()
    os.chmod(home, 0o777)
    done = subprocess.run(
        as_user(cli("scan", library, "--json", "--workers", "1")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == {str(secret): "permission denied"}


def test_read_only_home_is_a_clear_error_and_the_catalog_survives(home, library):
    assert runner.invoke(app, ["scan", str(library), "-q", "--workers", "1"]).exit_code == 0
    next(library.rglob("*.mp3")).unlink()
    for path in [home, *home.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        done = subprocess.run(
            as_user(cli("scan", library, "-q", "--workers", "1")),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        for path in [home, *home.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert done.returncode == 1
    assert done.stderr.startswith("error:") and "catalog" in done.stderr
    db = sqlite3.connect(home / "catalog.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM tracks").fetchone()[0] == 24


def test_disk_full_is_a_clear_error_and_the_catalog_survives(home, library, tmp_path):
    assert runner.invoke(app, ["scan", str(library), "-q", "--workers", "1"]).exit_code == 0
    more = library / "More"
    for index, path in enumerate(sorted(library.rglob("*.flac"))):
        (more / str(index)).mkdir(parents=True)
        data = bytearray(path.read_bytes())
        data[-2000:] = bytes(2000)  # new audio content, so nothing is reused
        (more / str(index) / path.name).write_bytes(bytes(data))
    limit = 64 * 1024  # room for the WAL index and a few transactions, not for all

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        cli("scan", library, "-q", "--workers", "1"),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_disk,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error:") and len(done.stderr.strip().splitlines()) == 1
    db = sqlite3.connect(home / "catalog.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM tracks WHERE status = 'ok'").fetchone()[0] >= 24
    again = runner.invoke(app, ["scan", str(library), "--json", "--workers", "1"])
    assert again.exit_code == 0 and json.loads(again.stdout)["failed"] == 0


def test_ctrl_c_keeps_finished_work_and_the_next_scan_resumes(home, library):
    process = subprocess.Popen(
        cli("scan", library, "-q", "--workers", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    db_path = home / "catalog.db"
    while time.monotonic() < deadline:
        if db_path.exists():
            try:
                count = (
                    sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
                )
            except sqlite3.Error:
                count = 0
            if count >= 1:
                break
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("the scan finished before it could be interrupted")
    assert process.returncode == 130, err
    assert "interrupted" in err
    kept = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
    assert 1 <= kept < 24
    result = runner.invoke(app, ["scan", str(library), "--json", "--workers", "1"])
    report = json.loads(result.stdout)
    assert report["unchanged"] == kept and report["analysed"] == 24 - kept
