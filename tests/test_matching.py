"""Voting hits into (track, offset) matches."""

from __future__ import annotations

import numpy as np

from simlib.matching import (
    MIN_SIMILARITY,
    RUNNER_UP_WEIGHT,
    Hits,
    candidates,
    confidence,
    fit_speed,
    vote,
)


def hits_for(
    track: int, offset_s: float, n_query: int, seed: int = 0, k: int = 10, speed: float = 1.0
) -> Hits:
    """Each query segment: one aligned hit on `track` (track time = `speed` x clip time +
    `offset_s`), k - 1 random weak hits elsewhere."""
    rng = np.random.default_rng(seed)
    q = np.repeat(np.arange(n_query) * 0.1, k)
    tracks = rng.integers(0, 50, q.size)
    db = rng.uniform(0, 200, q.size)
    sim = rng.uniform(0.0, 0.65, q.size)
    aligned = np.arange(0, q.size, k)
    tracks[aligned] = track
    db[aligned] = np.round((q[aligned] * speed + offset_s) * 2) / 2  # database grid of 0.5 s
    sim[aligned] = rng.uniform(0.7, 0.95, aligned.size)
    return Hits(
        q.astype(np.float32), tracks, db.astype(np.float32), sim.astype(np.float32), n_query
    )


def test_vote_finds_track_and_offset() -> None:
    matches = vote(hits_for(track=77, offset_s=42.3, n_query=41))
    assert matches and matches[0].track_id == 77
    assert abs(matches[0].offset_s - 42.3) < 0.5
    assert 0.5 <= matches[0].confidence <= 1.0
    assert matches[0].votes >= 30


def test_unrelated_hits_give_no_match() -> None:
    rng = np.random.default_rng(1)
    n = 410
    hits = Hits(
        query_s=np.repeat(np.arange(41) * 0.1, 10).astype(np.float32),
        track_id=rng.integers(0, 50, n),
        db_s=rng.uniform(0, 200, n).astype(np.float32),
        similarity=rng.uniform(0.0, 0.6, n).astype(np.float32),
        n_query=41,
    )
    assert vote(hits) == []
    best = candidates(hits)[0]
    assert 0.0 <= confidence(best.margin, (12.0, 0.35)) < 0.5


def test_empty_hits_and_confidence_range() -> None:
    empty = Hits(np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), 0)
    assert vote(empty) == [] and candidates(empty) == []
    for margin in (-1.0, 0.0, 0.35, 1.0, 5.0):
        assert 0.0 <= confidence(margin, (12.0, 0.35)) <= 1.0


def test_margin_discounts_runner_up() -> None:
    """Margin = support - RUNNER_UP_WEIGHT x the runner-up's support; weak hits count 0."""
    one = hits_for(track=5, offset_s=3.0, n_query=21)
    best, second = candidates(one)[:2]
    assert best.track_id == 5 and best.support > 0.5 > second.support
    assert abs(best.margin - (best.support - RUNNER_UP_WEIGHT * second.support)) < 1e-9
    weak = Hits(one.query_s, one.track_id, one.db_s, np.minimum(one.similarity, MIN_SIMILARITY), 21)
    assert candidates(weak) == []


def test_threshold_and_limit() -> None:
    hits = hits_for(track=3, offset_s=10.0, n_query=41)
    assert vote(hits, threshold=1.01) == []
    assert len(vote(hits, threshold=0.0, limit=2)) == 2


def test_a_clip_off_its_tracks_speed_is_no_match() -> None:
    """A 9 s clip 2 % fast still matches; 8 % fast (another rendition) does not, though its
    offsets drift too little to leave the candidate's offset bins."""
    slight = hits_for(track=77, offset_s=42.0, n_query=91, speed=1.02)
    assert [m.track_id for m in vote(slight)][:1] == [77]
    fast = hits_for(track=77, offset_s=42.0, n_query=91, speed=1.08)
    best = candidates(fast)[0]
    assert best.track_id == 77 and confidence(best.margin, (7.42, 0.228)) > 0.5
    assert abs(best.speed - 1.08) < 0.03 and not best.keeps_time()
    assert all(m.track_id != 77 for m in vote(fast))


def test_fit_speed_recovers_a_line_and_needs_three_segments() -> None:
    q = np.repeat(np.arange(10.0), 2)
    idx = np.repeat(np.arange(10), 2)
    db = 1.05 * q + 7.0
    db[1::2] += 30.0  # the weaker hit of each segment is elsewhere and must be ignored
    weight = np.tile([0.4, 0.1], 10)
    speed, se = fit_speed(idx, q, db, weight)
    assert abs(speed - 1.05) < 1e-9 and se < 1e-6
    assert fit_speed(idx[:4], q[:4], db[:4], weight[:4]) == (1.0, float("inf"))
