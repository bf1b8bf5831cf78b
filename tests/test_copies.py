"""Copies of one recording (files with the same audio packets) are one recording: identify
gives one candidate naming its copies, as confident as without them, and similar never
lists two copies nor a copy of the query."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from simlib import api, audio


@pytest.fixture(scope="module")
def homes(tmp_path_factory, example_lib) -> dict:
    """The same six tracks scanned twice: alone, and with two copies of each beside them."""
    root = tmp_path_factory.mktemp("copies")
    tracks = sorted(example_lib.glob("*/*/*.*"))[:6]
    alone, copied = root / "alone", root / "copied"
    for index, track in enumerate(tracks):
        for library, copies in ((alone, 1), (copied, 3)):
            for copy in range(copies):
                folder = library / (f"copy{copy}" if copy else "") / f"{index}"
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy2(track, folder / track.name)
    for library in (alone, copied):
        report = api.scan([library], home=root / f"home-{library.name}", workers=1)
        assert report.analysed == 6 and report.files == 6 * (3 if library == copied else 1)
    return {"root": root, "alone": alone, "copied": copied}


def noisy_clip(path: Path, source: Path, snr_db: float = 5.0) -> Path:
    samples = audio.decode(source, 1.0, 4.0)
    noise = np.random.default_rng(0).standard_normal(samples.size).astype(np.float32)
    noise *= np.sqrt(np.mean(samples**2) / 10 ** (snr_db / 10)) / noise.std()
    soundfile.write(path, samples + noise, audio.ANALYSIS_RATE_HZ)
    return path


def track_files(library: Path) -> list[Path]:
    return sorted(p for p in library.glob("[0-9]*/*") if p.is_file())


def test_identify_gives_one_candidate_with_its_copies_as_confident_as_alone(homes, tmp_path):
    root = homes["root"]
    for index, source in enumerate(track_files(homes["alone"])[:3]):
        clip = noisy_clip(tmp_path / f"clip{index}.wav", source)
        [alone] = api.identify([clip], home=root / "home-alone")
        [copied] = api.identify([clip], home=root / "home-copied")
        assert alone.match is not None and copied.match is not None
        assert copied.match.confidence == pytest.approx(alone.match.confidence, abs=0.005)
        relative = source.relative_to(homes["alone"])
        assert {copied.match.track.path, *copied.match.copies} == {
            str(homes["copied"] / folder / relative) for folder in ("", "copy1", "copy2")
        }
        assert len(copied.match.copies) == 2
        hashes = [audio.inspect(c.track.path).content_hash for c in copied.candidates]
        assert len(hashes) == len(set(hashes))


def test_similar_never_lists_two_copies_nor_a_copy_of_the_query(homes):
    copied = homes["copied"]
    query = track_files(copied)[1]
    [result] = api.similar([query], home=homes["root"] / "home-copied", n=5)
    hashes = [audio.inspect(r.track.path).content_hash for r in result.results]
    assert len(hashes) == 5 and len(set(hashes)) == 5
    assert audio.inspect(query).content_hash not in hashes
    [blended] = api.similar(
        track_files(copied)[:2], home=homes["root"] / "home-copied", n=4, blend=True
    )
    hashes = [audio.inspect(r.track.path).content_hash for r in blended.results]
    assert len(set(hashes)) == len(hashes) == 4
