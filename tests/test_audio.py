"""Decoding: every container, windows, streaming, rate changes, damaged and non-audio input."""

import io

import av
import numpy as np
import pytest

from simlib import audio, example_library
from simlib.audio import ANALYSIS_RATE_HZ, features


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


def adts_tone(rate_hz: int, seconds: float, tone_hz: float) -> bytes:
    """An AAC (ADTS) stream of a sine tone, encoded by FFmpeg."""
    out = io.BytesIO()
    with av.open(out, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=rate_hz, layout="mono")
        t = np.arange(int(rate_hz * seconds)) / rate_hz
        tone = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate_hz
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def test_a_stream_whose_sample_rate_changes_decodes_whole(tmp_path):
    """Joined streams (two ADTS files end to end): each part is resampled from its own rate."""
    joined = tmp_path / "joined.aac"
    joined.write_bytes(adts_tone(44_100, 2.0, 440.0) + adts_tone(22_050, 2.0, 660.0))
    samples = audio.decode(joined)
    assert 4.0 <= samples.size / ANALYSIS_RATE_HZ < 4.2

    def tone_hz(part: np.ndarray) -> float:
        return float(np.argmax(np.abs(np.fft.rfft(part)))) * ANALYSIS_RATE_HZ / part.size

    second = ANALYSIS_RATE_HZ
    assert tone_hz(samples[: 1 * second]) == 440.0
    assert tone_hz(samples[3 * second : 4 * second]) == 660.0
    assert audio.decode(joined, 2.5, 1.0).size == second
