"""Check an alignment against the library track's own audio: spectral-peak coincidence.

The fingerprint vectors summarise a second of audio each, so two tracks with the same
instruments and tempo can align well although different notes are played (a 5 s clip of
one ambient pad found in another). A candidate (track, offset) is therefore checked at the
source: the local maxima of the clip's spectrogram (`simlib.identify.peaks`) should land on
the track's own peaks at the aligned time, and clearly more often there than a fraction of
a second off. The track's peaks were stored by the scan; a track analysed before they were
is decoded from its file instead. The statistic is a z-score of the coincidence rate at the
alignment (within NEAR_S, best of playback speeds SPEEDS) against the rates at the other
lags within PAD_S: chance coincidences of similar-sounding audio do not peak at one lag,
and noise that buries most of the clip's peaks lowers the rate at every lag alike. Under
loud talkers the clip's strongest peaks are mostly theirs, so the check also reads the
clip's peak contrast at the track's peaks, picking no peaks in the clip (`contrast_z`);
the larger of the two z-scores is the check's.

Looping music plays the same bars again, and the stored vectors fit several passes about
as well (the alignment's repeats). The passes are told apart by how well the clip's
spectrogram correlates with each pass's, decoded from the track's file: it follows every
note's level, so it sees a changed voice or a fill that hardly moves the peaks. That
spectrogram has longer windows (PASS_WINDOW_S), so it resolves pitch finer and depends less
on where the frames fall. Which alignments are checked is the policy's
(`simlib.identify.policy`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simlib import audio
from simlib.catalog.peaks import TrackPeaks
from simlib.identify.peaks import (
    CLIP_PEAKS_PER_S,
    FRAME_RATE_HZ,
    TRACK_PEAKS_PER_S,
    Peaks,
    band_bins,
    band_level,
    excerpt_peaks,
    max_filter,
    peak_contrast,
    peaks,
)
from simlib.identify.verify import Alignment

if TYPE_CHECKING:
    from simlib.identify.policy import Policy

TRACK_RATE_HZ = 8000
"""A track without stored peaks is decoded at this rate: the band ends at its Nyquist
frequency, and resampling to it costs less than to 16 kHz. Same window and frames in
seconds, so the same frequency bins as the clip's."""
SPEEDS = (0.98, 0.99, 1.0, 1.01, 1.02)
"""Playback speeds of the clip relative to the track tried (time and frequency scaled)."""
PAD_S = 0.75
"""Track audio decoded on each side of the aligned clip: the lags compared, seconds."""
NEAR_S = 0.2
"""Lags within this of the alignment count as the alignment, seconds."""
PASS_WINDOW_S = 0.128
"""Spectrogram window when correlating a clip with the passes of a loop, seconds (same
frames): finer pitch than WINDOW_S, and less dependence on where the frames fall."""
PASS_SPEEDS = (0.98, 1.0, 1.02)
"""Playback speeds tried when correlating spectrograms to choose a pass."""
CHECK_THREADS = min(2, os.cpu_count() or 1)
"""Threads beside the caller's for a check: the clip's spectra are computed while the track
decodes, and a loop's passes decode side by side (FFmpeg and numpy release the GIL)."""


@dataclass
class ClipSpectrum:
    """What the checks use of a 16 kHz clip, each computed when first asked for."""

    samples: np.ndarray

    @property
    def seconds(self) -> float:
        return self.samples.size / audio.ANALYSIS_RATE_HZ

    @cached_property
    def level(self) -> np.ndarray:
        """Its `band_level`, which its peaks and its contrast are read from."""
        return band_level(self.samples)

    @cached_property
    def peaks(self) -> Peaks:
        """The clip's peaks, as `coincidence_z` compares them."""
        return peaks(self.level, CLIP_PEAKS_PER_S)

    @cached_property
    def contrast(self) -> np.ndarray:
        """The clip's `peak_contrast`, each cell the highest of its 3 x 3 neighbourhood (as
        `coincidence_z` widens the track's peaks), as `contrast_z` reads it."""
        return max_filter(peak_contrast(self.level), 3)

    @cached_property
    def pass_level(self) -> np.ndarray:
        """Its `band_level` with PASS_WINDOW_S windows, as `level_correlation` compares it."""
        return band_level(self.samples, window_s=PASS_WINDOW_S)


def coincidence_z(clip: Peaks, track: Peaks, pad_s: float = PAD_S) -> float:
    """z-score of how many of the clip's peaks fall on the track's (within one bin and one
    frame) at the alignment, where `track` holds the track's peaks from `pad_s` before the
    clip's start to `pad_s` after its end; 0.0 when the clip has no peaks."""
    if clip.bins.size == 0:
        return 0.0
    grid = np.zeros(track.shape, dtype=np.float32)
    grid[track.bins, track.frames] = 1.0
    grid = max_filter(grid, 3) > 0
    lead, lags = _lags(pad_s)
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
    return _alignment_z(rate, lags)


def contrast_z(clip: np.ndarray, track: Peaks, pad_s: float = PAD_S) -> float:
    """z-score of the clip's mean contrast (`ClipSpectrum.contrast`) under the track's peaks
    at the alignment, against the other lags (`coincidence_z`'s track excerpt, lags and
    speeds); 0.0 when the track has no peaks there."""
    if track.bins.size == 0:
        return 0.0
    n_bins, n = clip.shape
    lead, lags = _lags(pad_s)
    centre = (n - 1) / 2
    score = np.full(lags.size, -np.inf)
    for speed in SPEEDS:
        # the track's peaks onto the clip's grid: the inverse of `coincidence_z`'s mapping
        bins = np.round(track.bins / speed).astype(int)
        frames = centre + (track.frames - lead - centre) / speed
        at = np.round(frames[None, :] - lags[:, None]).astype(int)
        inside = (at >= 0) & (at < n) & (bins < n_bins)
        value = clip[np.minimum(bins, n_bins - 1), np.clip(at, 0, n - 1)]
        mean = np.where(inside, value, 0.0).sum(axis=1) / np.maximum(inside.sum(axis=1), 1)
        score = np.maximum(score, mean)
    return _alignment_z(score, lags)


def _lags(pad_s: float) -> tuple[int, np.ndarray]:
    """Frames of track excerpt before the clip, and every lag compared (frames)."""
    lead = int(round(pad_s * FRAME_RATE_HZ))
    return lead, np.arange(-lead, lead + 1)


def _alignment_z(score: np.ndarray, lags: np.ndarray) -> float:
    """z-score of the best `score` within NEAR_S of lag 0 against the other lags'."""
    near = np.abs(lags) <= NEAR_S * FRAME_RATE_HZ
    other = score[~near]
    spread = float(other.std())
    return float((score[near].max() - np.median(other)) / spread) if spread > 0 else 0.0


def pass_pad_s(clip_s: float) -> float:
    """Track audio `level_correlation` needs on each side of a clip of `clip_s`: the lags
    within NEAR_S, the clip stretched to the fastest of PASS_SPEEDS, half a window (the
    frames at the ends see past them) and a frame to round. Less than PAD_S, so a loop's
    passes decode less when the peaks are stored."""
    stretch_s = (max(PASS_SPEEDS) - 1.0) * clip_s / 2
    return NEAR_S + stretch_s + PASS_WINDOW_S / 2 + 1.0 / FRAME_RATE_HZ


def level_correlation(clip: np.ndarray, track: np.ndarray, pad_s: float = PAD_S) -> float:
    """Best Pearson correlation of a clip's `band_level` (PASS_WINDOW_S windows) with a
    track's, where `track` runs from `pad_s` before the clip's start to `pad_s` after its
    end: over lags within NEAR_S of the alignment and the clip played at PASS_SPEEDS (time
    and frequency scaled)."""
    lo = band_bins(PASS_WINDOW_S)[0]
    n_bins, n = clip.shape
    lead, near = round(pad_s * FRAME_RATE_HZ), int(NEAR_S * FRAME_RATE_HZ)
    best = -1.0
    for speed in PASS_SPEEDS:
        # the clip resampled onto the track's grid: track (bin b, frame j) <- clip (b / speed, ...)
        m = round(n * speed)
        frames = np.round((n - 1) / 2 + (np.arange(m) - (m - 1) / 2) / speed).astype(int)
        bins = np.round((np.arange(n_bins) + lo) / speed).astype(int) - lo
        inside = (bins >= 0) & (bins < n_bins)
        # frames x bins, so that the track under the clip at each lag is one contiguous run
        warped = clip[bins[inside]][:, np.clip(frames, 0, n - 1)].T.ravel()
        warped = warped - warped.mean()
        warped /= np.linalg.norm(warped) + 1e-9
        start = lead - (m - n) // 2  # track frame under the warped clip's first, at lag 0
        first, last = max(start - near, 0), min(start + near + m, track.shape[1])
        if last - first < m:
            continue
        excerpt = np.ascontiguousarray(track[inside, first:last].T)
        flat, size = excerpt.ravel(), warped.size
        width = excerpt.shape[1]
        products = np.array(
            [flat[at * width : at * width + size] @ warped for at in range(last - first - m + 1)]
        )
        total = np.concatenate([[0.0], np.cumsum(excerpt.sum(axis=1))])
        squares = np.concatenate([[0.0], np.cumsum((excerpt * excerpt).sum(axis=1))])
        sums, sum_squares = total[m:] - total[:-m], squares[m:] - squares[:-m]
        spread = np.sqrt(np.maximum(sum_squares - sums * sums / size, 1e-9))
        best = max(best, float((products / spread).max()))
    return best


def track_excerpt(
    path: Path, offset_s: float, clip_s: float, pad_s: float = PAD_S
) -> np.ndarray | None:
    """The audio file `path` at TRACK_RATE_HZ from `pad_s` before track time `offset_s` to
    `pad_s` after `offset_s + clip_s` (silence before the track's start or after its end);
    None when the file cannot be read."""
    start_s = offset_s - pad_s
    length = round((clip_s + 2 * pad_s) * TRACK_RATE_HZ)
    try:
        track = audio.decode(path, max(start_s, 0.0), length / TRACK_RATE_HZ, TRACK_RATE_HZ)
    except (audio.DecodeError, OSError):
        return None
    before = np.zeros(round(max(-start_s, 0.0) * TRACK_RATE_HZ), np.float32)
    track = np.concatenate([before, track])[:length]
    return np.pad(track, (0, length - track.size))


def pass_correlation(clip: ClipSpectrum, excerpt: np.ndarray, pad_s: float = PAD_S) -> float:
    """`level_correlation` of a clip with a `track_excerpt` (of `pad_s`) at one pass."""
    level = band_level(excerpt, TRACK_RATE_HZ, PASS_WINDOW_S)
    return level_correlation(clip.pass_level, level, pad_s)


def decoded_peaks(excerpt: np.ndarray) -> Peaks:
    """The track's peaks in a `track_excerpt`, as `coincidence_z` compares them."""
    return peaks(band_level(excerpt, TRACK_RATE_HZ), TRACK_PEAKS_PER_S)


def source_z(clip: ClipSpectrum, track: Peaks) -> float:
    """The check's z of a clip against the track's peaks around the alignment: the larger
    of `coincidence_z` and `contrast_z`."""
    return max(coincidence_z(clip.peaks, track), contrast_z(clip.contrast, track))


@dataclass(frozen=True)
class Evidence:
    """An alignment and what its track's own audio says of it."""

    alignment: Alignment
    offset_s: float
    """Where the clip lies in the track: the alignment's offset, or the pass of a loop the
    check chose."""
    source_z: float | None = None
    """`source_z` with the track's peaks at `offset_s`; None when not checked."""


TrackPeaksOf = Callable[[int], TrackPeaks | None]
"""track_peaks(track id) -> the peaks the scan stored for the track (of this
`simlib.identify.peaks.VERSION`), or None."""


def check(
    alignments: tuple[Alignment, ...],
    spectrum: ClipSpectrum,
    path_of: Callable[[int], Path | None],
    policy: Policy,
    track_peaks: TrackPeaksOf = lambda _track_id: None,
) -> tuple[Evidence, ...]:
    """Evidence for every alignment. The first `policy.top` alignments that are likely
    (margin-only confidence at least `policy.check_floor`), not trusted (repeats, or a margin
    below `policy.trusted_margin`) and whose track has stored peaks (`track_peaks`) or a
    readable file (`path_of`) are checked: first moved to the pass of a loop whose
    `level_correlation` with the clip is highest (when the file is at hand), then given the
    source z there. `spectrum` keeps what it computed of the clip for a later check."""
    checked, out = 0, []
    with ThreadPoolExecutor(CHECK_THREADS) as pool:  # no thread starts until a check
        for aligned in alignments:
            evidence = None
            if checked < policy.top and _worth_checking(aligned, policy):
                stored = track_peaks(aligned.track_id)
                # the file is needed for a loop's passes, or when no peaks are stored
                needs_file = bool(aligned.repeats) or stored is None
                path = path_of(aligned.track_id) if needs_file else None
                track = TrackAudio(path, stored)
                evidence = _check_one(aligned, track, spectrum, pool, policy.passes_decoded)
            checked += evidence is not None
            out.append(evidence or Evidence(aligned, aligned.offset_s))
    return tuple(out)


def _worth_checking(aligned: Alignment, policy: Policy) -> bool:
    if policy.calibration.from_margin(aligned.margin) < policy.check_floor:
        return False
    return aligned.margin < policy.trusted_margin or bool(aligned.repeats)


@dataclass(frozen=True)
class TrackAudio:
    """What a check has of a library track: its file and its stored peaks, each maybe None."""

    path: Path | None
    peaks: TrackPeaks | None

    def peaks_at(self, offset_s: float, clip_s: float, excerpt: np.ndarray | None) -> Peaks | None:
        """The track's peaks around a clip of `clip_s` at `offset_s`: stored ones, else those
        of the decoded `excerpt` there (decoded now if not given); None when neither is."""
        if self.peaks is not None:
            return excerpt_peaks(self.peaks, offset_s, clip_s, PAD_S)
        if excerpt is None and self.path is not None:
            excerpt = track_excerpt(self.path, offset_s, clip_s)
        return None if excerpt is None else decoded_peaks(excerpt)


def _check_one(
    aligned: Alignment, track: TrackAudio, spectrum: ClipSpectrum, pool: Executor, decoded: int
) -> Evidence | None:
    """The alignment checked at its best pass (of the `decoded` `likeliest_passes`); None
    when the track has neither stored peaks nor a readable file. The clip's spectra are
    computed while the track decodes, and a loop's passes side by side."""
    clip_ready = pool.submit(lambda: (spectrum.peaks, spectrum.contrast))
    offset_s, excerpt = aligned.offset_s, None
    if aligned.repeats and track.path is not None:
        clip_level = pool.submit(lambda: spectrum.pass_level)
        offsets = (aligned.offset_s, *aligned.repeats)
        if track.peaks is not None and len(offsets) > decoded:
            clip_ready.result()
            offsets = likeliest_passes(offsets, track, spectrum, decoded)
        # with stored peaks a pass's excerpt only chooses the pass: no more than that needs
        pad_s = PAD_S if track.peaks is None else pass_pad_s(spectrum.seconds)
        passes = list(
            pool.map(
                lambda offset_s: _one_pass(track.path, offset_s, spectrum, clip_level, pad_s),
                offsets,
            )
        )
        if passes[0] is None and track.peaks is None:
            return None  # the file cannot be read: no need to try it again
        if passes[0] is not None:
            offset_s, excerpt, _ = max((p for p in passes if p is not None), key=lambda p: p[2])
    found = track.peaks_at(offset_s, spectrum.seconds, excerpt)
    if found is None:
        return None
    clip_ready.result()
    return Evidence(aligned, offset_s, source_z(spectrum, found))


def likeliest_passes(
    offsets: tuple[float, ...], track: TrackAudio, spectrum: ClipSpectrum, keep: int
) -> tuple[float, ...]:
    """The `keep` of a loop's pass `offsets` where the track's stored peaks agree best with
    the clip (`source_z` of `TrackAudio.peaks_at`, as the check scores a pass; ties in the
    given order), best first."""
    z = [source_z(spectrum, track.peaks_at(o, spectrum.seconds, None)) for o in offsets]
    order = sorted(range(len(offsets)), key=lambda i: -z[i])
    return tuple(offsets[i] for i in order[:keep])


def _one_pass(
    path: Path, offset_s: float, spectrum: ClipSpectrum, clip_level: Future, pad_s: float
) -> tuple[float, np.ndarray, float] | None:
    """A pass's offset, excerpt (of `pad_s`) and `pass_correlation`; None when it cannot
    be read."""
    excerpt = track_excerpt(path, offset_s, spectrum.seconds, pad_s)
    if excerpt is None:
        return None
    clip_level.result()  # the clip's spectrum, computed by a thread that started before
    return offset_s, excerpt, pass_correlation(spectrum, excerpt, pad_s)
