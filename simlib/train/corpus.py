"""The training corpus (`corpus/` in the repository builds it from Debian packages), and the
one rule that splits it into train / val / test packages for every model.

A user's library holds albums and artists the models never heard, so held-out tracks
share no album and no artist with anything a model trained on or was selected on.
Packages are linked when they share a normalised artist or album tag, or a game (the
package name before its first "-": the MIDI and Ogg packages of one game hold the same
tunes); linked packages form one group, and a group lands wholly on one side. Groups are
taken in the order of a hash of their package names; each goes to TEST if it still fits
under TEST_SHARE of the dev tracks, else to VAL if it fits under VAL_SHARE, else to TRAIN.
VAL selects checkpoints and fits calibrations; TEST is for benchmarks only.

Extra corpora (more packages, MIDI renders) only ever add training material: an extra
package linked to a TEST or VAL package is left out altogether.

    python -m simlib.train.corpus --corpus ~/simlib-corpus [--extra ~/simlib-corpus-extra]

prints the split and checks that no test or val album or artist is seen on another side.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from simlib.catalog import read_tags
from simlib.train.pairs import normalise_tag

RESERVED_PACKAGES = frozenset(
    {
        "wesnoth-1.16-music",
        "ufoai-music",
        "nexuiz-music",
        "singularity-music",
        "colobot-common-sounds",
        "blobwars-data",
        "warzone2100-music",
        "fretsonfire-songs-muldjord",
        "fretsonfire-songs-sectoid",
        "freedoom",
    }
)
"""Kept for an independent evaluation: never read for anything."""

RENDERS = "midi-renders"
"""An extra corpus's folder of MIDI renders (its own manifest), read with the corpus."""
TEST_SHARE = 0.35
VAL_SHARE = 0.15
SIDES = ("train", "val", "test")


@dataclass(frozen=True)
class CorpusTrack:
    """One track of a corpus manifest, with the labels its file's tags give."""

    path: Path
    package: str
    artist: str | None
    album: str | None
    extra: bool
    """From an extra corpus (training material only)."""
    seconds: float = 0.0
    """Duration, as the manifest gives it."""


def read_manifest(corpus: Path, extra: bool = False, tags: bool = True) -> list[CorpusTrack]:
    """The tracks of `corpus`/manifest.csv (reserved packages refused); labels from file tags."""
    with open(corpus / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        package = row.get("source_package") or row.get("package") or ""
        if package in RESERVED_PACKAGES:
            raise ValueError(f"reserved package {package} in {corpus}")
        path = corpus / row["path"]
        if not path.exists():  # MIDI renders' paths start at the folder above theirs
            path = corpus.parent / row["path"]
        if not path.exists():
            continue
        if tags:
            t = read_tags(path)
            artist, album = normalise_tag(t.artist), normalise_tag(t.album)
        else:
            artist, album = normalise_tag(row.get("artist")), normalise_tag(row.get("album"))
        seconds = float(row.get("seconds") or 0.0)
        out.append(CorpusTrack(path, package, artist, album, extra, seconds))
    return sorted(out, key=lambda t: str(t.path))


def _links(tracks: Iterable[CorpusTrack]) -> dict[str, set[str]]:
    """Package -> the keys it is linked by (artist, album, game)."""
    keys: dict[str, set[str]] = defaultdict(set)
    for t in tracks:
        keys[t.package].add("game:" + t.package.split("-")[0])
        if t.artist:
            keys[t.package].add("artist:" + t.artist)
        if t.album:
            keys[t.package].add("album:" + t.album)
    return keys


def package_groups(tracks: Iterable[CorpusTrack]) -> list[frozenset[str]]:
    """Packages joined (transitively) by a shared artist, album or game."""
    keys = _links(tracks)
    parent = {p: p for p in keys}

    def root(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    owner: dict[str, str] = {}
    for package in sorted(keys):
        for key in sorted(keys[package]):
            if key in owner:
                parent[root(package)] = root(owner[key])
            else:
                owner[key] = package
    groups: dict[str, set[str]] = defaultdict(set)
    for p in keys:
        groups[root(p)].add(p)
    return [frozenset(g) for g in groups.values()]


def _group_order(group: frozenset[str]) -> bytes:
    return hashlib.blake2b("\n".join(sorted(group)).encode(), digest_size=8).digest()


def package_split(dev: list[CorpusTrack], extra: list[CorpusTrack] | None = None) -> dict[str, str]:
    """Package -> "train", "val" or "test" (dev packages), "train" or "excluded" (extra ones).

    Deterministic: the dev split depends on the dev corpus alone.
    """
    sizes = Counter(t.package for t in dev)
    side: dict[str, str] = {}
    filled = {"test": 0, "val": 0}
    goals = {"test": TEST_SHARE * len(dev), "val": VAL_SHARE * len(dev)}
    for group in sorted(package_groups(dev), key=_group_order):
        size = sum(sizes[p] for p in group)
        target = next((s for s in ("test", "val") if filled[s] + size <= goals[s]), "train")
        if target != "train":
            filled[target] += size
        side.update(dict.fromkeys(group, target))
    held_keys = set().union(*(keys for p, keys in _links(dev).items() if side[p] != "train"), set())
    for package, keys in _links(extra or []).items():
        if package in side:
            continue
        side[package] = "excluded" if keys & held_keys else "train"
    return side


def split_tracks(
    dev: list[CorpusTrack], extra: list[CorpusTrack] | None = None
) -> dict[str, list[CorpusTrack]]:
    """Tracks per side ("train" includes usable extra tracks; excluded ones are dropped)."""
    side = package_split(dev, extra)
    out: dict[str, list[CorpusTrack]] = {s: [] for s in SIDES}
    for t in [*dev, *(extra or [])]:
        if side[t.package] in out:
            out[side[t.package]].append(t)
    return out


def leaks(split: dict[str, list[CorpusTrack]]) -> list[str]:
    """Artists and albums of TEST (or VAL) tracks that also appear on another side."""
    found = []
    for held in ("test", "val"):
        for kind in ("artist", "album"):
            mine = {getattr(t, kind) for t in split[held]} - {None}
            for other in SIDES:
                if other == held:
                    continue
                shared = mine & {getattr(t, kind) for t in split[other]}
                found += [f"{held} {kind} {v!r} also in {other}" for v in sorted(shared)]
    return found


def describe(split: dict[str, list[CorpusTrack]]) -> str:
    """One line per side: tracks, packages, albums, artists (dev / extra tracks)."""
    lines = []
    for s in SIDES:
        tracks = split[s]
        packages = sorted({t.package for t in tracks})
        lines.append(
            f"{s:5} {len(tracks):4} tracks ({sum(not t.extra for t in tracks)} dev,"
            f" {sum(t.extra for t in tracks)} extra), {len(packages)} packages,"
            f" {len({t.album for t in tracks} - {None})} albums,"
            f" {len({t.artist for t in tracks} - {None})} artists: {' '.join(packages)}"
        )
    return "\n".join(lines)


def load_split(corpus: Path, extras: Iterable[Path] = ()) -> dict[str, list[CorpusTrack]]:
    """Read the dev corpus and any extra corpora that have a manifest, and split them."""
    dev = read_manifest(corpus.expanduser())
    extra: list[CorpusTrack] = []
    for folder in extras:
        folder = folder.expanduser()
        for part in (folder, folder / RENDERS):
            if (part / "manifest.csv").exists():
                extra += read_manifest(part, extra=True)
    return split_tracks(dev, extra)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/simlib-corpus"))
    parser.add_argument("--extra", type=Path, nargs="*", default=[])
    args = parser.parse_args(argv)
    split = load_split(args.corpus, args.extra)
    print(describe(split))
    problems = leaks(split)
    print("\n".join(problems) if problems else "no test/val artist or album outside its side")


if __name__ == "__main__":
    main()
