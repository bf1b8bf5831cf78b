"""Tag reading across formats, and the file-name fallback."""

from pathlib import Path

import pytest

from simlib import example_library
from simlib.catalog.tags import from_filename, read_tags
from simlib.types import Tags


@pytest.mark.parametrize("fmt", list(example_library.FORMATS))
def test_tags_of_every_format(example_lib, fmt):
    path = next(example_lib.rglob(f"*.{fmt}"))
    tags = read_tags(path)
    assert tags.artist == path.parent.parent.name
    assert tags.album == path.parent.name
    assert tags.title and tags.title in path.name
    assert tags.genre and all(isinstance(g, str) for g in tags.genre)
    assert 1990 <= tags.year <= 2030
    assert tags.track_number == int(path.name[:2])


def test_multi_valued_genre_bpm_and_mood(library):
    path = next(library.rglob("*.flac"))
    example_library.tag(
        path, {"genre": ["Ambient; Drone", "Electronic"], "bpm": "128", "mood": "calm"}
    )
    tags = read_tags(path)
    assert tags.genre == ("Ambient", "Drone", "Electronic")
    assert tags.bpm == 128.0
    assert tags.mood == "calm"


def test_untagged_file_falls_back_to_its_name(tmp_path):
    path = tmp_path / "07 - Night Drive.wav"
    example_library.encode(
        path, example_library.synthesize(example_library.default_styles()[0], 1, 1.5)
    )
    assert read_tags(path) == Tags(title="Night Drive", track_number=7)


def test_filename_without_number():
    assert from_filename(Path("/x/Just a Song.mp3")) == Tags(title="Just a Song")


def test_garbage_file_gives_fallback_tags(tmp_path):
    path = tmp_path / "12 - Broken.mp3"
    path.write_bytes(b"\x00garbage" * 10)
    assert read_tags(path).title == "Broken"


def test_dict_round_trip():
    tags = Tags(title="A", genre=["x", "y"], year=2001, bpm=90.5)
    assert Tags.from_dict(tags.as_dict()) == tags
