"""Similar-track search over the catalog's similarity index.

A query track is looked up by path in the catalog (its stored embedding is
used) or, if it is outside the library or not analysed with the current
model, embedded on the fly. The query itself, and copies of the same audio,
never appear in its own results. Tracks analysed after the index was built
are compared exactly, deleted ones dropped, so answers are current before the
index is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simlib import audio, features
from simlib.catalog import Catalog
from simlib.embedders import SIMILARITY
from simlib.indexing import current_index
from simlib.similarity import SimilarityModel
from simlib.tags import Tags, read_tags
from simlib.track_index import TrackIndex
from simlib.types import Track

OVERFETCH = 4
"""Neighbours fetched per result wanted, so filters still leave enough."""


@dataclass
class SimilarResult:
    """Results for one query (or for the blended seed set)."""

    query: str
    results: list[dict] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        data = {"query": self.query, "results": self.results}
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass
class Seed:
    """A query track: its vector, tags, and the catalog ids it stands for."""

    vector: np.ndarray
    tags: Tags
    exclude_ids: set[int]


def describe(track: Track, score: float) -> dict:
    """A result in the shape the CLI and the plugins print."""
    return {**track.summary(), "score": round(score, 4)}


def _same(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.strip().casefold() == b.strip().casefold())


class Recommender:
    """A loaded model and an open index, reused for every query of a call."""

    def __init__(self, catalog: Catalog, model: SimilarityModel) -> None:
        info = current_index(catalog, SIMILARITY, model.version)
        self.catalog = catalog
        self.model = model
        self.index = TrackIndex(Path(info["path"]), info["dim"] or model.dim)
        # Tracks analysed after the index was built: searched exactly, their index
        # entries (missing or stale) ignored.
        self.fresh_ids, self.fresh_vectors = catalog.vectors(SIMILARITY, since=info["generation"])

    def seed(self, query: str) -> Seed:
        """The vector of a library track, or of any audio file embedded now."""
        path = Path(query).expanduser().absolute()
        track = self.catalog.track_by_path(str(path))
        if track is not None:
            stored = self.catalog.vector(track.id, SIMILARITY, self.model.version)
            if stored is not None:
                return Seed(stored, track.tags, self.catalog.same_audio(track.id))
        mel = features.log_mel_stream(audio.stream(path))
        content_hash = audio.inspect(path).content_hash
        copies = {row["id"] for row in self.catalog.tracks_with_hash(content_hash)}
        return Seed(self.model.embed(mel), read_tags(path), copies)

    def neighbours(
        self, seeds: list[Seed], n: int, exclude_artist: bool, exclude_album: bool
    ) -> list[dict]:
        """The `n` tracks scoring highest against the seeds' mean vector, after the filters."""
        vector = np.mean([s.vector for s in seeds], axis=0)
        vector /= max(float(np.linalg.norm(vector)), 1e-9)
        excluded = set().union(*(s.exclude_ids for s in seeds))
        wanted = n + len(excluded)
        fresh = set(self.fresh_ids.tolist())
        exact = []
        if fresh:
            scores = self.index.scores(vector, self.fresh_vectors).tolist()
            exact = list(zip(self.fresh_ids.tolist(), scores, strict=True))
        while True:
            found = self.index.nearest(vector, wanted * OVERFETCH)
            complete = len(found) < wanted * OVERFETCH
            found = sorted([f for f in found if f[0] not in fresh] + exact, key=lambda f: -f[1])
            tracks = self.catalog.tracks(i for i, _ in found)
            results = []
            for track_id, score in found:
                track = tracks.get(track_id)  # None: deleted since the index was built
                if track is None or track_id in excluded:
                    continue
                if exclude_artist and any(_same(track.tags.artist, s.tags.artist) for s in seeds):
                    continue
                if exclude_album and any(_same(track.tags.album, s.tags.album) for s in seeds):
                    continue
                results.append(describe(track, score))
            if len(results) >= n or complete:
                return results[:n]
            wanted *= 4

    def similar(
        self, queries: list[str], n: int, exclude_artist: bool, exclude_album: bool, blend: bool
    ) -> list[SimilarResult]:
        results = [SimilarResult(query=q) for q in queries]
        seeds: list[Seed] = []
        for result in results:
            try:
                seeds.append(self.seed(result.query))
            except (audio.DecodeError, OSError) as error:
                result.error = audio.reason(error)
            else:
                if not blend:
                    result.results = self.neighbours(seeds[-1:], n, exclude_artist, exclude_album)
        if not blend:
            return results
        blended = SimilarResult(query=" + ".join(queries))
        if seeds:
            blended.results = self.neighbours(seeds, n, exclude_artist, exclude_album)
        errors = [f"{r.query}: {r.error}" for r in results if r.error]
        if errors:
            blended.error = "; ".join(errors)
        return [blended]


def similar_tracks(
    catalog: Catalog,
    model: SimilarityModel,
    queries: Iterable[str],
    n: int = 10,
    exclude_artist: bool = False,
    exclude_album: bool = False,
    blend: bool = False,
) -> list[SimilarResult]:
    """Results per query in order (or one blended list); unreadable queries get `error`."""
    recommender = Recommender(catalog, model)
    return recommender.similar(list(queries), n, exclude_artist, exclude_album, blend)
