"""Checking an alignment against the track's own audio file: spectral-peak coincidence,
and the pass of looping music whose spectrogram correlates best."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simlib import audio, example_library
from simlib.identify.peaks import FRAME_RATE_HZ, Peaks, track_peaks
from simlib.identify.policy import SOURCE_Z_CAP, Calibration, Policy
from simlib.identify.source_check import (
    PAD_S,
    TRACK_RATE_HZ,
    ClipSpectrum,
    TrackAudio,
    check,
    coincidence_z,
    contrast_z,
    decoded_peaks,
    likeliest_passes,
    pass_correlation,
    pass_pad_s,
    source_z,
    track_excerpt,
)
from simlib.identify.verify import Alignment
from simlib.train.augment import change_speed

CALIBRATION = Calibration((10.0, 0.27), (5.0, 0.6, -3.5))


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


def z_at(clip: ClipSpectrum, path: Path, offset_s: float) -> float | None:
    """The clip's source z against `path` at `offset_s`, None for an unreadable file."""
    track = track_excerpt(path, offset_s, clip.seconds)
    return None if track is None else source_z(clip, decoded_peaks(track))


def test_the_source_at_the_alignment_stands_out(album) -> None:
    source, others = album
    clip = ClipSpectrum(noisy(audio.decode(source, 2.0, 4.0), snr_db=5))
    right = z_at(clip, source, 2.0)
    assert right is not None and right > 6
    wrong = [z_at(clip, other, 2.0) for other in others]  # albums share tempo, sound
    assert max(wrong) < right and np.median(wrong) < 3
    silence = ClipSpectrum(np.zeros(16000, np.float32))
    assert coincidence_z(silence.peaks, ClipSpectrum(audio.decode(source, 0, 2.5)).peaks) == 0.0


def test_the_contrast_under_the_tracks_peaks_peaks_at_the_alignment() -> None:
    """`contrast_z` reads the clip where the track has peaks: the clip's own strongest
    cells, laid out as a track excerpt at the alignment, stand out there and nowhere else;
    played 2 % fast they still do, and with no track peaks there is nothing to read."""
    rng = np.random.default_rng(0)
    bins, frames, lead = 60, 250, round(PAD_S * FRAME_RATE_HZ)
    contrast = rng.standard_normal((bins, frames)).astype(np.float32)
    b, f = np.unravel_index(np.argsort(contrast, axis=None)[-300:], contrast.shape)
    shape = (bins, frames + 2 * lead)
    assert contrast_z(contrast, Peaks(b, f + lead, shape)) > 6
    far = round(0.5 * FRAME_RATE_HZ)  # more than NEAR_S away, within PAD_S
    assert contrast_z(contrast, Peaks(b, f + lead + far, shape)) < 2
    centre = (frames - 1) / 2
    fast = np.round(centre + 1.02 * (f - centre)).astype(int) + lead
    assert contrast_z(contrast, Peaks(np.round(b * 1.02).astype(int), fast, shape)) > 6
    none = np.zeros(0, int)
    assert contrast_z(contrast, Peaks(none, none, shape)) == 0.0


def test_an_alignment_at_the_track_start_is_padded(album) -> None:
    """Track time before 0 s is silence, not an error."""
    source, _ = album
    clip = ClipSpectrum(audio.decode(source, 0.0, 3.0))
    assert z_at(clip, source, 0.0) > 6


def test_an_unreadable_source_gives_none(album, tmp_path) -> None:
    clip = ClipSpectrum(audio.decode(album[0], 1.0, 3.0))
    (tmp_path / "notes.mp3").write_text("not audio")
    assert z_at(clip, tmp_path / "gone.flac", 1.0) is None
    assert z_at(clip, tmp_path / "notes.mp3", 1.0) is None


def test_only_likely_doubtful_alignments_with_files_are_checked(album) -> None:
    source, _ = album
    clip = ClipSpectrum(audio.decode(source, 2.0, 4.0))
    found = [
        Alignment(0, 2.0, 0.6, 1.0, 20, margin=0.4),  # checked
        Alignment(1, 2.0, 0.6, 1.0, 20, margin=0.4),  # no file
        Alignment(2, 2.0, 0.1, 1.0, 3, margin=-0.2),  # below the floor
        Alignment(3, 2.0, 0.9, 1.0, 20, margin=0.6),  # trusted: no check can change it
        Alignment(4, 2.0, 0.9, 1.0, 20, margin=0.6, repeats=(5.0,)),  # checked: which pass?
        Alignment(5, 2.0, 0.6, 1.0, 20, margin=0.4),  # past the limit
    ]
    policy = Policy(CALIBRATION, top=2)
    evidence = check(tuple(found), clip, lambda t: None if t == 1 else source, policy)
    assert [e.alignment for e in evidence] == found
    assert [e.source_z is not None for e in evidence] == [True, False, False, False, True, False]
    assert evidence[0].source_z > 6 and evidence[4].offset_s == 2.0


@pytest.fixture(scope="module")
def loop_track(tmp_path_factory) -> Path:
    """A track that plays 6 s of music twice, a quiet second voice joining the second time
    (under 5 dB noise the source z of the two passes is within 3 of each other)."""
    styles = example_library.default_styles()
    first = example_library.synthesize(styles[0], seed=1, seconds=6.0)
    second = first + 0.15 * example_library.synthesize(styles[1], seed=2, seconds=6.0)
    path = tmp_path_factory.mktemp("loop") / "loop.flac"
    example_library.encode(path, np.concatenate([first, second]))
    return path


@pytest.mark.parametrize("pass_s", [1.0, 7.0])
def test_an_alignment_moves_to_the_pass_that_correlates_best(loop_track, pass_s) -> None:
    """Either pass fits the clip's peaks; the spectrogram tells them apart, also at 5 dB
    SNR and 2 % fast."""
    clip = audio.decode(loop_track, pass_s, 4.0)
    for heard in (clip, noisy(clip, snr_db=5), change_speed(torch.from_numpy(clip), 1.02).numpy()):
        other_pass = 8.0 - pass_s
        aligned = Alignment(0, other_pass, 0.6, 1.0, 20, margin=0.5, repeats=(pass_s,))
        spectrum = ClipSpectrum(heard)
        [evidence] = check((aligned,), spectrum, lambda _: loop_track, Policy(CALIBRATION, top=1))
        assert evidence.offset_s == pass_s and evidence.source_z > 6
        assert aligned.offset_s == other_pass  # the alignment itself is left as it was


def test_pass_correlation_peaks_at_the_alignment(loop_track) -> None:
    clip = ClipSpectrum(audio.decode(loop_track, 7.0, 4.0))

    def at(offset_s: float) -> float:
        return pass_correlation(clip, track_excerpt(loop_track, offset_s, clip.seconds))

    right = at(7.0)
    assert right > 0.9
    assert at(1.0) < right - 0.05
    assert at(3.0) < 0.5  # 2 s off


@pytest.mark.parametrize("clip_s", [3.0, 5.0, 10.0])
def test_a_pass_needs_no_more_audio_than_its_trimmed_excerpt(loop_track, clip_s) -> None:
    """The trimmed excerpt (`pass_pad_s`) holds every lag and speed the correlation
    compares: cut from the full excerpt, it gives the same correlation, also for a clip
    that fits best near the farthest lag and speed (0.18 s early, 2 % slow)."""
    heard = audio.decode(loop_track, 1.0 - 0.18, clip_s)
    slow = change_speed(torch.from_numpy(heard), 0.98).numpy()[: heard.size]
    clip = ClipSpectrum(slow)
    full = track_excerpt(loop_track, 1.0, clip.seconds)
    pad_s = pass_pad_s(clip.seconds)
    # whole frames cut, so that the trimmed excerpt's frames are the full one's
    frames_cut = round(PAD_S * FRAME_RATE_HZ) - round(pad_s * FRAME_RATE_HZ)
    cut = frames_cut * round(TRACK_RATE_HZ / FRAME_RATE_HZ)
    assert frames_cut > 0
    trimmed = pass_correlation(clip, full[cut : full.size - cut], pad_s)
    assert trimmed == pytest.approx(pass_correlation(clip, full), abs=1e-6)


@pytest.fixture(scope="module")
def blips_track(tmp_path_factory) -> Path:
    """12 s of 30 ms square-wave notes of random pitch, one every 125 ms: the same rhythm
    everywhere, other notes."""
    rng = np.random.default_rng(0)
    rate = example_library.RATE_HZ
    t = np.arange(int(0.03 * rate)) / rate
    samples = np.zeros(12 * rate, np.float32)
    for k in range(96):
        pitch_hz = 220 * 2 ** (rng.integers(0, 24) / 12)
        start = int(k * 0.125 * rate)
        samples[start : start + t.size] += 0.3 * np.sign(np.sin(2 * np.pi * pitch_hz * t))
    path = tmp_path_factory.mktemp("blips") / "blips.flac"
    example_library.encode(path, samples)
    return path


def test_pass_correlation_hears_the_notes_not_only_the_rhythm(blips_track) -> None:
    """Where the same rhythm plays other notes the correlation is far lower (with 64 ms
    windows it was 0.92 there against 0.97 at the clip's own place)."""
    clip = ClipSpectrum(audio.decode(blips_track, 3.0, 4.0))

    def at(offset_s: float) -> float:
        return pass_correlation(clip, track_excerpt(blips_track, offset_s, clip.seconds))

    right = at(3.0)
    assert right > 0.85
    assert max(at(1.0), at(3.5), at(6.0)) < right - 0.25


def test_the_passes_decoded_are_those_the_stored_peaks_agree_with(blips_track) -> None:
    """Of four candidate passes (the same rhythm, other notes but at 3 s), the stored
    peaks rank the clip's own place first, also at 5 dB SNR; decoding that one alone, the
    check lands there."""
    stored = track_peaks(audio.decode(blips_track))
    track = TrackAudio(None, stored)
    offsets = (1.0, 3.5, 6.0, 3.0)
    clip = audio.decode(blips_track, 3.0, 4.0)
    for heard in (clip, noisy(clip, snr_db=5)):
        spectrum = ClipSpectrum(heard)
        assert likeliest_passes(offsets, track, spectrum, 2)[0] == 3.0
        aligned = Alignment(0, 1.0, 0.6, 1.0, 20, margin=0.5, repeats=offsets[1:])
        policy = Policy(CALIBRATION, top=1, passes_decoded=1)
        [evidence] = check((aligned,), spectrum, lambda _: blips_track, policy, lambda _: stored)
        assert evidence.offset_s == 3.0
    assert sorted(likeliest_passes(offsets, track, spectrum, 9)) == sorted(offsets)


def test_confidence_uses_the_check_where_there_is_one() -> None:
    margin_only = CALIBRATION.confidence(0.3, None)
    assert margin_only == CALIBRATION.from_margin(0.3)
    assert CALIBRATION.confidence(0.3, 20.0) > max(margin_only, 0.9)
    assert CALIBRATION.confidence(0.3, 1.0) < min(margin_only, 0.2)


def test_source_z_counts_up_to_its_cap() -> None:
    below = CALIBRATION.confidence(0.1, SOURCE_Z_CAP - 2.0)
    at_cap = CALIBRATION.confidence(0.1, SOURCE_Z_CAP)
    assert below < at_cap == CALIBRATION.confidence(0.1, 10 * SOURCE_Z_CAP)
