"""Identify recorded clips against the catalog's fingerprint index.

A clip is decoded, cut into fingerprint segments every `query_hop_s`, each
segment looks up its nearest library segments, the hits vote for
(track, offset), the best candidates are verified against their tracks' segments
stored in the catalog (see `simlib.matching`), and the likely ones against their tracks'
audio files (see `simlib.source_check`). Tracks deleted from the catalog since
the index was built are dropped from the answers, and tracks analysed since
are searched exactly, so answers are current before the index is rebuilt.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simlib import audio, features, matching, source_check
from simlib.catalog import Catalog
from simlib.embedders import FINGERPRINT
from simlib.fingerprint import FingerprintModel
from simlib.fingerprint_index import FingerprintIndex
from simlib.indexing import current_index
from simlib.matching import Alignment, Calibration
from simlib.types import Match, Segments, Track
from simlib.workers import torch_threads

STDIN = "-"


@dataclass
class IdentifyResult:
    """The answer for one clip: the best match (or None), the candidates, or an error."""

    query: str
    match: dict | None = None
    candidates: list[dict] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        data = {"query": self.query, "match": self.match, "candidates": self.candidates}
        if self.error is not None:
            data["error"] = self.error
        return data


def describe(track: Track, match: Match) -> dict:
    """A match in the shape the CLI and the plugins print."""
    return {
        **track.summary(),
        "offset_s": round(match.offset_s, 2) + 0.0,  # no "-0.0"
        "confidence": round(match.confidence, 4),
    }


@dataclass
class FreshSegments:
    """Fingerprints of tracks analysed after the index was built, searched exactly.

    Until the next rebuild these tracks' entries in the Annoy index are missing
    (new tracks) or stale (changed audio), so their index hits are replaced by
    hits from a brute-force search over their current segments.
    """

    track_id: np.ndarray
    start_s: np.ndarray
    vectors: np.ndarray

    @classmethod
    def load(cls, catalog: Catalog, index_generation: int) -> FreshSegments:
        rows = list(catalog.segments(FINGERPRINT, since=index_generation))
        if not rows:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 1), np.float32))
        return cls(
            np.concatenate([np.full(len(s), i, np.int64) for i, s in rows]),
            np.concatenate([s.start_s for _, s in rows]).astype(np.float32),
            np.concatenate([s.vectors for _, s in rows]).astype(np.float32),
        )

    def merge(self, hits: matching.Hits, query: Segments, k: int) -> matching.Hits:
        """`hits` with the fresh tracks' entries replaced by their `k` exact nearest."""
        if self.track_id.size == 0 or len(query) == 0:
            return hits
        keep = ~np.isin(hits.track_id, self.track_id)
        similarity = query.vectors.astype(np.float32) @ self.vectors.T
        k = min(k, self.track_id.size)
        best = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(query)), k)
        cols = best.reshape(-1)
        return matching.Hits(
            query_s=np.concatenate([hits.query_s[keep], query.start_s[rows]]),
            track_id=np.concatenate([hits.track_id[keep], self.track_id[cols]]),
            db_s=np.concatenate([hits.db_s[keep], self.start_s[cols]]),
            similarity=np.concatenate([hits.similarity[keep], similarity[rows, cols]]),
            n_query=hits.n_query,
        )


@dataclass
class ClipMatcher:
    """The query path, apart from where tracks are kept: a clip's samples -> fingerprint
    segments -> index hits -> verified alignments (`matching.alignments`) -> source check.

    `track_segments(track_id)` gives a track's stored fingerprints and `path_of(track_id)`
    its audio file, each None for a track gone from the library.
    """

    model: FingerprintModel
    index: FingerprintIndex
    track_segments: Callable[[int], Segments | None]
    path_of: Callable[[int], Path | None]
    calibration: Calibration
    fresh: FreshSegments | None = None
    check_every: bool = False
    """Check every alignment's source, whatever its margin (to fit a calibration)."""

    def alignments(self, samples: np.ndarray, limit: int) -> list[Alignment]:
        """Verified alignments of a 16 kHz clip, best score first, the first `limit` likely
        ones checked against their audio. One torch thread: a 5 s clip's few segments are
        no faster on two, and the mel spectrogram is slower."""
        with torch_threads(1):
            segments = self.model.embed(features.log_mel(samples), self.model.query_hop_s)
        k = self.model.neighbours
        hits = self.index.search(segments, k=k, search_k=self.model.search_k)
        if self.fresh is not None:
            hits = self.fresh.merge(hits, segments, k)
        shortlist = max(limit, matching.SHORTLIST)
        found = matching.alignments(
            hits, segments, self.track_segments, self.model.db_hop_s, shortlist=shortlist
        )
        every = {"floor": 0.0, "trusted": math.inf} if self.check_every else {}
        source_check.check_sources(found, samples, self.path_of, self.calibration, limit, **every)
        return found

    def matches(self, samples: np.ndarray, top: int, min_confidence: float) -> list[Match]:
        """Up to `top` matches of a 16 kHz clip with confidence >= `min_confidence`, most
        confident first; [] means no match."""
        found = self.alignments(samples, top)
        return matching.decide(found, self.calibration, min_confidence, top)


class Identifier:
    """A loaded model and an open index, reused for every clip of a call."""

    def __init__(self, catalog: Catalog, model: FingerprintModel) -> None:
        info = current_index(catalog, FINGERPRINT, model.version)
        self.catalog = catalog
        self.matcher = ClipMatcher(
            model,
            FingerprintIndex.open(Path(info["path"])),
            lambda track_id: catalog.track_segments(track_id, FINGERPRINT),
            self.path_of,
            model.calibration,
            FreshSegments.load(catalog, info["generation"]),
        )

    def path_of(self, track_id: int) -> Path | None:
        """The audio file of a catalogued track, None if it is gone."""
        track = self.catalog.track(track_id)
        return Path(track.path) if track is not None else None

    def identify(self, clip: str, top: int, min_confidence: float) -> IdentifyResult:
        result = IdentifyResult(query=clip)
        try:
            source = io.BytesIO(sys.stdin.buffer.read()) if clip == STDIN else Path(clip)
            found = self.matcher.matches(audio.decode(source), top, min_confidence)
        except (audio.DecodeError, OSError) as error:
            result.error = audio.reason(error)
            return result
        tracks = self.catalog.tracks(m.track_id for m in found)
        result.candidates = [describe(tracks[m.track_id], m) for m in found if m.track_id in tracks]
        result.match = result.candidates[0] if result.candidates else None
        return result


def identify_clips(
    catalog: Catalog,
    model: FingerprintModel,
    clips: Iterable[str],
    top: int,
    min_confidence: float,
) -> list[IdentifyResult]:
    """Identify every clip in order; a clip that cannot be read gets `error`."""
    identifier = Identifier(catalog, model)
    return [identifier.identify(str(clip), top, min_confidence) for clip in clips]
