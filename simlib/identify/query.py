"""A clip's identification end to end: samples -> segments -> hits -> candidates ->
alignments -> evidence -> decision, each stage returning a new frozen value.

`ClipMatcher` is the path apart from where tracks are kept (a benchmark gives it
in-memory segments); `Identifier` runs it over the catalog and its index. Tracks deleted
from the catalog since the index was built are dropped from the answers, and tracks
analysed since are searched exactly, so answers are current before the index is rebuilt.
Copies of one recording (files with the same audio packets) are one track to every stage
after the search: one candidate, with its copies named, and no copy competing with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from simlib import audio, weights
from simlib.audio.features import above_band_db, log_mel
from simlib.catalog import AddedSince, Catalog, Found, current_build
from simlib.config import SimlibError
from simlib.identify.index import FingerprintIndex
from simlib.identify.model import PHONE_VIEW, FingerprintModel
from simlib.identify.peaks import VERSION as PEAKS_VERSION
from simlib.identify.policy import Decision, Policy, best_confidence, decide
from simlib.identify.source_check import ClipSpectrum, TrackPeaksOf, check
from simlib.identify.verify import align
from simlib.identify.vote import Hits, candidates
from simlib.types import QueryResult, Segments, Track

MODEL = weights.FINGERPRINT.name
"""The catalog's name for fingerprint segments and their index."""

Recordings = Callable[[Iterable[int]], dict[int, tuple[int, ...]]]
"""recordings(track ids) -> {id: ids of every copy of its audio, lowest first} for the
tracks that have copies (`Catalog.recordings`)."""


def one_per_recording(found: Found, recordings: Recordings) -> Found:
    """`found` with each copy of a recording's audio standing for its first copy (lowest
    id), so that copies pool their hits and never compete as runners-up."""
    groups = recordings(np.unique(found.track_id).tolist())
    if not groups:
        return found
    first = {track_id: group[0] for track_id, group in groups.items()}
    track_id = np.asarray([first.get(t, t) for t in found.track_id.tolist()], np.int64)
    return replace(found, track_id=track_id)


@dataclass(frozen=True)
class StoredView:
    """One stored view of the library's fingerprints: its index, a track's segments
    (`track_segments(track_id)`, None for a track gone from the library) and the tracks
    analysed after the index build (`added`)."""

    index: FingerprintIndex
    track_segments: Callable[[int], Segments | None]
    added: AddedSince = AddedSince.empty()


@dataclass(frozen=True)
class ClipMatcher:
    """The query path over the stored views. `full` holds the tracks' fingerprints;
    `phone`, when given, those of their telephone band (`FingerprintModel.embed_phone_band`),
    searched for a clip that sounds narrow-band (`Policy.phone_search_below_db`: a clip
    through a phone is nearer its track's narrow band) when `full` finds no match or none
    of `Policy.phone_search_below_confidence`. `path_of(track_id)` gives a track's audio
    file and `track_peaks(track_id)` its stored spectral peaks, each None for a track gone
    from the library (or, for the peaks, analysed before they were stored)."""

    model: FingerprintModel
    full: StoredView
    path_of: Callable[[int], Path | None]
    policy: Policy
    phone: StoredView | None = None
    recordings: Recordings = lambda _track_ids: {}
    track_peaks: TrackPeaksOf = lambda _track_id: None

    def decide(self, samples: np.ndarray) -> Decision:
        """The decision on a 16 kHz mono clip: the full band's, unless the clip sounds
        narrow-band, the full band has no match of `Policy.phone_search_below_confidence`
        and the telephone band's best alignment is more confident."""
        mel, spectrum = log_mel(samples), ClipSpectrum(samples)
        segments = self.model.embed(mel, self.model.query_hop_s)
        decision = self._decide(self.full, segments, spectrum)
        if self.phone is None:
            return decision
        full_best = best_confidence(decision, self.policy)
        if decision.matches and full_best >= self.policy.phone_search_below_confidence:
            return decision
        if above_band_db(mel) > self.policy.phone_search_below_db:
            return decision
        phone_segments = self.model.embed_for_phone_view(mel, self.model.query_hop_s, segments)
        narrow = self._decide(self.phone, phone_segments, spectrum)
        return narrow if best_confidence(narrow, self.policy) > full_best else decision

    def _decide(self, view: StoredView, segments: Segments, spectrum: ClipSpectrum) -> Decision:
        policy, hop_s = self.policy, self.model.db_hop_s
        found = view.index.search(segments.vectors, policy.neighbours, policy.probes)
        found = view.added.merge(found, segments.vectors, policy.neighbours)
        found = one_per_recording(found, self.recordings)
        shortlist = candidates(Hits.of(found, segments), hop_s, limit=policy.verified)
        aligned = align(shortlist, segments, view.track_segments, hop_s)
        evidence = check(aligned, spectrum, self.path_of, policy, self.track_peaks)
        return decide(evidence, policy)


@dataclass(frozen=True)
class TrackMatch:
    """A library track found in a clip, where, and how sure."""

    track: Track
    offset_s: float
    """Where the clip starts in the track, seconds."""
    confidence: float
    copies: tuple[str, ...] = ()
    """The paths of the library's other files with the same audio."""

    def as_dict(self) -> dict:
        return {
            **self.track.summary(),
            "offset_s": round(self.offset_s, 2) + 0.0,  # no "-0.0"
            "confidence": round(self.confidence, 4),
            "copies": list(self.copies),
        }


@dataclass(frozen=True)
class IdentifyResult(QueryResult):
    """The answer for one clip: its candidates, most confident first (none: no match)."""

    candidates: tuple[TrackMatch, ...] = ()

    @property
    def match(self) -> TrackMatch | None:
        return self.candidates[0] if self.candidates else None

    def payload(self) -> dict:
        return {
            "match": self.match.as_dict() if self.match else None,
            "candidates": [c.as_dict() for c in self.candidates],
        }


Clip = tuple[str, audio.AudioSource]
"""A clip as the user named it, and where to read it from."""


class Identifier:
    """The catalog's two fingerprint indexes and a model, reused for every clip of a call."""

    def __init__(self, catalog: Catalog, model: FingerprintModel, policy: Policy) -> None:
        self.catalog = catalog
        self.matcher = ClipMatcher(
            model,
            self._view(MODEL, model.version),
            self.path_of,
            policy,
            self._view(PHONE_VIEW, model.phone_version),
            catalog.recordings,
            lambda track_id: catalog.track_peaks(track_id, PEAKS_VERSION),
        )

    def _view(self, name: str, version: str) -> StoredView:
        build = current_build(self.catalog, name, version)
        try:
            index = FingerprintIndex.open(build.path)
        except FileNotFoundError as error:
            message = (
                "the fingerprint index is missing or from an earlier simlib: run `simlib scan`"
            )
            raise SimlibError(message) from error
        return StoredView(
            index,
            lambda track_id: self.catalog.track_segments(track_id, name),
            AddedSince.segments(self.catalog, name, build),
        )

    def path_of(self, track_id: int) -> Path | None:
        """The audio file of a catalogued track (of a copy, if its own is gone), None if
        there is none."""
        copies = self.catalog.recordings([track_id]).get(track_id, (track_id,))
        tracks = self.catalog.tracks(copies)
        paths = [Path(tracks[i].path) for i in copies if i in tracks]
        return next((p for p in paths if p.exists()), paths[0] if paths else None)

    def identify(self, clip: Clip) -> IdentifyResult:
        name, source = clip
        try:
            decision = self.matcher.decide(audio.decode(source))
        except (audio.DecodeError, OSError) as error:
            return IdentifyResult(name, error=audio.reason(error))
        ids = [m.track_id for m in decision.matches]
        copies = self.catalog.recordings(ids)
        tracks = self.catalog.tracks(ids + [i for group in copies.values() for i in group])
        found = tuple(
            TrackMatch(
                tracks[m.track_id],
                m.offset_s,
                m.confidence,
                tuple(
                    tracks[i].path
                    for i in copies.get(m.track_id, ())
                    if i != m.track_id and i in tracks
                ),
            )
            for m in decision.matches
            if m.track_id in tracks
        )
        return IdentifyResult(name, candidates=found)


def identify_clips(
    catalog: Catalog, model: FingerprintModel, policy: Policy, clips: Iterable[Clip]
) -> list[IdentifyResult]:
    """Identify every clip in order; a clip that cannot be read gets its `error`."""
    identifier = Identifier(catalog, model, policy)
    return [identifier.identify(clip) for clip in clips]
