"""Log-mel features: shape, timing, and streaming equal to one-shot."""

import numpy as np
import pytest

from simlib import audio
from simlib.audio import ANALYSIS_RATE_HZ, features


def test_frame_rate_and_shape():
    samples = np.zeros(3 * ANALYSIS_RATE_HZ, dtype=np.float32)
    mel = features.log_mel(samples)
    assert mel.shape == (3 * features.FRAME_RATE_HZ + 1, features.N_MELS)
    assert np.isfinite(mel).all()
    assert mel.max() <= np.log(features.LOG_FLOOR) + 1e-4  # silence sits at the floor


def test_streaming_equals_whole_signal():
    rng = np.random.default_rng(0)
    samples = rng.standard_normal(5 * ANALYSIS_RATE_HZ).astype(np.float32) * 0.1
    cuts = [0, 777, 16000, 16001, 50000, samples.size]
    blocks = [samples[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    np.testing.assert_allclose(
        features.log_mel_stream(blocks), features.log_mel(samples), atol=1e-4
    )


def test_tone_lands_in_the_right_band_at_the_right_time():
    t = np.arange(2 * ANALYSIS_RATE_HZ) / ANALYSIS_RATE_HZ
    tone = np.where(t >= 1.0, 0.5 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
    mel = features.log_mel(tone)
    assert mel[:95].max() < mel[105:].max() - 5
    loudest_band = int(mel[150].argmax())
    assert 20 < loudest_band < 45  # 1 kHz is in the lower-middle of 30..8000 Hz on the mel scale


def test_empty_input():
    assert features.log_mel(np.zeros(0, dtype=np.float32)).shape == (0, features.N_MELS)


def test_equal_to_torchaudio_on_real_decoded_audio(example_lib):
    """The models were trained on torchaudio's MelSpectrogram: the numpy front end matches it
    within 1e-3 in natural-log units on real decoded audio (and 1e-2 at the silence floor)."""
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=ANALYSIS_RATE_HZ,
        n_fft=features.N_FFT,
        hop_length=features.HOP,
        f_min=features.F_MIN_HZ,
        f_max=features.F_MAX_HZ,
        n_mels=features.N_MELS,
        center=False,
        power=2.0,
    )
    for path in sorted(p for p in example_lib.rglob("*.*") if p.is_file())[::6]:
        samples = audio.decode(path)
        expected = torch.log(reference(torch.from_numpy(samples)) + features.LOG_FLOOR).T.numpy()
        actual = features.log_mel_frames(samples)
        assert actual.shape == expected.shape
        loud = expected > np.log(features.LOG_FLOOR) + 1
        assert np.abs(actual - expected)[loud].max() < 1e-3, path.name
        assert np.abs(actual - expected).max() < 1e-2, path.name


def test_a_batch_of_short_signals_equals_each_alone() -> None:
    """Short signals are transformed a few rows at a time (the trainer's crops; 4,096 at once
    took about 10 GB): each row's frames are the same as on its own."""
    crops = np.random.default_rng(0).normal(0, 0.1, (7, 99 * features.HOP + features.N_FFT))
    batch = features.log_mel_frames(crops)
    assert batch.shape == (7, 100, features.N_MELS)
    for i, crop in enumerate(crops):
        assert np.array_equal(batch[i], features.log_mel_frames(crop)), i


def test_the_phone_band_keeps_speech_frequencies_and_attenuates_the_rest():
    t = np.arange(ANALYSIS_RATE_HZ) / ANALYSIS_RATE_HZ
    loss = {}
    for hz in (100, 1000, 3000, 6000, 7500):
        mel = features.log_mel((0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32))
        band = int(mel[50].argmax())
        loss[hz] = float(mel[50, band] - features.phone_band(mel)[50, band])
    assert loss[1000] < 0.01 and loss[3000] < 0.1  # inside: kept
    assert loss[100] > 5 and loss[7500] > loss[6000] > 5  # outside: weaker, and more so further out


def test_narrow_band_audio_has_little_power_above_4_khz():
    noise = np.random.default_rng(0).standard_normal(3 * ANALYSIS_RATE_HZ)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(noise.size, 1 / ANALYSIS_RATE_HZ) > 3400] = 0
    narrow = np.fft.irfft(spectrum, noise.size)
    assert features.above_band_db(features.log_mel(noise.astype(np.float32))) > 0  # wider bands
    assert features.above_band_db(features.log_mel(narrow.astype(np.float32))) < -40
