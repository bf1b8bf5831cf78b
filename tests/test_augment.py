"""Degradations and benchmark conditions on synthetic audio (no corpus needed)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import music

from simlib.train.augment import (
    CALIB_DEVICE_CURVES,
    CODEC_ROLES,
    CONDITIONS,
    DEVICE_CURVES,
    ESPEAK_CALIB,
    ESPEAK_TEST,
    RECORDED_ROLES,
    ROOM_IR_ROLES,
    SEEN_CONDITIONS,
    NoiseBank,
    apply_condition,
    change_speed,
    codec_roundtrip,
    degradation_family,
    degrade,
    microphone,
    mix_at_snr,
    recorded_role,
    speaker_role,
    stochastic_rir,
    voice_role,
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
    return NoiseBank(
        speech=speech,
        ambient=ambient,
        rirs=rir,
        speech_source=["pkg:a", "espeak-ng-de"],
        ambient_source=["pkg:b"],
        room_irs=[rir[1]],
        speakers=[rir[0, :64]],
    )


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


@pytest.mark.parametrize("codec, kbps", [("gsm", 0), ("speex", 5.95), ("speex", 11)])
def test_speech_codecs_keep_pitch_and_timing(codec: str, kbps: float) -> None:
    t = np.arange(SR) / SR
    on = np.floor(t / 0.25) % 2 == 0  # a tone gated every 250 ms
    tone = torch.from_numpy((0.3 * np.sin(2 * np.pi * 440 * t) * on).astype(np.float32))
    out = codec_roundtrip(tone, codec, int(kbps * 1000), 8000).numpy()
    assert abs(int(np.argmax(np.abs(np.fft.rfft(out)))) - 440) <= 3  # 1 Hz bins
    power = (out.reshape(-1, SR // 400) ** 2).mean(axis=1)  # 2.5 ms frames
    onset = int(np.argmax(power[200:] > 0.1 * np.median(power[:100]))) + 200
    assert abs(onset - 200) <= 2  # the second burst starts at 0.5 s: the delay is removed


def test_conditions_are_seeded_and_cut(noise: NoiseBank) -> None:
    audio = music(3.2)
    for name in [*CONDITIONS, *SEEN_CONDITIONS]:
        a, sources = apply_condition(name, audio, 5, noise, 3.0)
        b, again = apply_condition(name, audio, 5, noise, 3.0)
        assert sources == again and all(":" in word for word in sources.split()), name
        assert a.shape == (3 * SR,) and a.dtype == np.float32, name
        assert np.array_equal(a, b), name
        assert np.isfinite(a).all(), name


def test_roles_keep_sources_apart() -> None:
    assert voice_role("espeak-ng-en-us") == voice_role("espeak-ng-de+f4") == "train"
    assert voice_role("espeak-ng-en-gb") == voice_role("espeak-ng-en-gb-scotland+m3") == "calib"
    assert voice_role("espeak-ng-en-029+f2") == voice_role("espeak-ng-el") == "test"
    assert voice_role("flite-slt") == voice_role("festival-kal_diphone") == "test"
    assert not ESPEAK_CALIB & ESPEAK_TEST
    assert recorded_role("hedgewars-data") == recorded_role("klettres-data") == "train"
    assert recorded_role("asterisk-core-sounds-ru-wav") == "test"
    assert {"calib", "test"} <= set(RECORDED_ROLES.values()) <= {"calib", "test"}
    assert {"calib", "test"} <= set(ROOM_IR_ROLES.values())
    assert speaker_role("rakarrack", "rakarrack__1") == "test"
    guitarix = {speaker_role("guitarix-common", f"cab{i}") for i in range(40)}
    assert guitarix == {"train", "calib"}
    codecs = {role: {c[0] for c in entries} for role, entries in CODEC_ROLES.items()}
    assert not codecs["train"] & codecs["test"] and not codecs["calib"] & codecs["test"]
    assert not codecs["train"] & codecs["calib"]


def test_a_bank_loads_only_its_roles_material(tmp_path) -> None:
    noise = tmp_path / "noise"
    rows = ["path,kind,source_package,seconds"]
    for package in ("hedgewars-data", "asterisk-prompt-es-co", "asterisk-core-sounds-ru-wav"):
        path = noise / "speech" / f"{package}__a.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, music(1.0), SR)
        rows.append(f"noise/speech/{path.name},speech,{package},1.0")
    (noise / "manifest.csv").write_text("\n".join(rows) + "\n")
    for voice in ("espeak-ng-de", "espeak-ng-cs", "flite-slt"):
        (noise / "synth" / voice).mkdir(parents=True)
        sf.write(noise / "synth" / voice / "000.wav", music(1.0), SR)
    own = tmp_path / "own" / "speech"
    own.mkdir(parents=True)
    sf.write(own / "mine.wav", music(1.0), SR)
    rirs = np.eye(1, 100, dtype=np.float32)
    sources = {}
    for role in ("train", "calib", "test"):
        bank = NoiseBank.load([noise, tmp_path / "own"], role, rirs=rirs)
        sources[role] = set(bank.speech_source)
    assert sources == {
        "train": {"pkg:hedgewars-data", "espeak-ng-de", ""},
        "calib": {"pkg:asterisk-prompt-es-co", "espeak-ng-cs"},
        "test": {"pkg:asterisk-core-sounds-ru-wav", "flite-slt"},
    }


@pytest.mark.parametrize("role", ["train", "calib", "test"])
def test_every_role_codec_keeps_length(role: str) -> None:
    audio = torch.from_numpy(music(1.0))
    for codec, rate_hz, kbps in CODEC_ROLES[role]:
        out = codec_roundtrip(audio, codec, int(max(kbps) * 1000), rate_hz)
        assert out.numel() == audio.numel() and torch.isfinite(out).all(), codec


def test_stochastic_rir_follows_distance() -> None:
    near = stochastic_rir(np.random.default_rng(0), 0.6, 0.5, 100.0)
    far = stochastic_rir(np.random.default_rng(0), 0.6, 4.0, 100.0)
    assert near[0] ** 2 > 0.5 > far[0] ** 2  # direct-to-reverberant ratio falls with distance
    assert np.sum(near**2) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("role", ["calib", "test"])
def test_phone_microphones_are_their_roles_own_and_cut_the_top(role: str) -> None:
    assert not set(CALIB_DEVICE_CURVES) & set(DEVICE_CURVES)
    curves = CALIB_DEVICE_CURVES if role == "calib" else DEVICE_CURVES
    t = np.arange(SR) / SR
    rng = np.random.default_rng(0)
    for _ in range(6):
        tones = [
            torch.from_numpy(np.sin(2 * np.pi * f * t).astype(np.float32)) for f in (1000, 7000)
        ]
        state = rng.bit_generator.state
        mid, name = microphone(tones[0], rng, role)
        rng.bit_generator.state = state  # the same microphone for both tones
        top, same = microphone(tones[1], rng, role)
        assert name == same and name in curves
        assert mid.numel() == SR and torch.isfinite(mid).all()
        assert float(top[SR // 4 :].pow(2).mean()) < 0.01 * float(mid[SR // 4 :].pow(2).mean())
