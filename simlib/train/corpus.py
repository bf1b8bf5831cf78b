"""The training corpus (`corpus/` in the repository builds it from Debian packages): its
tracks, and which of them training may use."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from simlib.audio import AUDIO_EXTENSIONS
from simlib.catalog import read_tags
from simlib.types import Tags

FINGERPRINT_HELD_OUT_PERCENT = 15
SIMILARITY_TRAIN_PERCENT = 70


def manifest_paths(corpus: Path) -> list[str]:
    """The corpus's tracks, relative to `corpus`, in manifest order."""
    with open(corpus / "manifest.csv", newline="") as f:
        return [row["path"] for row in csv.DictReader(f)]


def library_tracks(corpus: Path) -> list[tuple[Path, Tags]]:
    """Every audio file under `corpus`/library with its tags, sorted by path."""
    paths = sorted(
        p for p in (corpus / "library").rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS
    )
    return [(p, read_tags(p)) for p in paths]


def fingerprint_split(corpus: Path) -> tuple[list[Path], list[Path]]:
    """(training, held-out) tracks of the fingerprint model, in manifest order: a track is
    held out when the first 8 bytes of BLAKE2b of its relative path, little-endian, are
    below FINGERPRINT_HELD_OUT_PERCENT modulo 100."""
    rows = manifest_paths(corpus)
    held = [_bucket(p, 64, "little") < FINGERPRINT_HELD_OUT_PERCENT for p in rows]
    return (
        [corpus / p for p, h in zip(rows, held, strict=True) if not h],
        [corpus / p for p, h in zip(rows, held, strict=True) if h],
    )


def similarity_split(relative_path: str) -> str:
    """ "train" or "test" for the similarity model: "train" when BLAKE2b-64 of the relative
    path, big-endian, is below SIMILARITY_TRAIN_PERCENT modulo 100."""
    return "train" if _bucket(relative_path, 8, "big") < SIMILARITY_TRAIN_PERCENT else "test"


def _bucket(relative_path: str, digest_size: int, byteorder: str) -> int:
    digest = hashlib.blake2b(relative_path.encode("utf-8"), digest_size=digest_size).digest()
    return int.from_bytes(digest[:8], byteorder) % 100
