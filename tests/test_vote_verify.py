"""Voting hits into (track, offset) candidates and verifying them against stored segments."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simlib.identify.policy import Calibration, Policy, decide
from simlib.identify.source_check import Evidence
from simlib.identify.verify import RUNNER_UP_WEIGHT, Alignment, align
from simlib.identify.vote import MIN_SIMILARITY, Hits, candidates
from simlib.types import Segments

HOP_S = 0.5
CALIBRATION = Calibration((10.0, 0.27), (5.0, 0.3, -3.5))
POLICY = Policy(CALIBRATION)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def library(n_tracks: int = 20, seconds: float = 60.0, dim: int = 32) -> list[Segments]:
    """Tracks of independent random unit vectors every HOP_S seconds."""
    rng = np.random.default_rng(0)
    start = np.arange(0.0, seconds, HOP_S, dtype=np.float32)
    return [Segments(start, unit(rng.standard_normal((start.size, dim)))) for _ in range(n_tracks)]


def clip_of(
    track: Segments, offset_s: float, seconds: float, speed: float = 1.0, seed: int = 0
) -> Segments:
    """Segments every 0.2 s of a recording of `track` from `offset_s` played at `speed`:
    the track's vectors interpolated at the segments' times, plus noise."""
    rng = np.random.default_rng(seed)
    start = np.arange(0.0, seconds - 1.0 + 1e-9, 0.2, dtype=np.float32)
    when = offset_s + speed * start
    clean = np.stack([np.interp(when, track.start_s, col) for col in track.vectors.T], axis=1)
    return Segments(start, unit(unit(clean) + 0.08 * rng.standard_normal(clean.shape)))


def search(query: Segments, tracks: list[Segments], k: int = 10) -> Hits:
    """Exact k nearest library segments of every query segment."""
    track_id = np.concatenate([np.full(len(t), i) for i, t in enumerate(tracks)])
    db_s = np.concatenate([t.start_s for t in tracks])
    similarity = query.vectors @ np.concatenate([t.vectors for t in tracks]).T
    best = np.argsort(-similarity, axis=1)[:, :k]
    rows = np.repeat(np.arange(len(query)), k)
    return Hits(query.start_s[rows], track_id[best.ravel()], db_s[best.ravel()],
                similarity[rows, best.ravel()], len(query))  # fmt: skip


def alignments(hits: Hits, query: Segments, track_segments, shortlist: int = POLICY.shortlist):
    """The vote and the verification, as a query runs them."""
    return align(candidates(hits, HOP_S, limit=shortlist), query, track_segments, HOP_S)


def unchecked(found: tuple[Alignment, ...]) -> tuple[Evidence, ...]:
    return tuple(Evidence(a, a.offset_s) for a in found)


def identify(query: Segments, tracks: list[Segments], **policy):
    found = alignments(search(query, tracks), query, tracks.__getitem__)
    return decide(unchecked(found), POLICY.override(**policy)).matches


def test_vote_finds_track_and_offset() -> None:
    tracks = library()
    matches = identify(clip_of(tracks[7], offset_s=12.3, seconds=5.0), tracks)
    assert matches and matches[0].track_id == 7
    assert abs(matches[0].offset_s - 12.3) <= 0.1
    assert 0.5 <= matches[0].confidence <= 1.0
    assert matches[0].votes >= 15


def test_verification_refines_the_voted_offset() -> None:
    """Offsets are voted in 0.5 s bins; verification interpolates between database segments."""
    tracks = library()
    for offset_s in (20.0, 20.15, 20.3, 20.45):
        query = clip_of(tracks[3], offset_s, seconds=5.0)
        [found] = alignments(search(query, tracks), query, tracks.__getitem__)[:1]
        assert found.track_id == 3 and abs(found.offset_s - offset_s) <= 0.06


def test_unrelated_clip_gives_no_match() -> None:
    tracks = library()
    stranger = library(n_tracks=21)[20]  # same generator, a track outside `tracks`
    query = clip_of(stranger, offset_s=10.0, seconds=5.0)
    assert identify(query, tracks) == ()
    best = alignments(search(query, tracks), query, tracks.__getitem__)[0]
    assert CALIBRATION.from_margin(best.margin) < 0.1


def test_empty_hits_and_confidence_range() -> None:
    empty = Hits(np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), 0)
    query = Segments(np.zeros(0, np.float32), np.zeros((0, 32), np.float32))
    assert alignments(empty, query, library().__getitem__) == ()
    assert candidates(empty, HOP_S) == ()
    for margin in (-1.0, 0.0, 0.35, 1.0, 5.0):
        assert 0.0 <= CALIBRATION.from_margin(margin) <= 1.0


def test_margin_discounts_runner_up_and_weak_hits_count_nothing() -> None:
    tracks = library()
    query = clip_of(tracks[5], offset_s=3.0, seconds=5.0)
    hits = search(query, tracks)
    best, second = alignments(hits, query, tracks.__getitem__)[:2]
    assert best.track_id == 5 and best.score > 0.5 > second.score
    assert abs(best.margin - (best.score - RUNNER_UP_WEIGHT * second.score)) < 1e-9
    assert len(candidates(hits, HOP_S)) > POLICY.shortlist
    assert len(alignments(hits, query, tracks.__getitem__)) == POLICY.shortlist
    weak_similarity = np.minimum(hits.similarity, MIN_SIMILARITY)
    weak = Hits(hits.query_s, hits.track_id, hits.db_s, weak_similarity, hits.n_query)
    assert candidates(weak, HOP_S) == ()


def test_threshold_limit_and_tracks_gone_from_the_library() -> None:
    tracks = library()
    query = clip_of(tracks[3], offset_s=10.0, seconds=5.0)
    hits = search(query, tracks)
    assert identify(query, tracks, min_confidence=1.01) == ()
    found = alignments(hits, query, tracks.__getitem__)
    ranked = [
        Alignment(t, 1.0, 0.5, speed, 9, margin=0.4) for t, speed in enumerate((1, 1.1, 1, 1))
    ]
    every = POLICY.override(min_confidence=0.0)
    assert [m.track_id for m in decide(unchecked(ranked), every).matches] == [0, 2, 3]
    top_two = every.override(top=2)
    assert [m.track_id for m in decide(unchecked(ranked), top_two).matches] == [0, 2]
    asked: list[int] = []

    def counted(track_id: int) -> Segments:
        asked.append(track_id)
        return tracks[track_id]

    alignments(hits, query, counted, shortlist=POLICY.override(top=8).verified)  # --top 8
    assert len(set(asked)) == 8 > POLICY.shortlist
    # a track deleted since the index was built has no stored segments: never reported
    gone = alignments(hits, query, lambda t: None if t == 3 else tracks[t])
    assert found[0].track_id == 3 and all(a.track_id != 3 for a in gone)


def test_a_clip_off_its_tracks_speed_is_no_match() -> None:
    """A 9 s clip 2 % fast still matches; 10 % fast (another rendition) does not, though its
    offsets drift too little to leave the voted offset bins."""
    tracks = library()
    slight = clip_of(tracks[7], offset_s=20.0, seconds=9.0, speed=1.02)
    assert [m.track_id for m in identify(slight, tracks)][:1] == [7]
    fast = clip_of(tracks[7], offset_s=20.0, seconds=9.0, speed=1.10)
    best = alignments(search(fast, tracks), fast, tracks.__getitem__)[0]
    assert best.track_id == 7 and CALIBRATION.from_margin(best.margin) > 0.5
    assert abs(best.speed - 1.10) < 0.035 and not best.keeps_time()
    assert all(m.track_id != 7 for m in identify(fast, tracks))


def test_the_other_passes_of_a_loop_are_listed_as_repeats() -> None:
    tracks = library()
    half = len(tracks[4]) // 2  # track 4 plays its first 30 s twice
    vectors = np.concatenate([tracks[4].vectors[:half], tracks[4].vectors[:half]])
    tracks[4] = Segments(tracks[4].start_s, vectors)
    query = clip_of(tracks[4], offset_s=5.0, seconds=5.0)
    best = alignments(search(query, tracks), query, tracks.__getitem__)[0]
    assert best.track_id == 4
    [other] = best.repeats
    assert {round(best.offset_s), round(other)} == {5, 35}
    plain = clip_of(tracks[7], offset_s=5.0, seconds=5.0)
    assert alignments(search(plain, tracks), plain, tracks.__getitem__)[0].repeats == ()


def test_each_stage_returns_new_frozen_values() -> None:
    """hits -> candidates -> alignments -> evidence -> decision: no stage changes its input."""
    tracks = library()
    query = clip_of(tracks[2], offset_s=8.0, seconds=5.0)
    hits = search(query, tracks)
    shortlist = candidates(hits, HOP_S, limit=POLICY.verified)
    before = [dataclasses.astuple(c) for c in shortlist]
    found = align(shortlist, query, tracks.__getitem__, HOP_S)
    decision = decide(unchecked(found), POLICY)
    assert [dataclasses.astuple(c) for c in shortlist] == before
    for value in (shortlist[0], found[0], decision.evidence[0], decision.matches[0], decision):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.offset_s = 0.0  # type: ignore[misc]
