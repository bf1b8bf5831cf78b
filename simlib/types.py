"""Small frozen data types shared by every layer: tags, tracks, fingerprint segments, and
the fields every query result has."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tags:
    """Descriptive tags of one track; every field may be missing."""

    title: str | None = None
    artist: str | None = None
    album_artist: str | None = None
    album: str | None = None
    genre: tuple[str, ...] = ()
    year: int | None = None
    track_number: int | None = None
    bpm: float | None = None
    mood: str | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "genre", tuple(self.genre))  # a list given stays unshared

    def as_dict(self) -> dict:
        return {**asdict(self), "genre": list(self.genre)}

    @classmethod
    def from_dict(cls, data: dict) -> Tags:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if data.get(k) is not None})


@dataclass(frozen=True)
class Track:
    """A catalogued track, as the query code reports it."""

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


@dataclass(frozen=True)
class Segments:
    """Fingerprint vectors of one track (or query clip), one row per segment.

    `start_s[i]` is the time in seconds where segment i begins; `vectors` is
    (len(start_s), dim), each row L2-normalised.
    """

    start_s: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return int(self.start_s.shape[0])


@dataclass(frozen=True)
class QueryResult:
    """What every query result has: the query as given, and why it failed (None if not)."""

    query: str
    error: str | None = None

    def payload(self) -> dict:
        """The answer's own fields, as printed between the query and the error."""
        return {}

    def as_dict(self) -> dict:
        data = {"query": self.query, **self.payload()}
        if self.error is not None:
            data["error"] = self.error
        return data
