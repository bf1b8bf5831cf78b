"""Spectral peaks: the local maxima of a band-limited spectrogram that the source check
(`simlib.identify.source_check`) compares between a clip and a library track.

A clip's peaks are computed when it is checked. A track's are computed once, at scan time,
from the analysis's 16 kHz stream beside the log-mel (`TrackPeakStream`), and kept in the
catalog (`simlib.catalog.peaks`): a check then reads them instead of decoding the track.
The peak rule is local (PEAK_SIZE and BACKGROUND_SIZE neighbourhoods), so a track's peaks
are picked block by block, the strongest TRACK_PEAKS_PER_S a second of each block.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from simlib.audio import ANALYSIS_RATE_HZ
from simlib.catalog.peaks import BLOCK_FRAMES, TrackPeaks

WINDOW_S, FRAME_S = 0.064, 0.016
"""Spectrogram window and frame spacing, seconds (1024 and 256 samples at 16 kHz)."""
FRAME_RATE_HZ = 1.0 / FRAME_S
BAND_HZ = (250.0, 4000.0)
"""Frequencies whose peaks count: what a phone microphone and a small speaker keep."""
PEAK_SIZE = 7
"""A peak is the largest value in its PEAK_SIZE x PEAK_SIZE (bins x frames) neighbourhood."""
BACKGROUND_SIZE = (9, 31)
"""Neighbourhood (bins, frames) whose mean log magnitude a peak must exceed..."""
PEAK_CONTRAST = 1.0
"""...by this much (natural log of magnitude, ~8.7 dB)."""
CLIP_PEAKS_PER_S, TRACK_PEAKS_PER_S = 100, 40
"""The strongest peaks kept per second. More in the clip than in the track, so that the
music's peaks are among the clip's when speech or noise brings peaks of its own."""
VERSION = (
    f"peaks:{WINDOW_S}/{FRAME_S}/{BAND_HZ[0]:g}-{BAND_HZ[1]:g}/{PEAK_SIZE}/"
    f"{BACKGROUND_SIZE[0]}x{BACKGROUND_SIZE[1]}/{PEAK_CONTRAST}/{TRACK_PEAKS_PER_S}/{BLOCK_FRAMES}"
)
"""What a track's stored peaks depend on: stored peaks of another version are not used."""
FRAMES_PER_CALL = 256
"""Frames transformed at once: their temporaries (about 2 MB) stay small whatever the
length of the stretch (the log-mel's FRAMES_PER_CALL)."""
MARGIN_FRAMES = BACKGROUND_SIZE[1] // 2
"""Frames on each side of a block that its peaks depend on (the wider neighbourhood's)."""


def max_filter(values: np.ndarray, size: int) -> np.ndarray:
    """Maximum over each `size` x `size` neighbourhood (odd `size`; outside counts as -inf)."""
    out = values
    for _ in range(2):  # rows, then (transposed) columns
        out = out.T
        n, half = out.shape[0], size // 2
        padded = np.pad(out, ((half, half), (0, 0)), constant_values=-np.inf)
        result = padded[:n].copy()
        for shift in range(1, size):
            np.maximum(result, padded[shift : shift + n], out=result)
        out = result
    return out


def _box_mean(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mean over each `size` (rows, columns) neighbourhood, edges mirrored."""
    out = values
    for width in size:  # rows, then (transposed) columns
        n, half = out.shape[0], width // 2
        padded = np.pad(out, ((half + 1, half), (0, 0)), mode="symmetric")
        padded[0] = 0.0
        total = np.cumsum(padded, axis=0)
        out = ((total[width : width + n] - total[:n]) / width).T
    return out


@dataclass(frozen=True)
class Peaks:
    """Spectral peaks of a stretch of audio: band bin and frame of each, and the
    (bins, frames) shape of the band's spectrogram."""

    bins: np.ndarray
    frames: np.ndarray
    shape: tuple[int, int]


def band_bins(window_s: float) -> tuple[int, int]:
    """First and end FFT bin of BAND_HZ with `window_s` windows (bins 1 / window_s Hz apart)."""
    return round(BAND_HZ[0] * window_s), round(BAND_HZ[1] * window_s)


def _level_of_frames(padded: np.ndarray, rate_hz: int, window_s: float = WINDOW_S) -> np.ndarray:
    """Log magnitude of the BAND_HZ bins of every frame that fits in `padded` (the first
    starting at its first sample, FRAME_S apart): (bins, frames)."""
    n_fft, hop = round(window_s * rate_hz), round(FRAME_S * rate_hz)
    lo, hi = band_bins(window_s)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    out = np.empty((hi - lo, len(frames)), np.float32)
    for start in range(0, len(frames), FRAMES_PER_CALL):
        spectrum = np.fft.rfft(frames[start : start + FRAMES_PER_CALL] * window, axis=-1)
        out[:, start : start + FRAMES_PER_CALL] = np.log(np.abs(spectrum[:, lo:hi]) + 1e-4).T
    return out


def band_level(
    samples: np.ndarray, rate_hz: int = ANALYSIS_RATE_HZ, window_s: float = WINDOW_S
) -> np.ndarray:
    """Log magnitude (natural log) spectrogram of mono `samples` at `rate_hz` with `window_s`
    windows (periodic Hann, frame k centred on sample k * hop, the ends mirrored), the
    BAND_HZ bins only: (bins, frames), FRAME_S apart. Same bins at any rate of 8 kHz or
    more."""
    half = round(window_s * rate_hz) // 2
    padded = np.pad(np.asarray(samples, dtype=np.float64), half, mode="reflect")
    return _level_of_frames(padded, rate_hz, window_s)


class BandLevelStream:
    """`band_level` (16 kHz, WINDOW_S) of a signal given block by block (`add`, then `end`),
    returned as consecutive runs of its frames: the same frames as of the whole signal,
    without holding it."""

    N_FFT, HOP = round(WINDOW_S * ANALYSIS_RATE_HZ), round(FRAME_S * ANALYSIS_RATE_HZ)

    def __init__(self) -> None:
        self.carry = np.zeros(0)  # samples (mirrored start included) not yet framed
        self.started = False

    def add(self, samples: np.ndarray) -> np.ndarray | None:
        """The frames the signal so far completes, or None."""
        half = self.N_FFT // 2
        self.carry = np.concatenate([self.carry, np.asarray(samples, np.float64)])
        if not self.started:
            if self.carry.size <= half:
                return None  # the mirrored start needs half a window of signal
            self.carry, self.started = np.concatenate([self.carry[half:0:-1], self.carry]), True
        n = (self.carry.size - self.N_FFT) // self.HOP + 1 if self.carry.size >= self.N_FFT else 0
        if n <= 0:
            return None
        level = _level_of_frames(self.carry[: (n - 1) * self.HOP + self.N_FFT], ANALYSIS_RATE_HZ)
        self.carry = self.carry[n * self.HOP :]
        return level

    def end(self) -> np.ndarray | None:
        """The last frames (the end mirrored), or None."""
        half = self.N_FFT // 2
        if not self.started:
            return band_level(self.carry) if self.carry.size else None  # under half a window
        padded = np.concatenate([self.carry, self.carry[-2 : -half - 2 : -1]])
        return _level_of_frames(padded, ANALYSIS_RATE_HZ) if padded.size >= self.N_FFT else None


def peak_contrast(level: np.ndarray) -> np.ndarray:
    """How far each cell of a `band_level` spectrogram stands above its BACKGROUND_SIZE
    neighbourhood's mean (natural log)."""
    return level - _box_mean(level, BACKGROUND_SIZE)


def _candidates(level: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Band bin, frame and contrast of every peak of a `band_level` spectrogram."""
    contrast = peak_contrast(level)
    top = max_filter(level, PEAK_SIZE)
    bins, frames = np.nonzero((level == top) & (contrast > PEAK_CONTRAST))
    return bins, frames, contrast[bins, frames]


def _strongest(bins: np.ndarray, frames: np.ndarray, contrast: np.ndarray, keep: int):
    """The `keep` peaks of highest contrast (all of them if fewer)."""
    if bins.size <= keep:
        return bins, frames
    chosen = np.argpartition(-contrast, keep - 1)[:keep]
    return bins[chosen], frames[chosen]


def peaks(level: np.ndarray, per_s: int) -> Peaks:
    """The strongest `per_s` spectral peaks per second of a `band_level` spectrogram."""
    keep = int(per_s * level.shape[1] / FRAME_RATE_HZ)
    return Peaks(*_strongest(*_candidates(level), keep), level.shape)


class TrackPeakStream:
    """A track's peaks, picked while its 16 kHz blocks stream past (`tap`, then `result`):
    block by block, the strongest TRACK_PEAKS_PER_S a second of each BLOCK_FRAMES frames,
    holding only the spectrogram frames the next block depends on."""

    def __init__(self) -> None:
        self.level = BandLevelStream()
        self.held = np.zeros((band_bins(WINDOW_S)[1] - band_bins(WINDOW_S)[0], 0), np.float32)
        self.held_from = 0  # the track frame of held's first column
        self.block = 0  # the next block to pick
        self.found: list[tuple[np.ndarray, np.ndarray]] = []

    def tap(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """`blocks`, unchanged, their peaks picked on the way."""
        for block in blocks:
            self._hold(self.level.add(block), final=False)
            yield block

    def result(self) -> TrackPeaks:
        """The peaks of every block (the stream has ended)."""
        self._hold(self.level.end(), final=True)
        n_frames = self.held_from + self.held.shape[1]
        bins = np.concatenate([b for b, _ in self.found] or [np.zeros(0, np.int64)])
        frames = np.concatenate([f for _, f in self.found] or [np.zeros(0, np.int64)])
        return TrackPeaks.of(bins, frames, n_frames)

    def _hold(self, level: np.ndarray | None, final: bool) -> None:
        if level is not None:
            self.held = np.concatenate([self.held, level], axis=1)
        end = self.held_from + self.held.shape[1]
        while self.block * BLOCK_FRAMES < end:
            start, stop = self.block * BLOCK_FRAMES, (self.block + 1) * BLOCK_FRAMES
            if not final and end < stop + MARGIN_FRAMES:
                return  # its last frames' neighbourhoods are still to come
            self.found.append(self._pick(start, min(stop, end)))
            self.block += 1
            drop = max(self.block * BLOCK_FRAMES - MARGIN_FRAMES - self.held_from, 0)
            self.held, self.held_from = self.held[:, drop:], self.held_from + drop

    def _pick(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The strongest peaks of frames [start, stop), from the frames held around them."""
        lo = max(start - MARGIN_FRAMES, 0) - self.held_from
        hi = stop + MARGIN_FRAMES - self.held_from
        bins, frames, contrast = _candidates(self.held[:, lo:hi])
        frames = frames + lo + self.held_from
        mine = (frames >= start) & (frames < stop)
        keep = int(TRACK_PEAKS_PER_S * (stop - start) / FRAME_RATE_HZ)
        return _strongest(bins[mine], frames[mine], contrast[mine], keep)


def track_peaks(samples: np.ndarray) -> TrackPeaks:
    """The peaks a scan stores for a track of 16 kHz mono `samples`."""
    stream = TrackPeakStream()
    for _ in stream.tap([samples]):
        pass
    return stream.result()


def excerpt_peaks(stored: TrackPeaks, offset_s: float, clip_s: float, pad_s: float) -> Peaks:
    """A track's stored peaks from `pad_s` before track time `offset_s` to `pad_s` after
    `offset_s + clip_s`, framed as the peaks of that excerpt's own spectrogram (to the
    nearest frame)."""
    first = round((offset_s - pad_s) * FRAME_RATE_HZ)
    n_frames = round((clip_s + 2 * pad_s) * FRAME_RATE_HZ) + 1
    lo, hi = band_bins(WINDOW_S)
    return Peaks(*stored.window(first, n_frames), (hi - lo, n_frames))
