"""Degradations and benchmark conditions on synthetic audio (no corpus needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import music

from simlib.train.augment import (
    CONDITIONS,
    NoiseBank,
    apply_condition,
    change_speed,
    codec_roundtrip,
    degradation_family,
    degrade,
    mix_at_snr,
)

SR = 16_000


@pytest.fixture(scope="module")
def noise() -> NoiseBank:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    speech = [(np.sin(2 * np.pi * f * t) * np.hanning(SR)).astype(np.float32) for f in (150, 220)]
    ambient = [rng.standard_normal(2 * SR).astype(np.float32) * 0.1]
    rir = np.zeros((2, 800), dtype=np.float32)
    rir[:, 0] = 1.0
    rir[:, 1:] = rng.standard_normal((2, 799)) * np.exp(-np.arange(799) / 200) * 0.1
    return NoiseBank(speech=speech, ambient=ambient, rirs=rir)


def test_every_degradation_keeps_audio_finite(noise: NoiseBank) -> None:
    audio = torch.from_numpy(music(1.5))
    for kind, fn in degradation_family(noise).items():
        out = fn(audio, np.random.default_rng(1))
        assert torch.isfinite(out).all(), kind
        if kind != "speed":
            assert out.numel() == audio.numel(), kind


def test_degrade_is_reproducible(noise: NoiseBank) -> None:
    audio = torch.from_numpy(music(1.5))
    family = degradation_family(noise)
    a = degrade(audio, np.random.default_rng(3), family, {"babble": 1.0, "eq": 1.0})
    b = degrade(audio, np.random.default_rng(3), family, ["babble", "eq"])
    assert torch.equal(a, b)
    assert not torch.equal(a, audio)


def test_mix_at_snr_hits_the_target() -> None:
    rng = np.random.default_rng(0)
    signal = torch.from_numpy(music(2.0))
    noise = torch.from_numpy(rng.standard_normal(signal.numel()).astype(np.float32))
    mixed = mix_at_snr(signal, noise, 5.0)
    added = mixed - signal
    snr = 10 * np.log10(float((signal**2).mean()) / float((added**2).mean()))
    assert snr == pytest.approx(5.0, abs=0.01)


def test_change_speed_changes_length() -> None:
    audio = torch.from_numpy(music(1.0))
    assert change_speed(audio, 1.02).numel() == round(SR / 1.02)
    assert change_speed(audio, 0.98).numel() == round(SR / 0.98)


@pytest.mark.parametrize("codec", ["mp3", "aac"])
def test_codec_roundtrip_keeps_length_and_content(codec: str) -> None:
    audio = torch.from_numpy(music(1.0))
    out = codec_roundtrip(audio, codec, 64_000)
    assert out.numel() == audio.numel()
    assert float((out**2).mean()) > 0.3 * float((audio**2).mean())


def test_conditions_are_seeded_and_cut(noise: NoiseBank) -> None:
    audio = music(3.2)
    for name in CONDITIONS:
        a = apply_condition(name, audio, 5, noise, 3.0)
        b = apply_condition(name, audio, 5, noise, 3.0)
        assert a.shape == (3 * SR,) and a.dtype == np.float32, name
        assert np.array_equal(a, b), name
        assert np.isfinite(a).all(), name
