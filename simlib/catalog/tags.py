"""Read descriptive tags with mutagen into one format-independent `Tags` record.

ID3 (MP3, AIFF, WAV), MP4 atoms (M4A), Vorbis comments (FLAC, Ogg, Opus) and
ASF attributes (WMA) are mapped onto the same fields. A file without a title
gets one from its name ("03 - Song.mp3" -> track 3, "Song").
"""

from __future__ import annotations

import re
from pathlib import Path

import mutagen

from simlib.types import Tags

GENRE_SEPARATORS = re.compile(r"\s*[;|\x00]\s*")
NUMBERED_NAME = re.compile(r"^\s*(\d{1,3})\s*(?:[-._)]\s*|\s+)(.+)$")


# Canonical field -> lower-cased keys as mutagen names them in each format.
_KEYS: dict[str, tuple[str, ...]] = {
    "title": ("tit2", "\xa9nam", "title"),
    "artist": ("tpe1", "\xa9art", "artist", "author"),
    "album_artist": (
        "tpe2",
        "aart",
        "albumartist",
        "album artist",
        "album_artist",
        "wm/albumartist",
    ),
    "album": ("talb", "\xa9alb", "album", "wm/albumtitle"),
    "genre": ("tcon", "\xa9gen", "genre", "wm/genre"),
    "year": ("tdrc", "tyer", "\xa9day", "date", "year", "wm/year"),
    "track_number": ("trck", "trkn", "tracknumber", "wm/tracknumber"),
    "bpm": ("tbpm", "tmpo", "bpm", "wm/beatsperminute"),
    "mood": ("tmoo", "txxx:mood", "----:com.apple.itunes:mood", "mood", "wm/mood"),
    "comment": ("comm", "\xa9cmt", "comment", "description"),
}


def _texts(value: object) -> list[str]:
    """Flatten a mutagen tag value of any format into a list of strings."""
    if hasattr(value, "genres"):  # ID3 TCON resolves numeric genres such as "(17)"
        return [str(v) for v in value.genres]
    if hasattr(value, "text"):  # other ID3 frames
        return [str(v) for v in value.text]
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, tuple):  # MP4 trkn/disk: (number, total)
            out.append(str(item[0]))
        elif isinstance(item, bytes):
            out.append(item.decode("utf-8", "replace"))
        else:
            out.append(str(getattr(item, "value", item)))
    return out


def _flatten(tags: object) -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    for key, value in tags.items():
        name = key.lower()
        if name.startswith("comm:"):
            name = "comm"
        texts = [t.strip() for t in _texts(value) if str(t).strip()]
        if texts:
            flat.setdefault(name, []).extend(texts)
    return flat


def _first_int(text: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", text or "")
    return int(match.group(1)) if match else None


def _first_float(text: str | None) -> float | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return value if value > 0 else None


def from_filename(path: Path) -> Tags:
    """Guess title and track number from a file name."""
    stem = path.stem
    match = NUMBERED_NAME.match(stem)
    if match:
        return Tags(title=match.group(2).strip(), track_number=int(match.group(1)))
    return Tags(title=stem.strip() or path.name)


def read_tags(path: Path) -> Tags:
    """Tags of `path`; unreadable or missing tags fall back to the file name."""
    fallback = from_filename(path)
    try:
        handle = mutagen.File(path)
    except Exception:  # mutagen raises many types on damaged headers; tags are optional
        handle = None
    if handle is None or handle.tags is None:
        return fallback
    flat = _flatten(handle.tags)

    def first(name: str) -> str | None:
        for key in _KEYS[name]:
            if flat.get(key):
                return flat[key][0]
        return None

    genres: list[str] = []
    for key in _KEYS["genre"]:
        for text in flat.get(key, []):
            genres.extend(g for g in GENRE_SEPARATORS.split(text) if g)
    return Tags(
        title=first("title") or fallback.title,
        artist=first("artist"),
        album_artist=first("album_artist"),
        album=first("album"),
        genre=tuple(dict.fromkeys(genres)),
        year=_first_int(first("year")),
        track_number=_first_int(first("track_number")) or fallback.track_number,
        bpm=_first_float(first("bpm")),
        mood=first("mood"),
        comment=first("comment"),
    )
