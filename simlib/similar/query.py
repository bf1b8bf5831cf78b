"""Similar-track search over the catalog's similarity index.

A query track is looked up by path in the catalog (its stored embedding is used) or, if
it is outside the library or not analysed with the current model, embedded on the fly.
The query itself, and copies of the same audio, never appear in its own results, and
copies of one recording (files with the same audio packets) appear once. Tracks
analysed after the index was built are compared exactly, deleted ones dropped, so answers
are current before the index is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from simlib import audio, weights
from simlib.audio.features import log_mel_stream
from simlib.catalog import AddedSince, Catalog, Found, current_build, read_tags
from simlib.similar.index import TrackIndex
from simlib.similar.model import SimilarityModel
from simlib.types import QueryResult, Tags, Track

MODEL = weights.SIMILARITY.name
"""The catalog's name for similarity embeddings and their index."""
OVERFETCH = 4
"""Neighbours fetched per result wanted, so filters still leave enough."""


@dataclass(frozen=True)
class SimilarTrack:
    """A library track and how similar it sounds (a weighted mean of cosines, at most 1:
    higher is more similar)."""

    track: Track
    score: float

    def as_dict(self) -> dict:
        return {**self.track.summary(), "score": round(self.score, 4)}


@dataclass(frozen=True)
class SimilarResult(QueryResult):
    """The tracks most similar to one query (or to a blended seed set), best first."""

    results: tuple[SimilarTrack, ...] = ()

    def payload(self) -> dict:
        return {"results": [r.as_dict() for r in self.results]}


@dataclass(frozen=True)
class Seed:
    """A query track: its vector, tags, and the catalog ids it stands for."""

    vector: np.ndarray
    tags: Tags
    exclude_ids: frozenset[int]


@dataclass(frozen=True)
class Filters:
    """What a result may not share with the seeds."""

    exclude_artist: bool = False
    exclude_album: bool = False

    def allows(self, track: Track, seeds: list[Seed]) -> bool:
        if self.exclude_artist and any(_same(track.tags.artist, s.tags.artist) for s in seeds):
            return False
        return not (
            self.exclude_album and any(_same(track.tags.album, s.tags.album) for s in seeds)
        )


def _same(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.strip().casefold() == b.strip().casefold())


class Recommender:
    """The catalog's index and a model, reused for every query of a call."""

    def __init__(self, catalog: Catalog, model: SimilarityModel) -> None:
        build = current_build(catalog, MODEL, model.version)
        self.catalog = catalog
        self.model = model
        self.index = TrackIndex(build.path, build.dim or model.dim, model.ranking)
        added = AddedSince.embeddings(catalog, MODEL, build)
        if added.track_id.size:
            ids = added.track_id.tolist()
            copies = catalog.recordings(ids)  # one lookup for all: start-up grows with them
            own = [frozenset(copies.get(i, (i,))) for i in ids]
            ranked = self.index.expanded_added(self.index.ranked(added.vectors), own)
            added = replace(added, vectors=ranked)
        self.added = added
        """Tracks analysed since the build, in the space the index ranks in."""

    def seed(self, query: str) -> Seed:
        """The vector of a library track, or of any audio file embedded now."""
        path = audio_path(query)
        track = self.catalog.track_by_path(str(path))
        if track is not None:
            stored = self.catalog.vector(track.id, MODEL, self.model.version)
            if stored is not None:
                return Seed(stored, track.tags, frozenset(self.catalog.same_audio(track.id)))
        vector = self.model.embed(log_mel_stream(audio.stream(path)))
        content_hash = audio.inspect(path).content_hash
        copies = frozenset(row["id"] for row in self.catalog.tracks_with_hash(content_hash))
        return Seed(vector, read_tags(path), copies)

    def neighbours(self, seeds: list[Seed], n: int, filters: Filters) -> tuple[SimilarTrack, ...]:
        """The `n` tracks scoring highest against the mean of the seeds (in the space the
        index ranks in, each expanded by its nearest indexed tracks), after the filters."""
        ranked = self.index.ranked(np.stack([s.vector for s in seeds]))
        # each seed expanded alone, so that a blend stays between them
        expanded = [
            self.index.expanded_query(row, seed.exclude_ids)
            for row, seed in zip(ranked, seeds, strict=True)
        ]
        query = np.mean(expanded, axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-9)
        excluded = frozenset().union(*(s.exclude_ids for s in seeds))
        wanted = n + len(excluded)
        while True:
            found = self.index.nearest(query, wanted * OVERFETCH)
            complete = len(found) < wanted * OVERFETCH
            found = self.added.merge(found, query[None, :], len(self.added.track_id))
            results = self._ranked(found, excluded, seeds, filters)
            if len(results) >= n or complete:
                return tuple(results[:n])
            wanted *= 4

    def _ranked(
        self, found: Found, excluded: frozenset[int], seeds: list[Seed], filters: Filters
    ) -> list[SimilarTrack]:
        """The found tracks best first, without the excluded, the filtered and second
        copies of a recording (each copy stands for the first one)."""
        order = np.argsort(-found.score, kind="stable")
        ids = found.track_id[order].tolist()
        first = {t: group[0] for t, group in self.catalog.recordings(ids).items()}
        tracks = self.catalog.tracks(ids + list(first.values()))
        results, seen = [], set()
        for track_id, score in zip(ids, found.score[order].tolist(), strict=True):
            track = tracks.get(first.get(track_id, track_id))  # None: deleted since the build
            if track is None or track.id in seen or not filters.allows(track, seeds):
                continue
            seen.add(track.id)
            if track_id not in excluded and track.id not in excluded:
                results.append(SimilarTrack(track, float(score)))
        return results

    def similar(
        self, queries: list[str], n: int, filters: Filters, blend: bool
    ) -> list[SimilarResult]:
        """Results per query in order, or one result for all of them with `blend`."""
        results, seeds = [], []
        for query in queries:
            try:
                seed = self.seed(query)
            except (audio.DecodeError, OSError) as error:
                results.append(SimilarResult(query, error=audio.reason(error)))
                continue
            seeds.append(seed)
            found = () if blend else self.neighbours([seed], n, filters)
            results.append(SimilarResult(query, results=found))
        if not blend:
            return results
        errors = "; ".join(f"{r.query}: {r.error}" for r in results if r.error)
        found = self.neighbours(seeds, n, filters) if seeds else ()
        return [SimilarResult(" + ".join(queries), errors or None, found)]


def audio_path(query: str) -> Path:
    """A query as the catalog names files: absolute, `~` expanded."""
    return Path(query).expanduser().absolute()


def similar_tracks(
    catalog: Catalog,
    model: SimilarityModel,
    queries: Iterable[str],
    n: int,
    filters: Filters,
    blend: bool = False,
) -> list[SimilarResult]:
    """Results per query in order (or one blended list); unreadable queries get `error`."""
    return Recommender(catalog, model).similar(list(queries), n, filters, blend)
