"""How the catalog keeps fingerprint segments: int8 vectors and start times in hop slots.

A unit vector's components are stored as round(127 x value), and renormalised when read:
the cosines the identification compares move by about 0.001, far below what tells tracks
apart. Segments start at whole multiples of the database hop, so a start is stored as its
slot number (uint16, or uint32 past 9 hours at a 0.5 s hop) with the hop once per track.
Per segment of 32 dimensions that is 34 bytes instead of 2 x 32 + 4 (float16 and float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlib.types import Segments

VECTOR_SCALE = 127
"""Stored int8 = round(VECTOR_SCALE x component) of a unit vector."""


def quantised(vectors: np.ndarray) -> np.ndarray:
    """(n, dim) unit vectors as the catalog stores them: int8 round(VECTOR_SCALE x value)."""
    scaled = np.round(np.asarray(vectors, np.float32) * VECTOR_SCALE)
    return np.clip(scaled, -VECTOR_SCALE, VECTOR_SCALE).astype(np.int8)


@dataclass(frozen=True)
class PackedSegments:
    """A track's fingerprint segments as the catalog stores them."""

    slots: np.ndarray
    """Start of each segment in units of `hop_s` (uint16 or uint32)."""
    vectors: np.ndarray
    """(len(slots), dim) int8."""
    hop_s: float

    def __len__(self) -> int:
        return int(self.slots.shape[0])

    @classmethod
    def pack(cls, segments: Segments, hop_s: float) -> PackedSegments:
        """`segments` (starting at multiples of `hop_s`) in the stored form."""
        slots = np.round(np.asarray(segments.start_s, np.float64) / hop_s).astype(np.int64)
        wide = slots.size and int(slots.max()) > np.iinfo(np.uint16).max
        return cls(
            slots=slots.astype(np.uint32 if wide else np.uint16),
            vectors=quantised(segments.vectors),
            hop_s=float(hop_s),
        )

    def unpack(self) -> Segments:
        """The segments as the identification uses them: float32 unit vectors, start times
        in seconds."""
        vectors = self.vectors.astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return Segments((self.slots * self.hop_s).astype(np.float32), vectors)

    def blobs(self) -> tuple[bytes, bytes]:
        """(slots, vectors) as raw little-endian bytes for the catalog's columns."""
        little = self.slots.astype(self.slots.dtype.newbyteorder("<"))
        return little.tobytes(), self.vectors.tobytes()

    @classmethod
    def from_blobs(cls, slots: bytes, vectors: bytes, count: int, hop_s: float) -> PackedSegments:
        """What `blobs` wrote for `count` segments (the slot width follows from the size)."""
        width = len(slots) // count if count else 2
        dtype = np.dtype("<u2") if width == 2 else np.dtype("<u4")
        array = np.frombuffer(vectors, np.int8)
        dim = array.size // count if count else 0
        return cls(np.frombuffer(slots, dtype), array.reshape(count, dim), float(hop_s))
