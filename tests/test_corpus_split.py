"""The package split: linked packages stay together, held-out labels never leak."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from simlib.train.corpus import (
    CorpusTrack,
    leaks,
    package_groups,
    package_split,
    read_manifest,
    split_tracks,
)


def _tracks(package: str, n: int, artist: str | None, album: str | None) -> list[CorpusTrack]:
    return [
        CorpusTrack(Path(f"{package}/{k}.ogg"), package, artist, album, False) for k in range(n)
    ]


def _corpus() -> list[CorpusTrack]:
    tracks = []
    for k in range(12):
        tracks += _tracks(f"game{k}-data", 10, f"composer {k}", f"album {k}")
    tracks += _tracks("game0-music", 5, "someone else", "other")  # same game as game0-data
    tracks += _tracks("game5-extra", 5, "composer 3", "x")  # shares an artist with game3
    return tracks


def test_linked_packages_form_one_group() -> None:
    groups = {frozenset(g) for g in package_groups(_corpus())}
    assert frozenset({"game0-data", "game0-music"}) in groups
    assert frozenset({"game3-data", "game5-extra", "game5-data"}) in groups


def test_split_is_deterministic_clean_and_sized() -> None:
    dev = _corpus()
    side = package_split(dev)
    assert side == package_split(list(reversed(dev)))
    split = split_tracks(dev)
    assert leaks(split) == []
    for held, share in (("test", 0.35), ("val", 0.15)):
        assert 0 < len(split[held]) <= share * len(dev)
    assert side["game0-data"] == side["game0-music"]


def test_extra_packages_linked_to_held_out_ones_are_dropped() -> None:
    dev = _corpus()
    side = package_split(dev)
    held = next(p for p, s in side.items() if s == "test")
    artist = next(t.artist for t in dev if t.package == held)
    extra = [
        CorpusTrack(Path("e/1.ogg"), "more-music", artist, "new album", True),
        CorpusTrack(Path("e/2.ogg"), "fresh-music", "nobody", "fresh", True),
    ]
    with_extra = package_split(dev, extra)
    assert with_extra["more-music"] == "excluded"
    assert with_extra["fresh-music"] == "train"
    assert {p: s for p, s in with_extra.items() if p in side} == side
    assert leaks(split_tracks(dev, extra)) == []


def test_reserved_packages_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.ogg").write_bytes(b"")
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "source_package", "artist", "album"])
        writer.writeheader()
        writer.writerow({"path": "a.ogg", "source_package": "freedoom", "artist": "", "album": ""})
    with pytest.raises(ValueError, match="reserved"):
        read_manifest(tmp_path, tags=False)
