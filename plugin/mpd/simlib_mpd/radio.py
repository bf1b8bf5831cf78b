"""The radio rules: which of simlib's ranked candidates to queue next. Pure, no I/O.

A `Radio` remembers what played this session (a window of `history` songs)
and what the listener skipped. Given the songs in the queue from the current
one on and candidates ranked by similarity, it picks, one slot at a time, the
best-ranked candidate that

- is not in the history window, not already queued, and was not skipped;
- has another artist than the song just before it (unless same artist is allowed);

where the nearest neighbours of a song skipped within the history window come
after all other candidates: a skip says "not this kind of song now".

Songs are identified by their library path (an absolute file path), or by
the MPD URI for songs outside the music directory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

SKIP_MIN_REMAINING_S = 5.0
SKIP_MIN_REMAINING_FRACTION = 0.2
"""A song left with more than max(5 s, 20 % of its duration) still to play was skipped."""
SKIP_NEIGHBOURS = 3
"""How many of a skipped song's nearest tracks are demoted."""


@dataclass(frozen=True)
class Song:
    """A song in the queue or the history: its library path and artist tag."""

    path: str
    artist: str | None = None


@dataclass(frozen=True)
class Played:
    """A song that stopped being current, whether the listener skipped it, and if so the
    paths of its nearest tracks."""

    song: Song
    skipped: bool
    neighbours: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Candidate:
    """A similar track simlib proposes, with the MPD URI to queue it by."""

    path: str
    uri: str
    artist: str | None
    score: float


@dataclass(frozen=True)
class Pick:
    """A candidate chosen for the queue, with its rank among the candidates (1 = best)."""

    candidate: Candidate
    rank: int


@dataclass
class Selection:
    """The picks in queue order, and the candidates passed over with the reason."""

    picks: list[Pick] = field(default_factory=list)
    passed: dict[str, str] = field(default_factory=dict)
    """Candidate path -> why it was not queued."""


def same_artist(a: str | None, b: str | None) -> bool:
    """Equal artist tags, ignoring case and surrounding spaces; a missing tag matches nothing."""
    return bool(a and b and a.strip().casefold() == b.strip().casefold())


def was_skipped(played_s: float, duration_s: float | None) -> bool:
    """True if a song stopped being current well before its end (see the constants above).

    `played_s`: seconds of it heard; `duration_s`: its length (None or 0: unknown, never skipped).
    """
    if not duration_s:
        return False
    remaining_s = duration_s - played_s
    return remaining_s > max(SKIP_MIN_REMAINING_S, SKIP_MIN_REMAINING_FRACTION * duration_s)


class Radio:
    """The session's memory (played and skipped songs) and the rules applied to it.

    `history`: how many recently played songs may not be queued again (>= 0);
    `blend`: how many recent songs seed the recommendations (>= 1, the current one first);
    `allow_same_artist`: allow two songs of one artist back to back.
    """

    def __init__(self, history: int, blend: int = 1, allow_same_artist: bool = False) -> None:
        if history < 0 or blend < 1:
            raise ValueError("history must be >= 0 and blend >= 1")
        self.blend = blend
        self.allow_same_artist = allow_same_artist
        self.history: deque[Played] = deque(maxlen=history)
        self.skipped: set[str] = set()

    def played(self, song: Song, skipped: bool = False, neighbours: Iterable[str] = ()) -> None:
        """Record a song that stopped being current; skipped songs are never queued again and
        their `neighbours` (paths) are demoted while they are in the history window."""
        self.history.append(
            Played(song, skipped, frozenset(neighbours) if skipped else frozenset())
        )
        if skipped:
            self.skipped.add(song.path)

    @property
    def demoted(self) -> set[str]:
        """Paths queued only when no other candidate fits: neighbours of recent skips."""
        return set().union(*(played.neighbours for played in self.history))

    def seeds(self, current: Song, usable: Callable[[str], bool]) -> list[str]:
        """Paths to seed recommendations with: the current song, then the songs played (not
        skipped) most recently, up to `blend` songs; songs for which `usable(path)` is false are
        left out (so the current song may be missing from the seeds)."""
        recent = [played.song for played in reversed(self.history) if not played.skipped]
        seeds: list[str] = []
        for song in [current, *recent]:
            if len(seeds) == self.blend:
                break
            if song.path not in seeds and usable(song.path):
                seeds.append(song.path)
        return seeds

    def reason_to_pass(self, candidate: Candidate, queued: set[str], before: Song) -> str | None:
        """Why `candidate` may not follow `before` in the queue, or None if it may."""
        if candidate.path in self.skipped:
            return "skipped earlier"
        if candidate.path in queued:
            return "already in the queue"
        if any(played.song.path == candidate.path for played in self.history):
            return f"played within the last {self.history.maxlen} songs"
        if not self.allow_same_artist and same_artist(candidate.artist, before.artist):
            return f"same artist as the song before ({before.artist})"
        return None

    def choose(
        self, queue: Sequence[Song], candidates: Sequence[Candidate], count: int
    ) -> Selection:
        """Up to `count` candidates to append to `queue` (the current song, then the upcoming ones;
        not empty), in order; `candidates` are ranked best first, demoted ones are tried last."""
        selection = Selection()
        queued = {song.path for song in queue}
        before = queue[-1]
        demoted = self.demoted
        remaining = sorted(enumerate(candidates, 1), key=lambda item: item[1].path in demoted)
        while remaining and len(selection.picks) < count:
            for position, (rank, candidate) in enumerate(remaining):
                reason = self.reason_to_pass(candidate, queued, before)
                if reason is None:
                    del remaining[position]
                    selection.picks.append(Pick(candidate, rank))
                    selection.passed.pop(candidate.path, None)
                    queued.add(candidate.path)
                    before = Song(candidate.path, candidate.artist)
                    break
                selection.passed[candidate.path] = reason
            else:
                break
        return selection
