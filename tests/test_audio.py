"""Decoding: every container, windows, streaming, damaged and non-audio input."""

import io

import numpy as np
import pytest

from simlib import audio, example_library, features
from simlib.audio import ANALYSIS_RATE_HZ


@pytest.mark.parametrize("fmt", list(example_library.FORMATS))
def test_every_container_decodes_to_mono_16k(example_lib, fmt):
    path = next(example_lib.rglob(f"*.{fmt}"))
    samples = audio.decode(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size / ANALYSIS_RATE_HZ - 8.0) < 0.1
    assert 0.2 < np.abs(samples).max() < 1.0
    info = audio.inspect(path)
    assert info.duration_s == pytest.approx(8.0, abs=0.1)
    assert len(info.content_hash) == 32


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4a"])
def test_window_matches_the_same_stretch_of_the_whole_file(example_lib, fmt):
    """Same content to within a fraction of a sample (a seek lands between 16 kHz samples)."""
    path = next(example_lib.rglob(f"*.{fmt}"))
    whole = audio.decode(path)
    window = audio.decode(path, start_s=3.0, duration_s=2.0)
    assert window.size == 2 * ANALYSIS_RATE_HZ
    start = 3 * ANALYSIS_RATE_HZ
    same = features.log_mel(whole[start : start + window.size])
    shifted = features.log_mel(whole[start + 800 : start + 800 + window.size])
    got = features.log_mel(window)
    assert np.abs(got - same)[5:-5].mean() < 0.25
    assert np.abs(got - shifted)[5:-5].mean() > 2 * np.abs(got - same)[5:-5].mean()


def test_stream_yields_bounded_blocks_that_add_up(example_lib):
    path = next(example_lib.rglob("*.mp3"))
    blocks = list(audio.stream(path, block_s=1.0))
    assert all(b.size == ANALYSIS_RATE_HZ for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), audio.decode(path))


def test_file_like_input(example_lib):
    path = next(example_lib.rglob("*.wav"))
    from_bytes = audio.decode(io.BytesIO(path.read_bytes()))
    np.testing.assert_array_equal(from_bytes, audio.decode(path))


def test_content_hash_ignores_tags(library):
    path = next(library.rglob("*.mp3"))
    before = audio.inspect(path).content_hash
    example_library.tag(path, {"title": "Renamed", "genre": ["Jazz"]})
    assert audio.inspect(path).content_hash == before


def test_non_audio_and_empty_files_raise_decode_error(bad_files):
    for kind in ("empty", "text", "corrupt_flac"):
        with pytest.raises(audio.DecodeError, match="."):
            audio.decode(bad_files[kind])
    with pytest.raises(audio.DecodeError):
        audio.inspect(bad_files["text"])


def test_damaged_packets_are_skipped(library, tmp_path):
    path = next(library.rglob("*.mp3"))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(0).bytes(2000)
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    samples = audio.decode(damaged)
    assert samples.size > 6 * ANALYSIS_RATE_HZ
