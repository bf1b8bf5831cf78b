"""Shared fixtures: a generated tagged library, bad files, an isolated SIMLIB_HOME."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from simlib import example_library

FORMATS = tuple(example_library.FORMATS)

# Commands keep ignoring a SIGHUP or SIGINT they inherit ignored (as `nohup` or a shell's
# background job asks), so the tests that send one to a real command start it with the
# default, however the test run was started.
signal.signal(signal.SIGHUP, signal.SIG_DFL)
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def example_lib(tmp_path_factory) -> Path:
    """24 synthetic 8 s tracks (12 albums, 6 artists) in every container; read-only use."""
    root = tmp_path_factory.mktemp("example") / "library"
    example_library.make_library(root, tracks_per_album=2, seconds=8.0, formats=FORMATS)
    return root


@pytest.fixture
def library(tmp_path, example_lib) -> Path:
    """A private copy of the example library that a test may change."""
    copy = tmp_path / "library"
    shutil.copytree(example_lib, copy)
    return copy


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty SIMLIB_HOME for this test."""
    path = tmp_path / "home"
    monkeypatch.setenv("SIMLIB_HOME", str(path))
    return path


def make_bad_files(folder: Path, good_mp3: Path, good_flac: Path) -> dict[str, Path]:
    """The bad inputs a scan must survive, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {
        "empty": folder / "empty.mp3",
        "text": folder / "notes.mp3",
        "truncated_mp3": folder / "truncated.mp3",
        "corrupt_flac": folder / "corrupt.flac",
        "short": folder / "short.wav",
    }
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("this is not audio\n" * 50)
    data = good_mp3.read_bytes()
    bad["truncated_mp3"].write_bytes(data[: len(data) // 3])
    flac = bytearray(good_flac.read_bytes())
    flac[200:] = bytes(len(flac) - 200)  # header intact, every frame zeroed
    bad["corrupt_flac"].write_bytes(bytes(flac))
    example_library.encode(
        bad["short"], example_library.synthesize(example_library.default_styles()[0], 1, 0.4)
    )
    return bad


@pytest.fixture
def bad_files(library) -> dict[str, Path]:
    mp3 = next(library.rglob("*.mp3"))
    flac = next(library.rglob("*.flac"))
    return make_bad_files(library / "Bad", mp3, flac)


class MeanMel:
    """A real (if simple) embedder: the normalised mean log-mel spectrum."""

    name, version, kind = "mean-mel", "1", "track"
    index_params: dict = {}

    def __init__(self, on_call=None):
        self.calls = 0
        self.on_call = on_call

    def embed(self, mel):
        self.calls += 1
        if self.on_call:
            self.on_call(self.calls)
        vector = mel.mean(axis=0) - mel.mean()
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def music(seconds: float, seed: int = 0, rate_hz: int = 16_000) -> np.ndarray:
    """A gliding random melody at `rate_hz`: quick synthetic music for model tests."""
    rng = np.random.default_rng(seed)
    notes = rng.uniform(100, 2000, int(seconds * 4) + 1)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    freq = notes[(t * 4).astype(int)]
    return (0.3 * np.sin(2 * np.pi * np.cumsum(freq) / rate_hz)).astype(np.float32)
