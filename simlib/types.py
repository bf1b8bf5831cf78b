"""Small data types at the seams between analysis, storage and matching."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simlib.tags import Tags


@dataclass
class Track:
    """A catalogued track, as the matching and similarity code report it."""

    id: int
    path: str
    tags: Tags = field(default_factory=Tags)
    duration_s: float | None = None

    def summary(self) -> dict:
        """What every printed result (identify and similar) starts with."""
        return {
            "path": self.path,
            "title": self.tags.title,
            "artist": self.tags.artist,
            "album": self.tags.album,
        }


@dataclass
class Segments:
    """Fingerprint vectors of one track (or query clip), one row per segment.

    `start_s[i]` is the time in seconds where segment i begins; `vectors` is
    (len(start_s), dim) float32, each row L2-normalised.
    """

    start_s: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return int(self.start_s.shape[0])


@dataclass
class Match:
    """A library track found in a query clip, and where: track time = clip time + offset_s."""

    track_id: int
    offset_s: float
    confidence: float
    """Calibrated 0..1: the probability that this is the right track."""
    votes: int = 0


@dataclass
class Neighbour:
    """A similar track and its score (higher is more similar)."""

    track_id: int
    score: float
