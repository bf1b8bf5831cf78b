"""Generate a small tagged example library of synthetic music.

Each album has its own sound (timbre, tempo, scale, register, percussion), each
track its own melody, so both identification and similar-track search have
something real to find. Files are encoded with PyAV in every common container
and tagged with mutagen. Used by the README's first command and by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import mutagen
import numpy as np
from mutagen import id3

RATE_HZ = 44_100

# Container -> (FFmpeg encoder, sample format, sample rate, extra codec options).
FORMATS: dict[str, tuple[str, str, int, dict]] = {
    "mp3": ("libmp3lame", "fltp", RATE_HZ, {}),
    "flac": ("flac", "s16", RATE_HZ, {}),
    "m4a": ("aac", "fltp", RATE_HZ, {}),
    "ogg": ("vorbis", "fltp", RATE_HZ, {"strict": "experimental"}),
    "opus": ("libopus", "flt", 48_000, {}),
    "wav": ("pcm_s16le", "s16", RATE_HZ, {}),
    "aiff": ("pcm_s16be", "s16", RATE_HZ, {}),
    "wma": ("wmav2", "fltp", RATE_HZ, {}),
}
SCALES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "pentatonic": [0, 2, 4, 7, 9],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
}


@dataclass(frozen=True)
class AlbumStyle:
    """What makes an album sound like itself."""

    artist: str
    album: str
    genre: list[str]
    year: int
    bpm: float
    root_midi: int
    scale: str
    harmonics: tuple[float, ...]
    attack_s: float
    decay_s: float
    percussion: float
    """Level of a noise-burst beat, 0 = none."""


def default_styles() -> list[AlbumStyle]:
    """Six artists with two albums each; albums of one artist share most traits."""
    rng = np.random.default_rng(7)
    artists = [
        ("The Sine Waves", ["Ambient"], "pentatonic", 48),
        ("Square Deal", ["Chiptune", "Electronic"], "minor", 60),
        ("Bright Brass", ["Orchestral"], "major", 55),
        ("Noise Floor", ["Rock"], "dorian", 43),
        ("Pluck & Bow", ["Folk", "Acoustic"], "major", 62),
        ("Low Drone", ["Ambient", "Drone"], "minor", 36),
    ]
    styles = []
    for index, (artist, genre, scale, root) in enumerate(artists):
        base = rng.random(8) ** (1 + index % 3)
        for album_no in range(2):
            harmonics = tuple(float(h) for h in np.clip(base + 0.15 * rng.standard_normal(8), 0, 1))
            styles.append(
                AlbumStyle(
                    artist=artist,
                    album=f"{artist.split()[-1]} Vol. {album_no + 1}",
                    genre=genre,
                    year=1990 + 5 * index + album_no,
                    bpm=float(70 + 20 * index + 8 * album_no),
                    root_midi=root + 5 * album_no,
                    scale=scale,
                    harmonics=harmonics,
                    attack_s=0.005 + 0.08 * (index % 3),
                    decay_s=0.15 + 0.25 * ((index + album_no) % 3),
                    percussion=0.3 * (index % 2),
                )
            )
    return styles


def synthesize(style: AlbumStyle, seed: int, seconds: float, rate_hz: int = RATE_HZ) -> np.ndarray:
    """A mono float32 track in `style`, melody drawn from `seed`, peak about 0.5."""
    rng = np.random.default_rng(seed)
    beat_s = 60.0 / style.bpm
    n = int(seconds * rate_hz)
    out = np.zeros(n, dtype=np.float64)
    steps = SCALES[style.scale]
    t_s = 0.0
    while t_s < seconds:
        length_s = beat_s * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        degree = int(rng.integers(0, len(steps) * 2))
        midi = style.root_midi + 12 * (degree // len(steps)) + steps[degree % len(steps)]
        freq_hz = 440.0 * 2 ** ((midi - 69) / 12)
        start = int(t_s * rate_hz)
        count = min(int(length_s * rate_hz), n - start)
        t = np.arange(count) / rate_hz
        note = sum(
            amp * np.sin(2 * np.pi * freq_hz * (k + 1) * t + rng.random() * 6.28)
            for k, amp in enumerate(style.harmonics)
            if freq_hz * (k + 1) < rate_hz / 2
        )
        envelope = np.minimum(1.0, t / style.attack_s) * np.exp(-t / style.decay_s)
        out[start : start + count] += note * envelope
        t_s += length_s
    if style.percussion:
        burst = int(0.05 * rate_hz)
        hit = rng.standard_normal(burst) * np.exp(-np.arange(burst) / (0.01 * rate_hz))
        for beat in np.arange(0, seconds, beat_s):
            start = int(beat * rate_hz)
            count = min(burst, n - start)
            out[start : start + count] += style.percussion * hit[:count] * 3
    out /= max(1e-9, float(np.max(np.abs(out))))
    return (0.5 * out).astype(np.float32)


def encode(path: Path, samples: np.ndarray, rate_hz: int = RATE_HZ) -> None:
    """Write mono float32 `samples` as a stereo file whose container is `path`'s ending."""
    codec, sample_format, out_rate, options = FORMATS[path.suffix.lstrip(".").lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=out_rate, layout="stereo", options=options)
        stream.time_base = Fraction(1, out_rate)
        if codec in {"libmp3lame", "aac", "vorbis", "wmav2", "libopus"}:
            stream.bit_rate = 128_000
        frame = av.AudioFrame.from_ndarray(
            np.stack([samples, samples]).astype(np.float32), format="fltp", layout="stereo"
        )
        frame.sample_rate = rate_hz
        frame.pts = 0
        resampler = av.AudioResampler(
            format=sample_format,
            layout="stereo",
            rate=out_rate,
            frame_size=stream.codec_context.frame_size or 1024,
        )
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))


ID3_FRAMES = {
    "title": id3.TIT2,
    "artist": id3.TPE1,
    "albumartist": id3.TPE2,
    "album": id3.TALB,
    "genre": id3.TCON,
    "date": id3.TDRC,
    "tracknumber": id3.TRCK,
    "bpm": id3.TBPM,
    "mood": id3.TMOO,
}
"""mutagen's 'easy' keys as ID3 frames, for WAV and AIFF, which have no easy interface."""


def tag(path: Path, fields: dict[str, str | list[str]]) -> None:
    """Write tags given by mutagen 'easy' keys (title, artist, genre, date, ...)."""
    handle = mutagen.File(path, easy=True)
    if handle is None:
        raise ValueError(f"mutagen cannot tag {path}")
    if handle.tags is None:
        handle.add_tags()
    for key, value in fields.items():
        if isinstance(handle.tags, id3.ID3):
            texts = value if isinstance(value, list) else [value]
            handle.tags.add(ID3_FRAMES[key](encoding=3, text=texts))
        else:
            handle[key] = value
    handle.save()


def make_library(
    out: Path,
    tracks_per_album: int = 3,
    seconds: float = 12.0,
    formats: tuple[str, ...] = ("mp3", "flac", "m4a", "ogg", "opus"),
    styles: list[AlbumStyle] | None = None,
) -> list[Path]:
    """Write `Artist/Album/NN - Title.ext` files under `out`; return their paths."""
    paths = []
    for album_no, style in enumerate(styles or default_styles()):
        for track_no in range(1, tracks_per_album + 1):
            seed = 1000 * album_no + track_no
            ext = formats[(album_no + track_no) % len(formats)]
            title = f"Song {album_no + 1}-{track_no}"
            path = out / style.artist / style.album / f"{track_no:02d} - {title}.{ext}"
            encode(path, synthesize(style, seed, seconds))
            tag(
                path,
                {
                    "title": title,
                    "artist": style.artist,
                    "album": style.album,
                    "genre": style.genre,
                    "date": str(style.year),
                    "tracknumber": str(track_no),
                },
            )
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """`python -m simlib.example_library [FOLDER]`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m simlib.example_library",
        description="Write a small tagged library of synthetic music (12 albums by 6 "
        "artists, every common container) to try simlib on.",
    )
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=Path("examples/library"),
        help="where to write it (default: examples/library)",
    )
    parser.add_argument("--tracks-per-album", type=int, default=3, metavar="N", help="default: 3")
    parser.add_argument(
        "--seconds", type=float, default=12.0, metavar="S", help="track length (default: 12)"
    )
    args = parser.parse_args(argv)
    if args.tracks_per_album < 1 or args.seconds < 1:
        parser.error("--tracks-per-album and --seconds must be at least 1")
    written = make_library(args.folder, args.tracks_per_album, args.seconds)
    print(f"wrote {len(written)} tracks under {args.folder}")


if __name__ == "__main__":
    main()
