"""Check an alignment against the library track's own audio: spectral-peak coincidence.

The fingerprint vectors summarise a second of audio each, so two tracks with the same
instruments and tempo can align well although different notes are played (a 5 s clip of
one ambient pad found in another). The track's file is at hand, so a candidate
(track, offset) is checked at the source: the local maxima of the clip's spectrogram
(250-4000 Hz, 16 ms frames) should land on the track's own peaks at the aligned time, and
clearly more often there than a fraction of a second off. The statistic is a z-score of
the coincidence rate at the alignment (within NEAR_S, best of playback speeds SPEEDS)
against the rates at the other lags within PAD_S: chance coincidences of similar-sounding
audio do not peak at one lag, and noise that buries most of the clip's peaks lowers the
rate at every lag alike. Under 0 dB speech the right track scores z ~4-30, unrelated and
similar-sounding tracks 1-4; see benchmarks/identify.py and the model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from simlib import audio
from simlib.matching import Alignment, Calibration

WINDOW_S, FRAME_S = 0.064, 0.016
"""Spectrogram window and frame spacing, seconds (1024 and 256 samples at 16 kHz)."""
FRAME_RATE_HZ = 1.0 / FRAME_S
TRACK_RATE_HZ = 8000
"""The track is decoded at this rate: the band ends at its Nyquist frequency, and
resampling to it costs less than to 16 kHz. Same window and frames in seconds, so the
same frequency bins as the clip's."""
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
SPEEDS = (0.98, 0.99, 1.0, 1.01, 1.02)
"""Playback speeds of the clip relative to the track tried (time and frequency scaled)."""
PAD_S = 0.75
"""Track audio decoded on each side of the aligned clip: the lags compared, seconds."""
NEAR_S = 0.2
"""Lags within this of the alignment count as the alignment, seconds."""
REPEAT_GAIN = 3.0
"""How much higher a repeat's source z must be to take the alignment's place. Where looping
music repeats, the z of the right pass beats the others' by a few units in most clips;
on seed 7, 9 and 11 benchmark clips 3 moved 29 answers to the right pass and 2 away
from it (1 and 2 moved 57 / 23 and 37 / 8)."""
CHECK_FLOOR = 0.2
"""Alignments whose confidence from the vector margin alone is below this are not
checked (each check decodes audio, ~15 ms): on seed 7, 9 and 11 benchmark clips, checking
down to 0.01 (3.7 checks per clip) answered exactly as 0.2 (1.05 per clip)."""


def _max_filter(values: np.ndarray, size: int) -> np.ndarray:
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


@dataclass
class Peaks:
    """Spectral peaks of a stretch of audio: band bin and frame of each, and the
    (bins, frames) shape of the band's spectrogram."""

    bins: np.ndarray
    frames: np.ndarray
    shape: tuple[int, int]


def peaks(samples: np.ndarray, per_s: int, rate_hz: int = audio.ANALYSIS_RATE_HZ) -> Peaks:
    """The strongest `per_s` spectral peaks per second of mono `samples` at `rate_hz`."""
    x = torch.from_numpy(np.asarray(samples, dtype=np.float32))
    n_fft, hop = round(WINDOW_S * rate_hz), round(FRAME_S * rate_hz)
    lo, hi = (round(hz * WINDOW_S) for hz in BAND_HZ)
    window = torch.hann_window(n_fft)
    spectrum = torch.stft(x, n_fft, hop, window=window, return_complex=True)[lo:hi].abs()
    level = np.log(spectrum.numpy() + 1e-4)
    contrast = level - _box_mean(level, BACKGROUND_SIZE)
    top = _max_filter(level, PEAK_SIZE)
    bins, frames = np.nonzero((level == top) & (contrast > PEAK_CONTRAST))
    keep = int(per_s * level.shape[1] / FRAME_RATE_HZ)
    if bins.size > keep:
        strongest = np.argpartition(-contrast[bins, frames], keep - 1)[:keep]
        bins, frames = bins[strongest], frames[strongest]
    return Peaks(bins, frames, level.shape)


def clip_peaks(clip: np.ndarray) -> Peaks:
    """A 16 kHz clip's peaks, as `coincidence_z` compares them."""
    return peaks(clip, CLIP_PEAKS_PER_S)


def coincidence_z(clip: Peaks, track: Peaks, pad_s: float = PAD_S) -> float:
    """z-score of how many of the clip's peaks fall on the track's (within one bin and one
    frame) at the alignment, where `track` holds the track's peaks from `pad_s` before the
    clip's start to `pad_s` after its end; 0.0 when the clip has no peaks."""
    if clip.bins.size == 0:
        return 0.0
    grid = np.zeros(track.shape, dtype=np.float32)
    grid[track.bins, track.frames] = 1.0
    grid = _max_filter(grid, 3) > 0
    lead = int(round(pad_s * FRAME_RATE_HZ))
    lags = np.arange(-lead, lead + 1)
    centre = clip.frames.mean()
    rate = np.zeros(lags.size)
    for speed in SPEEDS:
        frames = np.round(centre + speed * (clip.frames - centre)).astype(int) + lead
        bins = np.broadcast_to(np.round(clip.bins * speed).astype(int), (lags.size, frames.size))
        at = frames[None, :] + lags[:, None]
        inside = (at >= 0) & (at < grid.shape[1]) & (bins < grid.shape[0])
        hit = np.zeros(at.shape, dtype=bool)
        hit[inside] = grid[bins[inside], at[inside]]
        rate = np.maximum(rate, hit.mean(axis=1))
    near = np.abs(lags) <= NEAR_S * FRAME_RATE_HZ
    other = rate[~near]
    spread = float(other.std())
    return float((rate[near].max() - np.median(other)) / spread) if spread > 0 else 0.0


def source_z(clip: Peaks, clip_s: float, path: Path, offset_s: float) -> float | None:
    """`coincidence_z` of a clip (`clip_peaks`, `clip_s` seconds long) against the audio
    file `path` with track time = clip time + `offset_s`; None when the file cannot be read."""
    start_s = offset_s - PAD_S
    length = round((clip_s + 2 * PAD_S) * TRACK_RATE_HZ)
    try:
        track = audio.decode(path, max(start_s, 0.0), length / TRACK_RATE_HZ, TRACK_RATE_HZ)
    except (audio.DecodeError, OSError):
        return None
    before = np.zeros(round(max(-start_s, 0.0) * TRACK_RATE_HZ), np.float32)
    track = np.concatenate([before, track])[:length]
    track = np.pad(track, (0, length - track.size))
    return coincidence_z(clip, peaks(track, TRACK_PEAKS_PER_S, TRACK_RATE_HZ))


def check_sources(
    found: list[Alignment],
    clip: np.ndarray,
    path_of: Callable[[int], Path | None],
    calibration: Calibration,
    limit: int,
    floor: float = CHECK_FLOOR,
) -> None:
    """Set `source_z` on the first `limit` alignments whose margin-only confidence is at
    least `floor` and whose track has a readable file (`path_of(track_id)`, None for none).
    An alignment moves to one of its `repeats` whose source z is REPEAT_GAIN higher."""
    checked, peaks_of_clip = 0, None
    clip_s = clip.size / audio.ANALYSIS_RATE_HZ
    for aligned in found:
        if checked == limit:
            break
        if calibration.from_margin(aligned.margin) < floor:
            continue
        path = path_of(aligned.track_id)
        if path is None:
            continue
        if peaks_of_clip is None:
            peaks_of_clip = clip_peaks(clip)
        z = source_z(peaks_of_clip, clip_s, path, aligned.offset_s)
        if z is None:
            continue
        checked += 1
        others = [(source_z(peaks_of_clip, clip_s, path, o), o) for o in aligned.repeats]
        other_z, offset = max(((oz, o) for oz, o in others if oz is not None), default=(-1.0, 0.0))
        if other_z > z + REPEAT_GAIN:
            aligned.offset_s, z = offset, other_z
        aligned.source_z = z
