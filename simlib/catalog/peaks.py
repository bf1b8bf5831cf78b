"""How the catalog keeps a track's spectral peaks (`simlib.identify.peaks`): two bytes a peak.

The peaks are chosen block by block (BLOCK_FRAMES frames each), so a peak's frame is kept
as its place in its block (one byte) beside its band bin (one byte), with each block's
count once (uint16). At 40 peaks a second that is about 80 bytes per second of audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_FRAMES = 250
"""Frames per block: a place in the block fits one byte (4 s at 16 ms frames)."""


@dataclass(frozen=True)
class TrackPeaks:
    """A track's peaks, by block: how many in each block, and each one's band bin and place
    in its block, block after block."""

    counts: np.ndarray
    bins: np.ndarray
    places: np.ndarray

    @classmethod
    def of(cls, bins: np.ndarray, frames: np.ndarray, n_frames: int) -> TrackPeaks:
        """The peaks at (band bin, frame) of a track `n_frames` frames long."""
        frames = np.asarray(frames, np.int64)
        order = np.argsort(frames, kind="stable")
        frames, bins = frames[order], np.asarray(bins)[order]
        n_blocks = -(-n_frames // BLOCK_FRAMES)
        counts = np.bincount(frames // BLOCK_FRAMES, minlength=n_blocks).astype(np.uint16)
        places = (frames % BLOCK_FRAMES).astype(np.uint8)
        return cls(counts, bins.astype(np.uint8), places)

    @classmethod
    def from_blobs(cls, counts: bytes, peaks: bytes) -> TrackPeaks:
        pairs = np.frombuffer(peaks, np.uint8).reshape(2, -1)
        return cls(np.frombuffer(counts, "<u2"), pairs[0], pairs[1])

    def blobs(self) -> tuple[bytes, bytes]:
        """The block counts (uint16) and the peaks (every bin, then every place)."""
        return self.counts.astype("<u2").tobytes(), np.concatenate(
            [self.bins, self.places]
        ).tobytes()

    def __len__(self) -> int:
        return int(self.bins.size)

    def frames(self) -> np.ndarray:
        """Every peak's frame in the track."""
        return self.window(0, self.counts.size * BLOCK_FRAMES)[1]

    def window(self, first: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(band bins, frames counted from `first`) of the peaks in frames
        [first, first + n_frames); `first` may be negative (before the track)."""
        lo = max(first // BLOCK_FRAMES, 0)
        hi = min(-(-(first + n_frames) // BLOCK_FRAMES), self.counts.size)
        if hi <= lo:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        ends = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
        part = slice(ends[lo], ends[hi])
        starts = np.repeat(np.arange(lo, hi) * BLOCK_FRAMES, self.counts[lo:hi])
        frames = starts + self.places[part] - first
        inside = (frames >= 0) & (frames < n_frames)
        return self.bins[part][inside].astype(np.int64), frames[inside]
