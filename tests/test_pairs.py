"""Weak labels from tags: similarity coefficient and the pair-mining rules."""

from __future__ import annotations

import numpy as np
import pytest

from simlib.train.pairs import (
    SimilarityWeights,
    is_tagged,
    mine_pairs,
    similarity_matrix,
    tag_similarity,
)
from simlib.types import Tags


def _library() -> list[Tags | None]:
    """30 tagged tracks on 6 albums by 3 artists, plus two untagged ones."""
    tags: list[Tags | None] = []
    for album in range(6):
        for _ in range(5):
            tags.append(
                Tags(
                    artist=f"artist {album // 2}",
                    album=f"album {album}",
                    genre=["rock" if album < 3 else "ambient"],
                    year=1990 + 10 * (album % 2),
                )
            )
    return [*tags, None, Tags(title="only a title")]


def test_tag_similarity_bounds_and_symmetry() -> None:
    a = Tags(artist="X", album="A", genre=["rock", "pop"], year=1994, bpm=120, mood="calm")
    assert tag_similarity(a, a) == pytest.approx(1.0 - SimilarityWeights().album_artist)
    b = Tags(artist="x ", album="B", genre=["pop"], year=1999, bpm=60)
    assert 0.0 < tag_similarity(a, b) == tag_similarity(b, a) < 1.0
    assert tag_similarity(a, Tags()) == 0.0
    assert tag_similarity(Tags(artist="Unknown Artist"), Tags(artist="unknown artist")) == 0.0


def test_weights_are_configurable() -> None:
    a, b = Tags(artist="X", album="A"), Tags(artist="X", album="B")
    only_album = SimilarityWeights(
        artist=0, album_artist=0, album=1, genre=0, decade=0, bpm=0, mood=0
    )
    assert tag_similarity(a, b, only_album) == 0.0
    assert tag_similarity(a, b, SimilarityWeights()) > 0.0


def test_bpm_matches_half_and_double_tempo() -> None:
    w = SimilarityWeights(artist=0, album_artist=0, album=0, genre=0, decade=0, bpm=1, mood=0)
    assert tag_similarity(Tags(bpm=120), Tags(bpm=61), w) == 1.0
    assert tag_similarity(Tags(bpm=120), Tags(bpm=90), w) == 0.0


def test_pairs_follow_the_rules() -> None:
    tags = _library()
    sim = similarity_matrix(tags)
    pairs = mine_pairs(tags, np.random.default_rng(0))
    untagged = {30, 31}
    assert not is_tagged(tags[31])
    assert all(p.a not in untagged and p.b not in untagged for p in pairs)
    for ref in range(30):
        mine = [p for p in pairs if p.a == ref]
        others = [j for j in range(30) if j != ref]
        ranked = sorted(others, key=lambda j: -sim[ref, j])
        top_cut, bottom_cut = sim[ref, ranked[9]], sim[ref, ranked[-10]]
        selves = [p for p in mine if p.b == ref]
        positives = [p for p in mine if p.positive and p.b != ref]
        negatives = [p for p in mine if not p.positive]
        assert len(selves) == 1 and selves[0].positive and selves[0].similarity == 1.0
        assert len(positives) == 4 and len({p.b for p in positives}) == 4
        assert len(negatives) == 5 and len({p.b for p in negatives}) == 5
        assert all(sim[ref, p.b] >= top_cut for p in positives)
        assert all(sim[ref, p.b] <= bottom_cut for p in negatives)
        assert all(p.similarity == pytest.approx(sim[ref, p.b]) for p in mine)


def test_track_alike_to_nobody_gets_only_its_self_positive() -> None:
    tags = [*_library(), Tags(artist="loner", album="solo")]
    pairs = [p for p in mine_pairs(tags, np.random.default_rng(0)) if p.a == 32]
    assert [p.b for p in pairs if p.positive] == [32]
    assert sum(not p.positive for p in pairs) == 5


def test_mining_is_deterministic_per_seed() -> None:
    tags = _library()
    first = mine_pairs(tags, np.random.default_rng(3))
    assert first == mine_pairs(tags, np.random.default_rng(3))
    assert first != mine_pairs(tags, np.random.default_rng(4))
