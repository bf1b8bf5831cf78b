"""Exit codes and error messages of every command: each input is answered, each failure
is one line in the user's words, 1 if an input failed, 2 for a usage error, and never a
traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
from typer.testing import CliRunner

from simlib import api, audio
from simlib.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, example_lib) -> tuple[Path, list[Path]]:
    """A home with six tracks scanned by the shipped models, and the tracks."""
    library = tmp_path_factory.mktemp("errors") / "library"
    library.mkdir()
    tracks = [Path(shutil.copy(p, library)) for p in sorted(example_lib.glob("*/*/*.*"))[:6]]
    home = library.parent / "home"
    assert api.scan([library], home=home, workers=1).analysed == 6
    return home, tracks


@pytest.fixture
def inputs(tmp_path, indexed) -> dict[str, Path]:
    """A good clip and the bad inputs, by kind."""
    home, tracks = indexed
    good = tmp_path / "good.wav"
    soundfile.write(good, audio.decode(tracks[0], 1.0, 5.0), audio.ANALYSIS_RATE_HZ)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n")
    return {"good": good, "missing": tmp_path / "missing.wav", "empty": empty, "text": text}


def invoke(*args: object, stdin: bytes | None = None):
    result = runner.invoke(app, [str(a) for a in args], input=stdin)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("empty", "empty file (0 bytes)"),
        ("text", "not an audio file"),
    ],
)
@pytest.mark.parametrize("command", ["identify", "similar"])
def test_a_bad_input_alone_exits_1_with_one_line(indexed, inputs, command, kind, message):
    result = invoke(command, inputs[kind], "--home", indexed[0])
    assert result.exit_code == 1
    assert result.stderr == f"{inputs[kind]}: {message}\n"


def test_empty_standard_input_is_said_so(indexed):
    result = invoke("identify", "-", "--home", indexed[0], stdin=b"")
    assert result.exit_code == 1
    assert result.stderr == "-: no audio on standard input\n"


def test_every_input_is_answered_and_each_failure_named(indexed, inputs):
    names = ["missing", "good", "empty", "text"]
    result = invoke("identify", *(inputs[n] for n in names), "--json", "--home", indexed[0])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == [str(inputs[n]) for n in names]
    assert [("error" in line) for line in lines] == [True, False, True, True]
    assert lines[1]["match"]["path"] == str(indexed[1][0])
    assert len(result.stderr.splitlines()) == 3

    good = invoke("identify", inputs["good"], "--home", indexed[0])
    assert good.exit_code == 0 and good.stderr == ""


def test_similar_answers_the_good_tracks_and_exits_1(indexed, inputs):
    home, tracks = indexed
    result = invoke("similar", inputs["missing"], tracks[1], "-n", "2", "--home", home)
    assert result.exit_code == 1
    assert result.stderr == f"{inputs['missing']}: no such file\n"
    assert result.stdout.splitlines()[0] == str(tracks[1])
    assert len(result.stdout.splitlines()) == 3
    blended = invoke("similar", inputs["text"], tracks[1], "--blend", "--home", home)
    assert blended.exit_code == 1 and "not an audio file" in blended.stderr
    assert invoke("similar", tracks[1], "--home", home).exit_code == 0


USAGE_ERRORS = [
    ["scan", "--workers", "0"],
    ["scan", "--bogus"],
    ["status", "--bogus"],
    ["identify"],
    ["identify", "-k", "0", "x.wav"],
    ["identify", "--top", "-1", "x.wav"],
    ["identify", "--min-confidence", "2", "x.wav"],
    ["similar"],
    ["similar", "-n", "0", "x.mp3"],
    ["similar", "-n", "-1", "x.mp3"],
    ["similar", "--count", "0", "x.mp3"],
    ["train"],
    ["train", "tempo"],
    ["train", "similarity", "--minutes", "-1"],
    ["train", "fingerprint", "--noise", "/no/such/folder"],
    ["watch", "--workers", "0"],
    ["roots", "--bogus"],
    ["roots", "remove"],
    ["dj", "--port", "abc"],
    ["dj", "--queue-length", "0"],
    ["dj", "--blend", "0"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=" ".join)
def test_usage_errors_exit_2(home, args):
    assert invoke(*args).exit_code == 2


def test_train_fingerprint_without_noise_refuses_in_one_line(home):
    result = invoke("train", "fingerprint")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and "--noise" in result.stderr


BAD_INPUTS = [
    (["scan", "/no/such/folder"], "/no/such/folder: no such folder"),
    (["watch", "/no/such/folder"], "/no/such/folder: no such folder"),
    (["identify", "x.wav"], "run `simlib scan"),
    (["similar", "x.mp3"], "run `simlib scan"),
    (["train", "similarity"], "the library is empty"),
    (["roots", "remove", "/no/such/folder"], "not a registered library folder"),
    (["dj", "--once", "--host", "127.0.0.1", "--port", "1", "--music-dir", "/"], "connect"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_inputs_exit_1_with_one_line(home, args, message):
    result = invoke(*args)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[simlib]\nworkers = "abc"\n', "workers is not a whole number: 'abc'"),
        ('[dj]\nport = "abc"\n', "port is not a whole number: 'abc'"),
    ],
)
def test_wrong_types_in_config_are_named(home, table, message):
    home.mkdir()
    (home / "config.toml").write_text(table)
    section = table.split("]")[0] + "]"
    result = invoke(*(["dj", "--once"] if section == "[dj]" else ["status"]))
    assert result.exit_code == 1
    assert result.stderr == f"error: {home / 'config.toml'} {section}: {message}\n"


def run(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, cwd=cwd, timeout=120
    )
    assert b"Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def test_real_processes_answer_bad_input_without_a_traceback(home, tmp_path):
    """As a shell runs them: `python -m simlib` (which ends the process itself) and the
    example library's script."""
    helped = run("-m", "simlib.example_library", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and b"usage:" in helped.stdout
    assert not (tmp_path / "--help").exists()
    assert run("-m", "simlib.example_library", "--seconds", "0", cwd=tmp_path).returncode == 2
    train = run("-m", "simlib", "train", "fingerprint", cwd=tmp_path)
    assert train.returncode == 2 and len(train.stderr.splitlines()) == 1
    assert b"--noise" in train.stderr
    assert run("-m", "simlib", "similar", "-n", "0", "x.mp3", cwd=tmp_path).returncode == 2
    stdin = run("-m", "simlib", "identify", "-", cwd=tmp_path)
    assert stdin.returncode == 1 and b"run `simlib scan" in stdin.stderr


def test_scan_scans_the_folders_that_are_there_and_exits_1(indexed, tmp_path):
    home, tracks = indexed
    missing = tmp_path / "unplugged"
    result = invoke("scan", missing, tracks[0].parent, "--json", "--home", home)
    assert result.exit_code == 1
    assert result.stderr == f"{missing}: no such folder\n"
    assert json.loads(result.stdout)["unchanged"] == 6
