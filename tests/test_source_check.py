"""Checking an alignment against the track's own audio file (spectral-peak coincidence)."""

from __future__ import annotations

import numpy as np
import pytest

from simlib import audio
from simlib.matching import Alignment, Calibration
from simlib.source_check import check_sources, clip_peaks, coincidence_z, source_z

CALIBRATION = Calibration((10.0, 0.27), (5.0, 0.3, -3.5))


def noisy(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(samples.size).astype(np.float32)
    noise *= np.sqrt(np.mean(samples**2) / 10 ** (snr_db / 10)) / noise.std()
    return samples + noise


@pytest.fixture(scope="module")
def album(example_lib):
    """A track of the example library and all the others."""
    files = sorted(p for p in example_lib.rglob("*.*") if p.is_file())
    source = sorted(example_lib.rglob("*.flac"))[0]
    return source, [p for p in files if p != source]


def test_the_source_at_the_alignment_stands_out(album) -> None:
    source, others = album
    clip = clip_peaks(noisy(audio.decode(source, 2.0, 4.0), snr_db=5))
    right = source_z(clip, 4.0, source, 2.0)
    assert right is not None and right > 6
    wrong = [source_z(clip, 4.0, other, 2.0) for other in others]  # albums share tempo, sound
    assert max(wrong) < right and np.median(wrong) < 3
    silence = clip_peaks(np.zeros(16000, np.float32))
    assert coincidence_z(silence, clip_peaks(audio.decode(source, 0, 2.5))) == 0.0


def test_an_alignment_at_the_track_start_is_padded(album) -> None:
    """Track time before 0 s is silence, not an error."""
    source, _ = album
    clip = clip_peaks(audio.decode(source, 0.0, 3.0))
    assert source_z(clip, 3.0, source, 0.0) > 6


def test_an_unreadable_source_gives_none(album, tmp_path) -> None:
    clip = clip_peaks(audio.decode(album[0], 1.0, 3.0))
    (tmp_path / "notes.mp3").write_text("not audio")
    assert source_z(clip, 3.0, tmp_path / "gone.flac", 1.0) is None
    assert source_z(clip, 3.0, tmp_path / "notes.mp3", 1.0) is None


def test_only_likely_alignments_with_files_are_checked(album) -> None:
    source, _ = album
    clip = audio.decode(source, 2.0, 4.0)
    found = [
        Alignment(0, 2.0, 0.6, 1.0, 20, margin=0.5),  # checked
        Alignment(1, 2.0, 0.6, 1.0, 20, margin=0.5),  # no file
        Alignment(2, 2.0, 0.1, 1.0, 3, margin=-0.2),  # below the floor
        Alignment(3, 2.0, 0.6, 1.0, 20, margin=0.5),  # checked
        Alignment(4, 2.0, 0.6, 1.0, 20, margin=0.5),  # past the limit
    ]
    check_sources(found, clip, lambda t: None if t == 1 else source, CALIBRATION, limit=2)
    assert [a.source_z is not None for a in found] == [True, False, False, True, False]
    assert found[0].source_z > 6


def test_an_alignment_moves_to_the_repeat_its_source_confirms(album) -> None:
    source, _ = album
    clip = audio.decode(source, 2.0, 4.0)
    wrong_pass = Alignment(0, 3.5, 0.6, 1.0, 20, margin=0.5, repeats=[2.0])
    check_sources([wrong_pass], clip, lambda _: source, CALIBRATION, limit=1)
    assert wrong_pass.offset_s == 2.0 and wrong_pass.source_z > 6


def test_confidence_uses_the_check_where_there_is_one() -> None:
    aligned = Alignment(0, 1.0, 0.5, 1.0, 9, margin=0.3)
    margin_only = CALIBRATION.confidence(aligned)
    assert margin_only == CALIBRATION.from_margin(0.3)
    aligned.source_z = 20.0
    assert CALIBRATION.confidence(aligned) > max(margin_only, 0.9)
    aligned.source_z = 1.0
    assert CALIBRATION.confidence(aligned) < min(margin_only, 0.2)
