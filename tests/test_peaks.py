"""A track's spectral peaks, picked while the scan streams it and kept in the catalog, are
the peaks the source check would find by decoding the track."""

from __future__ import annotations

import numpy as np
import pytest

from simlib import audio
from simlib.catalog.peaks import BLOCK_FRAMES, TrackPeaks
from simlib.identify import peaks as P
from simlib.identify.source_check import (
    PAD_S,
    ClipSpectrum,
    coincidence_z,
    decoded_peaks,
    track_excerpt,
)


def music_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Gliding tones and a few clicks over quiet noise, 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * audio.ANALYSIS_RATE_HZ)) / audio.ANALYSIS_RATE_HZ
    signal = 0.01 * rng.standard_normal(t.size)
    for hz in rng.uniform(300, 3000, 6):
        signal += np.sin(2 * np.pi * (hz * t + 40 * np.sin(rng.uniform(0.2, 2) * t)))
    signal[rng.integers(0, t.size, 40)] += 5.0
    return signal.astype(np.float32)


def blocks_of(samples: np.ndarray, sizes: list[int]):
    start = 0
    for size in sizes:
        yield samples[start : start + size]
        start += size
    yield samples[start:]


@pytest.mark.parametrize("sizes", [[100, 300, 7000], [16000 * 4 + 3] * 3, []])
def test_the_streamed_spectrogram_is_the_whole_signals(sizes) -> None:
    samples = music_like(13.3)
    stream = P.BandLevelStream()
    runs = [stream.add(block) for block in blocks_of(samples, sizes)] + [stream.end()]
    streamed = np.concatenate([r for r in runs if r is not None], axis=1)
    np.testing.assert_array_equal(streamed, P.band_level(samples))


def test_streamed_peaks_are_the_whole_tracks_block_by_block() -> None:
    samples = music_like(21.0, seed=1)
    stream = P.TrackPeakStream()
    passed = list(stream.tap(blocks_of(samples, [5000, 90001])))
    np.testing.assert_array_equal(np.concatenate(passed), samples)
    streamed = stream.result()
    level = P.band_level(samples)
    bins, frames, contrast = P._candidates(level)
    expected = set()
    for start in range(0, level.shape[1], BLOCK_FRAMES):
        stop = min(start + BLOCK_FRAMES, level.shape[1])
        mine = (frames >= start) & (frames < stop)
        keep = int(P.TRACK_PEAKS_PER_S * (stop - start) / P.FRAME_RATE_HZ)
        expected |= set(
            zip(*P._strongest(bins[mine], frames[mine], contrast[mine], keep), strict=True)
        )
    found = set(zip(streamed.bins.tolist(), streamed.frames().tolist(), strict=True))
    assert len(found) == len(streamed) and len(found & expected) >= 0.99 * len(expected)
    assert len(streamed) <= P.TRACK_PEAKS_PER_S * 21.0


def test_stored_peaks_keep_every_peak_in_two_bytes() -> None:
    rng = np.random.default_rng(2)
    frames = rng.choice(3 * BLOCK_FRAMES + 17, 300, replace=False)
    bins = rng.integers(0, 240, 300)
    stored = TrackPeaks.of(bins, frames, 3 * BLOCK_FRAMES + 17)
    counts, blob = stored.blobs()
    assert len(blob) == 2 * 300 and len(counts) == 2 * 4
    again = TrackPeaks.from_blobs(counts, blob)
    assert sorted(zip(again.frames().tolist(), again.bins.tolist(), strict=False)) == sorted(
        zip(frames.tolist(), bins.tolist(), strict=False)
    )
    got_bins, got_frames = again.window(-5, 400)
    inside = frames < 395
    assert sorted(zip((got_frames - 5).tolist(), got_bins.tolist(), strict=False)) == sorted(
        zip(frames[inside].tolist(), bins[inside].tolist(), strict=False)
    )
    assert again.window(10_000, 50)[0].size == 0


def test_a_check_on_stored_peaks_agrees_with_one_on_the_decoded_track(example_lib) -> None:
    """The same clip against the same track: the stored peaks (from the scan's 16 kHz
    stream) and the peaks of an 8 kHz excerpt decoded at the check both single out the
    alignment, by about as much; other tracks' stored peaks do not."""
    source, *others = sorted(example_lib.rglob("*.flac"))
    rng = np.random.default_rng(0)
    clean = audio.decode(source, 2.0, 4.0)
    noise = 0.3 * clean.std() * rng.standard_normal(clean.size).astype(np.float32)
    clip = ClipSpectrum(clean + noise)

    def stored_z(path) -> float:
        stored = P.track_peaks(audio.decode(path))
        return coincidence_z(clip.peaks, P.excerpt_peaks(stored, 2.0, clip.seconds, PAD_S))

    excerpt = track_excerpt(source, 2.0, clip.seconds)
    right, decoded = stored_z(source), coincidence_z(clip.peaks, decoded_peaks(excerpt))
    assert right > 6 and decoded > 6 and abs(right - decoded) < 0.3 * decoded
    wrong = [stored_z(other) for other in others]
    assert max(wrong) < right and np.median(wrong) < 3
