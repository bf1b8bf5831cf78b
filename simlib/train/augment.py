"""Degradations that turn clean music into what a phone hears, for training and benchmarks.

Every source of degradation has one role: "train" (the fingerprint trains on it), "calib"
(checkpoint selection and confidence calibration) or "test" (the benchmark), and no source
has two. A `NoiseBank` is loaded for one role, and every degradation built on it draws only
that role's material (the model card and docs/benchmarks.md carry the table):

- talkers: recordings by package (RECORDED_ROLES), synthetic voices by engine and language
  (`voice_role`): flite and festival test, espeak-ng by ESPEAK_CALIB / ESPEAK_TEST;
- noise recordings by package (RECORDED_ROLES); generators NOISE_GENERATORS: train
  coloured noise, calib traffic, test room tone (ventilation, mains hum, clatter);
- rooms: simulated (`room_impulse_responses`: train pyroomacoustics shoebox seed 0, calib
  shoebox seed 2 with the microphone >= 1.5 m, test `stochastic_rir`, a model of its own)
  and impulse responses shipped by Debian packages (ROOM_IR_ROLES);
- loudspeakers: cabinet impulse responses by package (`speaker_role`);
- microphones: train random peaking EQ and biquad bands, calib CALIB_DEVICE_CURVES (FIR)
  and Chebyshev bands with a tilt, test DEVICE_CURVES (FIR) and an elliptic 300-3400 Hz
  band;
- codecs: CODEC_ROLES.

Every degradation is a function `(audio, rng) -> audio` on a mono float32 torch tensor at
ANALYSIS_RATE_HZ; `degradation_family(bank)` is the registry of the bank's role.
CONDITIONS are the benchmark's seeded query conditions, applied on a bank of one role.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np
import scipy.fft
import torch
import torchaudio.functional as taf
from scipy import signal as sps

from simlib.audio import ANALYSIS_RATE_HZ, DecodeError, decode
from simlib.files import replace_atomically
from simlib.train import speech_codecs

DEFAULT_NOISE_DIR = Path("~/simlib-corpus/noise").expanduser()
SYNTH_SPEECH_DIR = Path("~/.cache/simlib/synth-speech").expanduser()
"""Where `python -m simlib.train.synth_speech` writes its voices by default."""
RIR_CACHE = Path("~/.cache/simlib/rirs-v1.npy").expanduser()
SR = ANALYSIS_RATE_HZ
SOUND_SPEED_M_S = 343.0
MAX_SPEECH_S_PER_SOURCE = 1200.0
"""Speech kept per talker source (package or voice): a few large packages would otherwise
fill the memory and the babble."""

Role = Literal["train", "calib", "test"]
ROLES: tuple[Role, ...] = ("train", "calib", "test")
Degradation = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]

RECORDED_ROLES: dict[str, Role] = {
    "asterisk-prompt-it-menardi-wav": "calib",
    "asterisk-prompt-es-co": "calib",
    "btanks-data": "calib",
    "searchandrescue-data": "calib",
    "bzflag-data": "calib",
    "asterisk-core-sounds-ru-wav": "test",
    "asterisk-prompt-fr-armelle": "test",
    "fillets-ng-data-nl": "test",
    "trigger-rally-data": "test",
    "flightgear-data-base": "test",
    "flare-game": "test",
    "minetest-data": "test",
}
"""Packages of recorded speech and noise that calibrate or test; every other package's
recordings train (the development corpus's hedgewars-data and klettres-data among them)."""
ESPEAK_CALIB = frozenset({"en-gb", "en-gb-scotland", "cs", "ro", "hu", "bg", "uk"})
ESPEAK_TEST = frozenset({"ca", "af", "el", "da", "vi", "en-029", "sw", "ta", "eu", "nb"})
"""espeak-ng languages (the voice name before any "+variant") that calibrate or test; the
other languages train."""
TEST_ENGINES = frozenset({"flite", "festival"})
"""Synthesisers whose every voice only tests (festival's kal and slt are flite's speakers)."""
ROOM_IR_ROLES: dict[str, Role] = {
    "rakarrack__4-NoiseVault_ORTFCenter25ft": "calib",
    "rakarrack__5-LARGE_WOOD_ROOM": "test",
    "rakarrack__7-guitarambience": "test",
    "rakarrack__8-studioa": "test",
}
"""Room impulse responses (noise/ir/room-*) that calibrate or test, by file stem: the test
ones are the rooms with RT60 0.5-0.75 s; the long halls train."""
CALIB_SPEAKER_EVERY = 4
"""One guitarix cabinet in this many (by a hash of its name) calibrates; rakarrack's test."""


def voice_role(folder: str) -> Role:
    """Role of a synthetic voice, by its folder name "<engine>-<voice>" (`synth_speech`)."""
    engine = next((e for e in ("espeak-ng", *sorted(TEST_ENGINES)) if folder.startswith(e)), "")
    if engine != "espeak-ng":
        return "test" if engine else "train"
    language = folder[len("espeak-ng-") :].split("+")[0]
    return "calib" if language in ESPEAK_CALIB else "test" if language in ESPEAK_TEST else "train"


def recorded_role(package: str) -> Role:
    """Role of a recorded clip (speech or noise), by its package."""
    return RECORDED_ROLES.get(package, "train")


def speaker_role(package: str, stem: str) -> Role:
    """Role of a loudspeaker cabinet's impulse response."""
    if package == "rakarrack":
        return "test"
    bucket = int.from_bytes(hashlib.blake2b(stem.encode(), digest_size=8).digest(), "little")
    return "calib" if bucket % CALIB_SPEAKER_EVERY == 0 else "train"


def _rms(audio: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean(audio.double() ** 2)))


def mix_at_snr(audio: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Add `noise` (same length) scaled so that signal RMS / noise RMS is `snr_db` dB."""
    signal_rms, noise_rms = _rms(audio), _rms(noise)
    if noise_rms < 1e-9:
        return audio
    scale = max(signal_rms, 1e-4) / noise_rms * 10 ** (-snr_db / 20)
    return audio + noise * scale


def change_speed(audio: torch.Tensor, factor: float) -> torch.Tensor:
    """Play `factor` times faster (pitch follows, like a tape): length becomes n / factor."""
    n_out = max(1, int(round(audio.numel() / factor)))
    pos = torch.arange(n_out, dtype=torch.float64) * factor
    lo = pos.floor().long().clamp(max=audio.numel() - 1)
    hi = (lo + 1).clamp(max=audio.numel() - 1)
    frac = (pos - lo.double()).float()
    return audio[lo] * (1 - frac) + audio[hi] * frac


CODECS: dict[str, tuple[str, str, str]] = {
    "mp3": ("libmp3lame", "mp3", "fltp"),
    "aac": ("aac", "adts", "fltp"),
    "g726": ("g726", "wav", "s16"),
    "mulaw": ("pcm_mulaw", "wav", "s16"),
    "nellymoser": ("nellymoser", "flv", "flt"),
    "mp2": ("mp2", "mp2", "s16"),
    "wmav2": ("wmav2", "asf", "fltp"),
    "g722": ("g722", "wav", "s16"),
    "opus": ("libopus", "ogg", "flt"),
    "amrnb": ("libopencore_amrnb", "amr", "s16"),
    "ra144": ("ra_144", "rm", "s16"),
    "g723": ("g723_1", "wav", "s16"),
}
"""Short name -> (PyAV encoder, container, sample format)."""

CODEC_ROLES: dict[Role, list[tuple[str, int, tuple[float, ...]]]] = {
    "train": [
        ("mp3", 16000, (24, 32, 48, 64, 96, 128)),
        ("aac", 16000, (24, 32, 48, 64, 96)),
        ("mp3", 8000, (8, 16, 24, 32)),
        ("aac", 8000, (12, 16, 24)),
        ("g726", 8000, (16, 24, 32, 40)),
        ("mulaw", 8000, (0,)),
        ("nellymoser", 8000, (0,)),
        ("gsm", 8000, (0,)),
        ("speex", 8000, (5.95, 8, 11)),
    ],
    "calib": [
        ("mp2", 16000, (32, 48, 64)),
        ("wmav2", 16000, (24, 32, 48)),
        ("g722", 16000, (64,)),
        ("ra144", 8000, (0,)),
        ("g723", 8000, (6.3,)),
    ],
    "test": [
        ("amrnb", 8000, (4.75, 5.9, 7.95, 12.2)),
        ("opus", 8000, (8, 12, 16)),
        ("opus", 16000, (12, 16, 24)),
    ],
}
"""(codec, sample rate, kbit/s choices; 0 = the codec's only rate) per role."""


SPEECH_CODECS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "gsm": lambda samples, _kbps: speech_codecs.gsm_roundtrip(samples),
    "speex": speech_codecs.speex_roundtrip,
}
"""Short name -> round trip of 8 kHz int16 samples at kbit/s: the phone networks' codecs
PyAV cannot encode (`simlib.train.speech_codecs`)."""


def codec_roundtrip(
    audio: torch.Tensor, codec: str, bitrate_bps: int, rate_hz: int = SR
) -> torch.Tensor:
    """Resample to `rate_hz`, encode with `codec` (a CODECS or SPEECH_CODECS name) at
    `bitrate_bps` (0: the codec's own) in memory, decode back to SR; same length as
    `audio`."""
    x = audio.detach().cpu().float()
    if rate_hz != SR:
        x = taf.resample(x, SR, rate_hz)
    if codec in SPEECH_CODECS:
        coded = SPEECH_CODECS[codec](_pcm16(x.numpy()), bitrate_bps / 1000)
        coded = torch.from_numpy(coded / PCM16_FULL_SCALE)
        decoded = taf.resample(coded.float(), rate_hz, SR).numpy()
    else:
        decoded = _pyav_roundtrip(x.numpy().astype(np.float32), codec, bitrate_bps, rate_hz)
    n = audio.numel()
    result = np.zeros(n, dtype=np.float32)
    result[: min(n, decoded.size)] = decoded[:n]
    return torch.from_numpy(result)


PCM16_FULL_SCALE = 32767
"""16-bit PCM's largest sample: float audio in [-1, 1] scaled to it."""


def _pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (clipped) as 16-bit PCM."""
    return (np.clip(samples, -1, 1) * PCM16_FULL_SCALE).astype(np.int16)


def _pyav_roundtrip(samples: np.ndarray, codec: str, bitrate_bps: int, rate_hz: int) -> np.ndarray:
    """`samples` at `rate_hz` through a CODECS encoder and back, decoded at SR."""
    encoder, fmt, sample_format = CODECS[codec]
    if sample_format == "s16":
        samples = _pcm16(samples)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=rate_hz)
        if bitrate_bps:
            stream.bit_rate = int(bitrate_bps)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format=sample_format, layout="mono")
        frame.sample_rate = rate_hz
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    decoded = decode(buf)
    priming = 1024 * SR // rate_hz
    if codec == "aac" and decoded.size >= samples.size * SR // rate_hz + priming:
        decoded = decoded[priming:]  # AAC encoder priming samples
    return decoded


def random_codec(audio: torch.Tensor, rng: np.random.Generator, role: Role) -> torch.Tensor:
    """A codec of `role` at one of its rates and bitrates."""
    codec, rate_hz, kbps = CODEC_ROLES[role][int(rng.integers(len(CODEC_ROLES[role])))]
    return codec_roundtrip(audio, codec, int(float(rng.choice(kbps)) * 1000), rate_hz)


def coloured_noise(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise with a random spectral slope between brown (-2) and white (0)."""
    slope = rng.uniform(-2.0, 0.0)
    size = scipy.fft.next_fast_len(n, real=True)
    spectrum = scipy.fft.rfft(rng.standard_normal(size))
    freqs = np.maximum(np.fft.rfftfreq(size, 1 / SR), 20.0)
    noise = scipy.fft.irfft(spectrum * freqs ** (slope / 2), size)[:n]
    return torch.from_numpy((noise / (np.std(noise) + 1e-12)).astype(np.float32))


def traffic_noise(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Low-passed noise whose level swells and fades over seconds (passing cars)."""
    noise = sps.sosfilt(sps.butter(2, rng.uniform(300, 1500), fs=SR, output="sos"),
                        rng.standard_normal(n))  # fmt: skip
    t = np.arange(n) / SR
    swell = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3))
    out = noise * swell + 0.05 * rng.standard_normal(n)
    return torch.from_numpy((out / (np.std(out) + 1e-12)).astype(np.float32))


def room_tone(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Ventilation (resonant filtered pink noise), mains hum and sparse clatter (decaying
    resonant clicks of cutlery and keys)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    b, a = sps.iirpeak(rng.uniform(100, 800), rng.uniform(1, 4), fs=SR)
    air = sps.lfilter(b, a, pink) + 0.3 * pink
    air /= np.std(air) + 1e-12
    t = np.arange(n) / SR
    mains = rng.choice([50.0, 60.0])
    hum = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) / k for k in (1, 2, 3))
    clatter = np.zeros(n)
    for at in rng.uniform(0, n, int(rng.poisson(1.5 * n / SR))).astype(int):
        length = min(int(SR * rng.uniform(0.02, 0.15)), n - at)
        tt = np.arange(length) / SR
        ring = np.sin(2 * np.pi * rng.uniform(1500, 6000) * tt) * np.exp(-tt * rng.uniform(30, 90))
        clatter[at : at + length] += ring * rng.uniform(1, 6)
    out = air + hum * rng.uniform(0.05, 0.5) + clatter
    return torch.from_numpy((out / (np.std(out) + 1e-12)).astype(np.float32))


NOISE_GENERATORS: dict[Role, Callable[[int, np.random.Generator], torch.Tensor]] = {
    "train": coloured_noise,
    "calib": traffic_noise,
    "test": room_tone,
}


def fft_convolve(audio: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal linear convolution, output as long as `audio`."""
    out = sps.fftconvolve(audio.numpy(), kernel.numpy())[: audio.numel()]
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(audio.dtype)


def _bank_of(rirs: list[np.ndarray]) -> np.ndarray:
    length = max(r.size for r in rirs)
    bank = np.zeros((len(rirs), length), dtype=np.float32)
    for i, rir in enumerate(rirs):
        bank[i, : rir.size] = rir / np.sqrt(np.sum(rir**2))
    return bank


def shoebox_rirs(
    count: int, seed: int, rt60_s: tuple[float, float], min_distance_m: float = 0.0
) -> np.ndarray:
    """(count, n) unit-energy RIRs of random pyroomacoustics shoebox rooms (3-12 m; image
    sources to order 3, then ray tracing for the late tail) with Sabine RT60 in `rt60_s` and
    the microphone at least `min_distance_m` from the source, direct path at 0, cut at 1 s."""
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    while len(rirs) < count:
        dims = rng.uniform([3, 3, 2.4], [12, 10, 4])
        rt60 = rng.uniform(*rt60_s)
        source, mic = rng.uniform(0.5, dims - 0.5), rng.uniform(0.5, dims - 0.5)
        if np.linalg.norm(source - mic) < min_distance_m:
            continue
        absorption, _ = pra.inverse_sabine(rt60, dims)
        room = pra.ShoeBox(
            dims, fs=SR, materials=pra.Material(absorption), max_order=3, ray_tracing=True
        )
        room.set_ray_tracing(receiver_radius=0.5, n_rays=3000, energy_thres=1e-5)
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float64)
        rirs.append(rir[int(np.argmax(np.abs(rir))) :][:SR])
    return _bank_of(rirs)


OCTAVE_EDGES_HZ = (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, SR / 2)
OCTAVE_DECAY = (1.3, 1.15, 1.0, 0.9, 0.75, 0.6)
"""Each octave band's reverberation time relative to the room's (absorption rises with
frequency)."""


def stochastic_rir(
    rng: np.random.Generator, rt60_s: float, distance_m: float, volume_m3: float
) -> np.ndarray:
    """A statistical room response, independent of any image-source simulator: the direct
    sound, 8-20 sparse early reflections within 40 ms, and a late tail of Gaussian noise
    decaying per octave band; reverberant / direct energy = (distance / critical distance)^2
    with critical distance 0.057 sqrt(volume / RT60) (diffuse-field theory). Unit energy,
    direct sound at sample 0."""
    n = int(min(1.5 * rt60_s, 1.2) * SR)
    t = np.arange(n) / SR
    direct = np.zeros(n)
    direct[0] = 1.0
    early = np.zeros(n)
    for _ in range(int(rng.integers(8, 21))):
        delay_s = rng.uniform(1e-3, 40e-3)
        path_m = distance_m + delay_s * SOUND_SPEED_M_S
        early[int(delay_s * SR)] += (
            rng.choice([-1, 1]) * rng.uniform(0.4, 0.9) * distance_m / path_m
        )
    noise = rng.standard_normal(n)
    late = np.zeros(n)
    bands = zip(OCTAVE_EDGES_HZ[:-1], OCTAVE_EDGES_HZ[1:], strict=True)
    for (lo, hi), factor in zip(bands, OCTAVE_DECAY, strict=True):
        band = [lo, min(hi, SR / 2 - 1)] if lo > 0 else min(hi, SR / 2 - 1)
        kind = "bandpass" if lo > 0 else "lowpass"
        sos = sps.butter(4, band, btype=kind, fs=SR, output="sos")
        rt = rt60_s * factor * rng.uniform(0.9, 1.1)
        late += sps.sosfilt(sos, noise) * np.exp(-6.91 * t / rt)
    onset_s = rng.uniform(0.01, 0.03)
    late *= np.clip((t - onset_s) / 0.01, 0, 1)
    early_share = rng.uniform(0.2, 0.4)
    critical_m = 0.057 * np.sqrt(volume_m3 / rt60_s)
    reverb_energy = (distance_m / critical_m) ** 2
    early *= np.sqrt(early_share * reverb_energy / (np.sum(early**2) + 1e-12))
    late *= np.sqrt((1 - early_share) * reverb_energy / (np.sum(late**2) + 1e-12))
    rir = direct + early + late
    return rir / np.sqrt(np.sum(rir**2))


def stochastic_rirs(count: int, seed: int) -> np.ndarray:
    """(count, n) `stochastic_rir` rooms: RT60 0.4-0.9 s, microphone 1.5-4 m from the
    source, 40-300 m3."""
    rng = np.random.default_rng(seed)
    rooms = [
        stochastic_rir(rng, rng.uniform(0.4, 0.9), rng.uniform(1.5, 4.0), rng.uniform(40, 300))
        for _ in range(count)
    ]
    return _bank_of(rooms)


def room_impulse_responses(role: Role = "train", cache: Path | None = None) -> np.ndarray:
    """The simulated rooms of `role`, cached on disk: training 256 shoebox rooms (seed 0,
    RT60 0.15-1.1 s, any distance), calibration 64 shoebox rooms (seed 2, RT60 0.4-0.9 s,
    microphone >= 1.5 m), test 64 `stochastic_rirs` (seed 1)."""
    cache = cache or RIR_CACHE
    path = cache.with_name(f"{cache.stem}-{role}.npy")
    if path.exists():
        return np.load(path)
    if role == "train":
        bank = shoebox_rirs(256, 0, (0.15, 1.1))
    elif role == "calib":
        bank = shoebox_rirs(64, 2, (0.4, 0.9), min_distance_m=1.5)
    else:
        bank = stochastic_rirs(64, 1)
    replace_atomically(path, lambda temporary: np.save(temporary, bank))
    return bank


DeviceCurve = tuple[tuple[float, float], ...]
"""A microphone's gain in dB at frequencies in Hz."""

DEVICE_CURVES: dict[str, DeviceCurve] = {
    "phone": ((0, -40), (150, -25), (300, -6), (500, -1), (1000, 0), (2000, 2), (2800, 5),
              (3400, 1), (4000, -12), (5000, -30), (8000, -40)),
    "laptop": ((0, -40), (100, -22), (250, -6), (600, 0), (1500, -3), (3000, 3), (5000, 6),
               (6500, -2), (8000, -20)),
    "headset": ((0, -40), (80, -18), (200, -4), (700, 1), (1200, -2), (2500, 4), (4200, -1),
                (6000, -9), (8000, -25)),
}  # fmt: skip
"""Test microphones: gain in dB at frequencies in Hz (FIR, 255 taps)."""

CALIB_DEVICE_CURVES: dict[str, DeviceCurve] = {
    "tablet": ((0, -40), (120, -24), (350, -5), (800, 0), (1800, 1), (3200, 4), (4500, 2),
               (6000, -6), (8000, -28)),
    "webcam": ((0, -40), (200, -20), (400, -3), (1000, 0), (2200, -2), (3600, 3), (5000, -4),
               (7000, -15), (8000, -30)),
    "car-kit": ((0, -40), (180, -20), (350, -4), (900, 1), (1600, -1), (2600, 3), (3300, 0),
                (3800, -15), (5000, -35), (8000, -40)),
}  # fmt: skip
"""Calibration microphones: other devices, coloured as the test's are, so that calibration
and model selection meet that kind (with Chebyshev bands alone, VAL favoured a fine-tune
that TEST found level: the fingerprint model card)."""

DEVICE_CURVES_OF: dict[Role, dict[str, DeviceCurve]] = {
    "calib": CALIB_DEVICE_CURVES,
    "test": DEVICE_CURVES,
}
"""The microphone curves of the roles that have them (training draws random EQ instead)."""


def _random_curve(curves: dict[str, DeviceCurve], rng: np.random.Generator) -> str:
    return list(curves)[int(rng.integers(len(curves)))]


def device_response(
    audio: torch.Tensor,
    rng: np.random.Generator,
    curve: str | None = None,
    curves: dict[str, DeviceCurve] = DEVICE_CURVES,
) -> torch.Tensor:
    """A microphone of `curves` (`curve`, else a random one), each point moved by up to
    +-2 dB."""
    points = curves[curve or _random_curve(curves, rng)]
    freqs = np.array([f for f, _ in points]) / (SR / 2)
    gains = 10 ** ((np.array([g for _, g in points]) + rng.uniform(-2, 2, len(points))) / 20)
    taps = sps.firwin2(255, np.minimum(freqs, 1.0), gains)
    return fft_convolve(audio, torch.from_numpy(taps.astype(np.float32)))


def telephone_band(audio: torch.Tensor) -> torch.Tensor:
    """300-3400 Hz, 6th-order elliptic band-pass (the test family's band)."""
    sos = sps.ellip(3, 0.5, 40, [300, 3400], btype="bandpass", fs=SR, output="sos")
    return torch.from_numpy(sps.sosfilt(sos, audio.numpy()).astype(np.float32))


def chebyshev_band(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Calibration microphones: Chebyshev-I band-pass with random edges, then a spectral tilt."""
    low, high = rng.uniform(150, 450), rng.uniform(3000, 6000)
    sos = sps.cheby1(int(rng.integers(2, 5)), 1.0, [low, high], btype="bandpass", fs=SR,
                     output="sos")  # fmt: skip
    out = sps.sosfilt(sos, audio.numpy())
    tilt = sps.lfilter([1.0, -rng.uniform(-0.5, 0.5)], [1.0], out)
    return torch.from_numpy(tilt.astype(np.float32))


@dataclass
class NoiseBank:
    """Interference material of one role at ANALYSIS_RATE_HZ: talkers' clips, noise
    recordings, simulated rooms (`rirs`), recorded room responses and loudspeaker cabinets.
    `speech_source` / `ambient_source` label each clip: "pkg:<package>" for recordings,
    "<engine>-<voice>" for synthetic voices, "" for a user's own unlabelled material."""

    speech: list[np.ndarray]
    ambient: list[np.ndarray]
    rirs: np.ndarray
    role: Role = "train"
    speech_source: list[str] = field(default_factory=list)
    ambient_source: list[str] = field(default_factory=list)
    room_irs: list[np.ndarray] = field(default_factory=list)
    speakers: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        noise_dirs: Path | Sequence[Path] | None = None,
        role: Role = "train",
        synth_dirs: Sequence[Path] = (),
        rirs: np.ndarray | None = None,
    ) -> NoiseBank:
        """`role`'s material from `noise_dirs` (each: speech/ and ambient/ WAV clips labelled
        by manifest.csv's source_package, synth/<engine>-<voice>/ and ir/ with their
        manifests) and from `synth_dirs` (<engine>-<voice>/*.wav); simulated rooms `rirs`
        (default: the role's `room_impulse_responses`). A folder without a manifest is the
        user's own material: training only. Sorted, so reproducible."""
        if noise_dirs is None or isinstance(noise_dirs, str | Path):
            noise_dirs = [Path(noise_dirs or DEFAULT_NOISE_DIR)]
        speech: list[tuple[str, Path, float]] = []
        ambient: list[tuple[str, Path, float]] = []
        irs: list[tuple[str, str, Path]] = []
        for root in (Path(d).expanduser() for d in noise_dirs):
            for kind, out in (("speech", speech), ("ambient", ambient)):
                out += _recordings(root, kind)
            speech += _synth_voices(root / "synth")
            irs += _impulse_responses(root / "ir")
        for folder in synth_dirs:
            speech += _synth_voices(Path(folder).expanduser())

        def mine(label: str, is_voice: bool) -> bool:
            if not label:
                return role == "train"
            if label.startswith("pkg:"):
                return recorded_role(label[4:]) == role
            return is_voice and voice_role(label) == role

        speech_clips = _decoded(_capped([s for s in speech if mine(s[0], True)]))
        ambient_clips = _decoded([a for a in ambient if mine(a[0], False)])
        rooms = [_unit(decode(p)) for kind, stem, p in irs if kind != "cabinet"
                 and ROOM_IR_ROLES.get(stem, "train") == role]  # fmt: skip
        speakers = [_unit(decode(p)) for kind, stem, p in irs if kind == "cabinet"
                    and speaker_role(stem.split("__")[0], stem) == role]  # fmt: skip
        return cls(
            speech=[s for _, s in speech_clips],
            ambient=[a for _, a in ambient_clips],
            rirs=room_impulse_responses(role=role) if rirs is None else rirs,
            role=role,
            speech_source=[label for label, _ in speech_clips],
            ambient_source=[label for label, _ in ambient_clips],
            room_irs=rooms,
            speakers=speakers,
        )

    def talker_groups(self) -> dict[str, dict[str, list[int]]]:
        """Speech clip indices by talker family ("recorded", or the synthesiser: "espeak-ng",
        "flite", "festival"), then by source (a package or one voice)."""
        groups: dict[str, dict[str, list[int]]] = {}
        for i, label in enumerate(self.speech_source or [""] * len(self.speech)):
            family = "recorded" if label.startswith("pkg:") or not label else _engine(label)
            groups.setdefault(family, {}).setdefault(label, []).append(i)
        return groups

    def babble(
        self,
        n: int,
        voices: int,
        rng: np.random.Generator,
        groups: dict[str, dict[str, list[int]]] | None = None,
    ) -> torch.Tensor:
        """`voices` talkers summed, each one source talking (a run of its clips with short
        pauses): a family of `groups` (default `talker_groups()`), then one of its sources,
        so that a family of many voices does not drown the others."""
        groups = groups or self.talker_groups()
        families = sorted(groups)
        out = np.zeros(n, dtype=np.float32)
        for _ in range(voices):
            sources = groups[families[int(rng.integers(len(families)))]]
            pool = sources[sorted(sources)[int(rng.integers(len(sources)))]]
            pos = -int(rng.integers(0, SR))
            while pos < n:
                clip = self.speech[pool[int(rng.integers(len(pool)))]]
                clip = clip / (np.sqrt(np.mean(clip**2)) + 1e-6)
                start, end = max(pos, 0), min(pos + clip.size, n)
                if end > start:
                    out[start:end] += clip[start - pos : end - pos]
                pos += clip.size + int(rng.integers(0, SR // 4))
        return torch.from_numpy(out)

    def ambience(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        return self.labelled_ambience(n, rng)[0]

    def labelled_ambience(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
        """A looped random noise recording plus the role's noise generator at a random
        relative level, or the generator alone (half the time, or when there are no
        recordings); and which ("generated" or the recording's package)."""
        generated = NOISE_GENERATORS[self.role](n, rng)
        if not self.ambient or rng.random() < 0.5:
            return generated, "generated"
        pick = int(rng.integers(len(self.ambient)))
        clip = self.ambient[pick]
        reps = -(-(n + clip.size) // clip.size)
        looped = np.tile(clip, reps)[int(rng.integers(clip.size)) :][:n]
        looped = torch.from_numpy(looped / (np.sqrt(np.mean(looped**2)) + 1e-6))
        label = (self.ambient_source or [""] * len(self.ambient))[pick].removeprefix("pkg:")
        return looped + generated * float(10 ** (rng.uniform(-30, 0) / 20)), label or "own"

    def room(self, audio: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, str]:
        """`audio` in a room of the role: a recorded room response ROOM_IR_SHARE of the time
        when there are any, else a simulated one; and which kind."""
        if self.room_irs and rng.random() < ROOM_IR_SHARE:
            rir = self.room_irs[int(rng.integers(len(self.room_irs)))]
            return fft_convolve(audio, torch.from_numpy(rir)), "recorded"
        rir = self.rirs[int(rng.integers(len(self.rirs)))]
        simulated = "stochastic" if self.role == "test" else "shoebox"
        return fft_convolve(audio, torch.from_numpy(rir)), simulated

    def speaker(self, audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """`audio` played through one of the role's loudspeaker cabinets (unchanged if none)."""
        if not self.speakers:
            return audio
        ir = self.speakers[int(rng.integers(len(self.speakers)))]
        return fft_convolve(audio, torch.from_numpy(ir))


ROOM_IR_SHARE = 0.25
"""Share of reverberated views that take a recorded room response rather than a simulated one."""
MAX_IR_S = 1.5
"""Recorded impulse responses are cut here: the tail beyond is far below the music."""


def _engine(label: str) -> str:
    return next((e for e in ("espeak-ng", *sorted(TEST_ENGINES)) if label.startswith(e)), label)


def _unit(ir: np.ndarray) -> np.ndarray:
    """An impulse response from its strongest tap (the direct sound), cut at MAX_IR_S, with
    unit energy."""
    ir = np.asarray(ir, np.float64)[int(np.argmax(np.abs(ir))) :][: int(MAX_IR_S * SR)]
    return (ir / (np.sqrt(np.sum(ir**2)) + 1e-12)).astype(np.float32)


def _manifest(root: Path) -> dict[str, dict]:
    """Rows of `root`/manifest.csv by the last two parts of their path (folder and file
    name): manifests give paths from the corpus, not from `root`."""
    manifest = root / "manifest.csv"
    if not manifest.exists():
        return {}
    with open(manifest, newline="") as f:
        return {_key(Path(row["path"])): row for row in csv.DictReader(f)}


def _key(path: Path) -> str:
    return "/".join(path.parts[-2:])


def _recordings(root: Path, kind: str) -> list[tuple[str, Path, float]]:
    """(label, path, seconds) of `root`/`kind`/*.wav; labelled by the manifest's package."""
    rows = _manifest(root)
    out = []
    for path in sorted((root / kind).rglob("*.wav")):
        row = rows.get(_key(path), {})
        package = row.get("source_package", "")
        out.append((f"pkg:{package}" if package else "", path, float(row.get("seconds") or 3.0)))
    return out


def _synth_voices(folder: Path) -> list[tuple[str, Path, float]]:
    if not folder.is_dir():
        return []
    return [(p.parent.name, p, 3.0) for p in sorted(folder.glob("*/*.wav"))]


def _impulse_responses(folder: Path) -> list[tuple[str, str, Path]]:
    """(kind, file stem, path) of the impulse responses in `folder` (its manifest's kinds)."""
    rows = _manifest(folder)
    out = []
    for path in sorted(folder.rglob("*.wav")):
        row = rows.get(_key(path))
        if row is not None:
            out.append((row["kind"], path.stem, path))
    return out


def _capped(clips: list[tuple[str, Path, float]]) -> list[tuple[str, Path, float]]:
    """At most MAX_SPEECH_S_PER_SOURCE of each source's clips, spread evenly over them."""
    by_source: dict[str, list[tuple[str, Path, float]]] = {}
    for clip in clips:
        by_source.setdefault(clip[0], []).append(clip)
    kept = []
    for group in by_source.values():
        total = sum(c[2] for c in group)
        step = max(1, int(np.ceil(total / MAX_SPEECH_S_PER_SOURCE)))
        kept += group[::step]
    return kept


def _decoded(clips: list[tuple[str, Path, float]]) -> list[tuple[str, np.ndarray]]:
    """(label, audio) of the clips that decode to more than a quarter second."""
    out = []
    for label, path, _ in clips:
        try:
            audio = decode(path)
        except DecodeError:
            continue
        if audio.size > SR // 4:
            out.append((label, audio))
    return out


def _peaking_eq(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    for _ in range(int(rng.integers(1, 5))):
        centre = float(np.exp(rng.uniform(np.log(60), np.log(6000))))
        gain = float(rng.uniform(-15, 15))
        audio = taf.equalizer_biquad(audio, SR, centre, gain, float(rng.uniform(0.5, 3)))
    return audio


def _biquad_band(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    audio = taf.highpass_biquad(audio, SR, float(rng.uniform(150, 500)))
    return taf.lowpass_biquad(audio, SR, float(rng.uniform(2800, 4500)))


def microphone(
    audio: torch.Tensor, rng: np.random.Generator, role: Role
) -> tuple[torch.Tensor, str]:
    """A phone's microphone and band of `role`, and which: test a DEVICE_CURVES response
    and the elliptic 300-3400 Hz band; calib a CALIB_DEVICE_CURVES response and a
    Chebyshev band with a tilt; train peaking EQ and a biquad band."""
    if role in DEVICE_CURVES_OF:
        curves = DEVICE_CURVES_OF[role]
        name = _random_curve(curves, rng)
        coloured = device_response(audio, rng, name, curves)
        band = telephone_band(coloured) if role == "test" else chebyshev_band(coloured, rng)
        return band, name
    return _biquad_band(_peaking_eq(audio, rng), rng), "biquad"


def degradation_family(noise: NoiseBank) -> dict[str, Degradation]:
    """The registry of degradations on `noise`'s role, each with its own random strength."""
    role = noise.role
    talkers = noise.talker_groups()

    def babble(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        speech = noise.babble(audio.numel(), int(rng.integers(1, 9)), rng, talkers)
        return mix_at_snr(audio, speech, rng.uniform(*BABBLE_SNR_DB))

    def ambient(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return mix_at_snr(audio, noise.ambience(audio.numel(), rng), rng.uniform(-3, 25))

    def reverb(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return noise.room(audio, rng)[0]

    def phone_band(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if role == "test":
            return telephone_band(audio)
        return chebyshev_band(audio, rng) if role == "calib" else _biquad_band(audio, rng)

    def eq(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if role == "train":
            return _peaking_eq(audio, rng)
        return device_response(audio, rng, curves=DEVICE_CURVES_OF[role])

    def codec(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return random_codec(audio, rng, role)

    def gain_clip(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        audio = audio * float(10 ** (rng.uniform(-20, 15) / 20))
        return audio.clamp(-1, 1) if rng.random() < 0.5 else audio

    def speed(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return change_speed(audio, float(rng.uniform(0.97, 1.03)))

    return {
        "babble": babble,
        "ambient": ambient,
        "speaker": noise.speaker,
        "reverb": reverb,
        "phone_band": phone_band,
        "eq": eq,
        "codec": codec,
        "gain_clip": gain_clip,
        "speed": speed,
    }


BABBLE_SNR_DB = (-6.0, 15.0)
"""Speech-to-music level range of a training view's babble (0 dB babble is the hardest
benchmark cell, so the range leans low)."""

TRAINING_RECIPE: dict[str, float] = {
    "speed": 0.3,
    "speaker": 0.15,
    "reverb": 0.45,
    "eq": 0.5,
    "babble": 0.6,
    "ambient": 0.4,
    "phone_band": 0.25,
    "codec": 0.35,
    "gain_clip": 1.0,
}
"""Probability of each kind in a training view, applied in this order (reverb before the
noise: the talkers are near the microphone, the music is across the room)."""

ROOM_RECIPE: dict[str, float] = {
    "speaker": 0.5,
    "reverb": 1.0,
    "babble": 0.3,
    "ambient": 1.0,
    "eq": 0.5,
    "phone_band": 1.0,
    "codec": 1.0,
    "gain_clip": 1.0,
}
"""A phone across a room: every kind together, as one training view (see the trainer's
`room_chance`); TRAINING_RECIPE's independent draws rarely combine them all."""


def degrade(
    audio: torch.Tensor,
    rng: np.random.Generator,
    family: dict[str, Degradation],
    kinds: Sequence[str] | dict[str, float] = TRAINING_RECIPE,
) -> torch.Tensor:
    """Apply `kinds` in order; a dict gives each kind's probability, a sequence applies all.

    Note `speed` changes the length (n / factor); callers crop afterwards.
    """
    chances = kinds if isinstance(kinds, dict) else dict.fromkeys(kinds, 1.0)
    for kind, chance in chances.items():
        if chance >= 1.0 or rng.random() < chance:
            audio = family[kind](audio, rng)
    return audio


Condition = Callable[[np.ndarray, np.random.Generator, NoiseBank], tuple[np.ndarray, str]]
"""(clip audio with some extra, rng, bank) -> (degraded audio, the sources it drew as
space-separated "kind:source" words, for per-family results)."""


def _mp3(signal: torch.Tensor) -> np.ndarray:
    return codec_roundtrip(signal, "mp3", 128_000).numpy()


def _clean_mp3(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank):
    return _mp3(torch.from_numpy(audio)), "codec:mp3-128k"


def _babble(snr_db: float) -> Condition:
    def condition(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank):
        groups = noise.talker_groups()
        family = sorted(groups)[int(rng.integers(len(groups)))]
        signal = torch.from_numpy(audio)
        voices = int(rng.integers(3, 7))
        talkers = noise.babble(signal.numel(), voices, rng, {family: groups[family]})
        return _mp3(mix_at_snr(signal, talkers, snr_db)), f"talkers:{family}"

    return condition


def _phone_room(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank):
    """Half the time a loudspeaker of the role, then a room of the role, the role's noise
    at 10 dB SNR, its microphone and 300-3400 Hz band, 8 kHz and a low-bitrate codec of the
    role (half the time at its lowest rate)."""
    signal = torch.from_numpy(audio)
    speaker = bool(noise.speakers) and rng.random() < 0.5
    signal = noise.speaker(signal, rng) if speaker else signal
    signal, room = noise.room(signal, rng)
    background, source = noise.labelled_ambience(signal.numel(), rng)
    signal, mic = microphone(mix_at_snr(signal, background, 10.0), rng, noise.role)
    narrow = [c for c in CODEC_ROLES[noise.role] if c[1] == 8000] or CODEC_ROLES[noise.role]
    codec, rate_hz, kbps = narrow[int(rng.integers(len(narrow)))]
    kbit = float(min(kbps)) if rng.random() < 0.5 else float(rng.choice(kbps))
    out = codec_roundtrip(signal, codec, int(kbit * 1000), rate_hz)
    words = f"room:{room} speaker:{'yes' if speaker else 'no'} noise:{source} mic:{mic}"
    return out.numpy(), f"{words} codec:{codec}-{kbit:g}k"


def _speed_2pct(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank):
    factor = 1.02 if rng.random() < 0.5 else 0.98
    return _mp3(change_speed(torch.from_numpy(audio), factor)), f"speed:x{factor:g}"


def _old_room(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank):
    """The room of the earlier benchmark: a simulated room, noise at 10 dB, a biquad
    300-3400 Hz band, AAC 32 kbit/s at 16 kHz."""
    signal = torch.from_numpy(audio)
    signal = fft_convolve(signal, torch.from_numpy(noise.rirs[int(rng.integers(len(noise.rirs)))]))
    signal = mix_at_snr(signal, noise.ambience(signal.numel(), rng), 10.0)
    signal = taf.lowpass_biquad(taf.highpass_biquad(signal, SR, 300.0), SR, 3400.0)
    return codec_roundtrip(signal, "aac", 32_000).numpy(), "codec:aac-32k"


CONDITIONS: dict[str, Condition] = {
    "clean_mp3": _clean_mp3,
    "babble_5db": _babble(5.0),
    "babble_0db": _babble(0.0),
    "phone_room": _phone_room,
    "speed_2pct": _speed_2pct,
}
"""Benchmark conditions, each on a bank of one role: clean = MP3 128 kbit/s; babble = 3-6
talkers of one talker family at 5 / 0 dB SNR then MP3; phone_room = `_phone_room`; speed =
+-2 % tape speed then MP3. Apply to a clip read from the track with extra audio (speed_2pct
consumes up to 2 % more samples than it returns)."""

SEEN_CONDITIONS: dict[str, Condition] = {
    "seen_babble_0db": _babble(0.0),
    "seen_room": _old_room,
}
"""The earlier benchmark's hardest conditions, meant for a training bank: degradations the
model has met (other mixtures of the same sources)."""


def apply_condition(
    name: str, audio: np.ndarray, seed: int, noise: NoiseBank, duration_s: float
) -> tuple[np.ndarray, str]:
    """Condition `name` (CONDITIONS or SEEN_CONDITIONS) on `audio`, reproducible from `seed`,
    cut to `duration_s` seconds; and the sources it drew."""
    rng = np.random.default_rng(seed)
    condition = CONDITIONS.get(name) or SEEN_CONDITIONS[name]
    out, sources = condition(np.asarray(audio, dtype=np.float32), rng, noise)
    return np.asarray(out[: int(round(duration_s * SR))], dtype=np.float32), sources
