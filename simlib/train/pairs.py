"""Weak similarity labels from tags, and the pairs the similarity model trains on.

Two tracks are similar in proportion to what their tags share (artist, album
artist, album, genres, decade, BPM range, mood). For each tagged reference
track, positives are another crop of the track itself plus tracks drawn from
its most similar ones; negatives are drawn from its least similar ones.
Untagged tracks give no pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from simlib.types import Tags

UNKNOWN_NAMES = frozenset(
    {"", "unknown", "unknown artist", "various artists", "various", "n/a", "none"}
)
"""Tag values that say nothing and never count as shared."""


@dataclass(frozen=True)
class SimilarityWeights:
    """Weight of each shared tag in `tag_similarity`; the defaults are the one place to tune."""

    artist: float = 0.35
    album_artist: float = 0.10
    album: float = 0.35
    genre: float = 0.10
    decade: float = 0.04
    bpm: float = 0.03
    mood: float = 0.03
    bpm_tolerance: float = 0.08
    """Two BPMs match when they differ by at most this fraction (half/double tempo included)."""

    def total(self) -> float:
        return sum(getattr(self, f.name) for f in fields(self) if f.name != "bpm_tolerance")


@dataclass(frozen=True)
class Pair:
    """Reference track index `a`, other track `b` (== a: another crop of a), label and target.

    `similarity` is the tag similarity of a and b in 0..1 (1.0 for a self pair);
    `positive` says which side of the contrastive loss the pair is on.
    """

    a: int
    b: int
    positive: bool
    similarity: float


def normalise_tag(text: str | None) -> str | None:
    """Case/space-folded value, or None for an empty, unknown or punctuation-only ("???") one."""
    value = " ".join((text or "").lower().split())
    return None if value in UNKNOWN_NAMES or not any(c.isalnum() for c in value) else value


def _same(a: str | None, b: str | None) -> float:
    na, nb = normalise_tag(a), normalise_tag(b)
    return 1.0 if na is not None and na == nb else 0.0


def _bpm_match(a: float | None, b: float | None, tolerance: float) -> float:
    if not a or not b:
        return 0.0
    ratio = max(a, b) / min(a, b)
    return 1.0 if any(abs(ratio - k) <= tolerance * k for k in (1.0, 2.0)) else 0.0


def is_tagged(tags: Tags | None) -> bool:
    """True if the tags hold anything `tag_similarity` can compare (a title alone is not)."""
    if tags is None:
        return False
    return bool(
        normalise_tag(tags.artist)
        or normalise_tag(tags.album_artist)
        or normalise_tag(tags.album)
        or any(normalise_tag(g) for g in tags.genre)
        or tags.year
        or tags.bpm
        or normalise_tag(tags.mood)
    )


def tag_similarity(a: Tags, b: Tags, weights: SimilarityWeights | None = None) -> float:
    """Weighted share of tags two tracks have in common, in 0..1 (missing tags share nothing)."""
    w = weights or SimilarityWeights()
    genres_a = {g for g in map(normalise_tag, a.genre) if g}
    genres_b = {g for g in map(normalise_tag, b.genre) if g}
    genre = len(genres_a & genres_b) / len(genres_a | genres_b) if genres_a and genres_b else 0.0
    decade = 1.0 if a.year and b.year and a.year // 10 == b.year // 10 else 0.0
    score = (
        w.artist * _same(a.artist, b.artist)
        + w.album_artist * _same(a.album_artist, b.album_artist)
        + w.album * _same(a.album, b.album)
        + w.genre * genre
        + w.decade * decade
        + w.bpm * _bpm_match(a.bpm, b.bpm, w.bpm_tolerance)
        + w.mood * _same(a.mood, b.mood)
    )
    total = w.total()
    return float(min(1.0, max(0.0, score / total))) if total > 0 else 0.0


def similarity_matrix(
    tags: list[Tags | None], weights: SimilarityWeights | None = None
) -> np.ndarray:
    """(n, n) float32 tag similarities; NaN where either track is untagged, 1 on the diagonal."""
    n = len(tags)
    out = np.full((n, n), np.nan, dtype=np.float32)
    tagged = [i for i, t in enumerate(tags) if is_tagged(t)]
    for x, i in enumerate(tagged):
        out[i, i] = 1.0
        for j in tagged[x + 1 :]:
            out[i, j] = out[j, i] = tag_similarity(tags[i], tags[j], weights)
    return out


def mine_pairs(
    tags: list[Tags | None],
    rng: np.random.Generator,
    weights: SimilarityWeights | None = None,
    n_positive: int = 4,
    n_negative: int = 5,
    pool: int = 10,
    similarity: np.ndarray | None = None,
) -> list[Pair]:
    """Pairs for one pass over the tagged tracks.

    For each tagged reference track: one self pair (another crop of itself),
    `n_positive` positives drawn from its `pool` most similar other tagged
    tracks that share at least something with it (similarity > 0; a track
    alike to nobody gets only its self pair as positive), `n_negative`
    negatives drawn from its `pool` least similar ones (ties broken at random).
    Untagged tracks appear in no pair. `similarity` may pass a precomputed
    `similarity_matrix(tags, weights)`.
    """
    sim = similarity_matrix(tags, weights) if similarity is None else similarity
    tagged = np.array([i for i, t in enumerate(tags) if is_tagged(t)], dtype=np.int64)
    pairs: list[Pair] = []
    for i in tagged:
        pairs.append(Pair(int(i), int(i), True, 1.0))
        others = tagged[tagged != i]
        if others.size == 0:
            continue
        noise = rng.random(others.size) * 1e-6  # random tie-breaking among equal scores
        order = others[np.argsort(-(sim[i, others] + noise), kind="stable")]
        top = order[:pool]
        for pick, positive in ((top[sim[i, top] > 0], True), (order[::-1][:pool], False)):
            count = min(n_positive if positive else n_negative, pick.size)
            for j in rng.choice(pick, size=count, replace=False):
                pairs.append(Pair(int(i), int(j), positive, float(sim[i, j])))
    return pairs
