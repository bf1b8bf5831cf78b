"""Log-mel spectrogram features, the one representation every model reads (numpy only).

Frames are 10 ms apart (100 per second) and frame k is centred on sample k * HOP, so
frame index / FRAME_RATE_HZ is the time in seconds. The filters are torchaudio's
`MelSpectrogram` (HTK mel scale, no filter normalisation, periodic Hann window, power
spectrum), which the models were trained on; tests/test_features.py holds the two equal.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np

from simlib.audio.decode import ANALYSIS_RATE_HZ

N_FFT = 1024
HOP = 160
N_MELS = 64
F_MIN_HZ = 30.0
F_MAX_HZ = 8000.0
FRAME_RATE_HZ = ANALYSIS_RATE_HZ // HOP
LOG_FLOOR = 1e-5
"""Power floor before the log: silence maps to log(1e-5), about -11.5."""
FRAMES_PER_CALL = 256
"""Frames transformed at once, of one signal or of several short ones in a batch: their
temporaries (about 2 MB each) stay in the CPU cache, however many signals are given."""


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def _band_edges_hz() -> np.ndarray:
    """(N_MELS + 2,) the mel bands' edges: band i rises from edge i, peaks at edge i + 1."""
    return _mel_to_hz(np.linspace(_hz_to_mel(F_MIN_HZ), _hz_to_mel(F_MAX_HZ), N_MELS + 2))


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) triangular filters on the power spectrum's bins."""
    bins_hz = np.linspace(0.0, ANALYSIS_RATE_HZ / 2, N_FFT // 2 + 1)
    edges = _band_edges_hz()
    widths = np.diff(edges)
    slopes = edges[None, :] - bins_hz[:, None]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """Periodic Hann window, float64: numpy's FFT is faster in double than in single
    precision."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


@lru_cache(maxsize=1)
def _filter_entries() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The filters' nonzero entries as (bin of each, its weight, first entry of each
    filter): each filter spans a few bins, so summing them costs a thirtieth of a dense
    product, and needs no BLAS threads (which contend with the worker processes)."""
    filters = mel_filters().T.astype(np.float64)
    filter_of, bin_of = np.nonzero(filters)
    first = np.flatnonzero(np.r_[True, np.diff(filter_of) > 0])
    return bin_of, filters[filter_of, bin_of], first


def log_mel_frames(samples: np.ndarray) -> np.ndarray:
    """(..., n_samples) at ANALYSIS_RATE_HZ -> (..., frames, N_MELS) float32: frame k covers
    samples [k * HOP, k * HOP + N_FFT) (uncentred)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.shape[-1] < N_FFT:
        return np.zeros((*samples.shape[:-1], 0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT, axis=-1)[..., ::HOP, :]
    rows = frames.reshape(-1, *frames.shape[-2:])  # one signal per row (a view)
    per_row = rows.shape[1]
    bin_of, weight, first = _filter_entries()
    out = np.empty((*rows.shape[:-1], N_MELS), np.float32)
    step = max(1, FRAMES_PER_CALL // per_row)  # rows a call, short signals batched
    for row in range(0, len(rows), step):
        for start in range(0, per_row, FRAMES_PER_CALL):
            block = rows[row : row + step, start : start + FRAMES_PER_CALL]
            spectrum = np.fft.rfft(block * _window())
            power = spectrum.real**2 + spectrum.imag**2
            mel = np.add.reduceat(power[..., bin_of] * weight, first, axis=-1)
            out[row : row + step, start : start + FRAMES_PER_CALL] = mel
    return np.log(out + LOG_FLOOR, out=out).reshape(*frames.shape[:-1], N_MELS)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Mono float32 samples -> (frames, N_MELS) float32, frame k centred on k * HOP."""
    return log_mel_stream([samples])


def log_mel_stream(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Log-mel of a stream of consecutive blocks, identical to the whole-signal result.

    Only the frames are kept in memory (25.6 kB per second), never the samples
    of more than one block.
    """
    half = N_FFT // 2
    carry = np.zeros(half, dtype=np.float32)  # centre the first frame on sample 0
    out: list[np.ndarray] = []
    seen = 0
    for block in blocks:
        seen += len(block)
        buf = np.concatenate([carry, np.asarray(block, dtype=np.float32)])
        n_frames = (buf.size - N_FFT) // HOP + 1 if buf.size >= N_FFT else 0
        if n_frames > 0:
            out.append(log_mel_frames(buf[: (n_frames - 1) * HOP + N_FFT]))
            carry = buf[n_frames * HOP :]
        else:
            carry = buf
    tail = np.concatenate([carry, np.zeros(half, dtype=np.float32)])
    if seen and tail.size >= N_FFT:
        out.append(log_mel_frames(tail))
    if not out:
        return np.zeros((0, N_MELS), dtype=np.float32)
    return np.concatenate(out)


PHONE_BAND_HZ = (250.0, 3800.0)
"""The band of the telephone view (`phone_band`): a little wider than a telephone's nominal
300-3400 Hz, as phones and narrow-band codecs pass some of the edges."""
PHONE_BAND_ORDER = 4
"""Butterworth order of that band's edges. Chosen with the band on VAL music with calib
sources (model card): soft edges matched phone clips better than the full band, and band
edges cut to silence matched them worse than the full band did."""


def butterworth_band_power(hz: np.ndarray, band_hz: tuple[float, float], order: int) -> np.ndarray:
    """Power response at `hz` of a digital Butterworth band-pass (bilinear transform, edges
    prewarped), as scipy's `butter(order, band_hz, "bandpass")` has it."""

    def warped(f: np.ndarray | float) -> np.ndarray:
        return np.tan(np.pi * np.asarray(f, np.float64) / ANALYSIS_RATE_HZ)

    low, high = warped(band_hz[0]), warped(band_hz[1])
    w = np.maximum(warped(hz), 1e-12)
    x = (w**2 - low * high) / (w * (high - low))
    return 1.0 / (1.0 + x ** (2 * order))


@lru_cache(maxsize=1)
def _phone_band_gains() -> np.ndarray:
    """(N_MELS,) each mel filter's power gain through the phone band (weighted by the filter)."""
    bins_hz = np.linspace(0.0, ANALYSIS_RATE_HZ / 2, N_FFT // 2 + 1)
    filters = mel_filters()
    power = butterworth_band_power(bins_hz, PHONE_BAND_HZ, PHONE_BAND_ORDER)
    return (power @ filters / filters.sum(axis=0)).astype(np.float32)


def phone_band(mel: np.ndarray) -> np.ndarray:
    """Log-mel frames as the telephone band would have left them: each band's power scaled
    by its gain there (a flat spectrum within a band is assumed), so the frames need not be
    computed again from filtered audio."""
    out = np.exp(np.asarray(mel, np.float32))  # one temporary the size of the frames
    out -= LOG_FLOOR
    np.maximum(out, 0.0, out=out)
    out *= _phone_band_gains()
    out += LOG_FLOOR
    return np.log(out, out=out)


NARROW_BAND_TOP_HZ = 4000.0
"""Half of 8 kHz, telephony's sampling rate: a narrow-band call keeps nothing above it."""


def above_band_db(mel: np.ndarray) -> float:
    """The mean power of the bands above NARROW_BAND_TOP_HZ against that of the bands
    inside PHONE_BAND_HZ, in dB: far below 0 for audio that went through a phone."""
    power = np.maximum(np.exp(np.asarray(mel, np.float64)) - LOG_FLOOR, 0.0).mean(axis=0)
    centres = _band_edges_hz()[1:-1]
    inside = (centres >= PHONE_BAND_HZ[0]) & (centres <= PHONE_BAND_HZ[1])
    above = power[centres > NARROW_BAND_TOP_HZ].mean()
    return float(10 * np.log10((above + 1e-12) / (power[inside].mean() + 1e-12)))
