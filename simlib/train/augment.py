"""Degradations that turn clean music into what a phone hears, for training and benchmarks.

Every degradation is a function `(audio, rng) -> audio` on a mono float32 torch tensor at
ANALYSIS_RATE_HZ; the family is a registry built by `degradation_family(noise)`, so a new
kind is one more entry. Noise material (speech and ambient clips) comes from a directory
given at run time (default ~/simlib-corpus/noise) and is never needed at import time.
`CONDITIONS` are the fixed, seeded query conditions of the identification benchmark.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio.functional as taf

from simlib.audio import ANALYSIS_RATE_HZ, decode
from simlib.files import replace_atomically

DEFAULT_NOISE_DIR = Path("~/simlib-corpus/noise").expanduser()
RIR_CACHE = Path("~/.cache/simlib/rirs-v1.npy").expanduser()
SR = ANALYSIS_RATE_HZ

Degradation = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]


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


def codec_roundtrip(audio: torch.Tensor, codec: str, bitrate_bps: int) -> torch.Tensor:
    """Encode with `codec` ("mp3" or "aac") at `bitrate_bps` in memory and decode back."""
    name, fmt = {"mp3": ("libmp3lame", "mp3"), "aac": ("aac", "adts")}[codec]
    samples = audio.detach().cpu().numpy().astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(name, rate=SR)
        stream.bit_rate = bitrate_bps
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        frame.sample_rate = SR
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buf.seek(0)
    decoded = decode(buf)
    if codec == "aac" and decoded.size >= samples.size + 1024:
        decoded = decoded[1024:]  # AAC encoder priming samples
    result = np.zeros(samples.size, dtype=np.float32)
    result[: min(samples.size, decoded.size)] = decoded[: samples.size]
    return torch.from_numpy(result)


def coloured_noise(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian noise with a random spectral slope between brown (-2) and white (0)."""
    slope = rng.uniform(-2.0, 0.0)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / SR), 20.0)
    noise = np.fft.irfft(spectrum * freqs ** (slope / 2), n)
    return torch.from_numpy((noise / (np.std(noise) + 1e-12)).astype(np.float32))


def fft_convolve(audio: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal linear convolution, output as long as `audio`."""
    n = audio.numel() + kernel.numel() - 1
    size = 1 << (n - 1).bit_length()
    out = torch.fft.irfft(torch.fft.rfft(audio, size) * torch.fft.rfft(kernel, size), size)
    return out[: audio.numel()].to(audio.dtype)


def room_impulse_responses(count: int = 64, seed: int = 0, cache: Path | None = None) -> np.ndarray:
    """(count, n) float32 RIRs of random shoebox rooms (pyroomacoustics), cached on disk.

    RT60 0.2-0.9 s, rooms 3-12 m, each normalised to unit energy; the direct path is at 0.
    `cache` defaults to RIR_CACHE.
    """
    cache = cache or RIR_CACHE
    path = cache.with_name(f"{cache.stem}-{count}-{seed}.npy")
    if path.exists():
        return np.load(path)
    import pyroomacoustics as pra

    rng = np.random.default_rng(seed)
    rirs = []
    for _ in range(count):
        dims = rng.uniform([3, 3, 2.4], [12, 10, 4])
        rt60 = rng.uniform(0.2, 0.9)
        absorption, max_order = pra.inverse_sabine(rt60, dims)
        room = pra.ShoeBox(
            dims, fs=SR, materials=pra.Material(absorption), max_order=min(max_order, 12)
        )
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float64)
        rir = rir[int(np.argmax(np.abs(rir))) :][:SR]
        rirs.append(rir / np.sqrt(np.sum(rir**2)))
    length = max(r.size for r in rirs)
    bank = np.zeros((count, length), dtype=np.float32)
    for i, rir in enumerate(rirs):
        bank[i, : rir.size] = rir
    replace_atomically(path, lambda temporary: np.save(temporary, bank))
    return bank


@dataclass
class NoiseBank:
    """Interference material at ANALYSIS_RATE_HZ: speech clips, ambient clips, room RIRs."""

    speech: list[np.ndarray]
    ambient: list[np.ndarray]
    rirs: np.ndarray

    @classmethod
    def load(
        cls, noise_dir: Path | None = None, max_speech: int | None = None, rir_seed: int = 0
    ) -> NoiseBank:
        """Read `noise_dir`/speech/*.wav and /ambient/*.wav (sorted, so reproducible) and
        the rooms of `room_impulse_responses(seed=rir_seed)` (training uses seed 0)."""
        root = Path(noise_dir or DEFAULT_NOISE_DIR).expanduser()
        speech = [decode(p) for p in sorted((root / "speech").glob("*.wav"))[:max_speech]]
        ambient = [decode(p) for p in sorted((root / "ambient").glob("*.wav"))]
        return cls(
            speech=[s for s in speech if s.size > SR // 4],
            ambient=[a for a in ambient if a.size > SR // 4],
            rirs=room_impulse_responses(seed=rir_seed),
        )

    def babble(self, n: int, voices: int, rng: np.random.Generator) -> torch.Tensor:
        """`voices` talkers, each a run of random speech clips with short pauses, summed."""
        out = np.zeros(n, dtype=np.float32)
        for _ in range(voices):
            pos = -int(rng.integers(0, SR))
            while pos < n:
                clip = self.speech[int(rng.integers(len(self.speech)))]
                clip = clip / (np.sqrt(np.mean(clip**2)) + 1e-6)
                start, end = max(pos, 0), min(pos + clip.size, n)
                if end > start:
                    out[start:end] += clip[start - pos : end - pos]
                pos += clip.size + int(rng.integers(0, SR // 4))
        return torch.from_numpy(out)

    def ambience(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """A looped random ambient clip plus coloured noise (at a random relative level)."""
        clip = self.ambient[int(rng.integers(len(self.ambient)))] if self.ambient else None
        noise = coloured_noise(n, rng)
        if clip is None:
            return noise
        reps = -(-(n + clip.size) // clip.size)
        looped = np.tile(clip, reps)[int(rng.integers(clip.size)) :][:n]
        looped = torch.from_numpy(looped / (np.sqrt(np.mean(looped**2)) + 1e-6))
        return looped + noise * float(10 ** (rng.uniform(-30, 0) / 20))


def degradation_family(noise: NoiseBank) -> dict[str, Degradation]:
    """The registry of training degradations, each with its own random strength."""

    def babble(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        speech = noise.babble(audio.numel(), int(rng.integers(1, 7)), rng)
        return mix_at_snr(audio, speech, rng.uniform(-5, 20))

    def ambient(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return mix_at_snr(audio, noise.ambience(audio.numel(), rng), rng.uniform(-3, 25))

    def reverb(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        rir = torch.from_numpy(noise.rirs[int(rng.integers(len(noise.rirs)))])
        return fft_convolve(audio, rir)

    def phone_band(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        audio = taf.highpass_biquad(audio, SR, float(rng.uniform(200, 500)))
        return taf.lowpass_biquad(audio, SR, float(rng.uniform(3000, 4500)))

    def eq(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for _ in range(int(rng.integers(1, 4))):
            centre = float(np.exp(rng.uniform(np.log(60), np.log(6000))))
            gain = float(rng.uniform(-12, 12))
            audio = taf.equalizer_biquad(audio, SR, centre, gain, float(rng.uniform(0.5, 2)))
        return audio

    def codec(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        kind = "mp3" if rng.random() < 0.5 else "aac"
        return codec_roundtrip(audio, kind, int(rng.choice([24, 32, 48, 64, 96])) * 1000)

    def gain_clip(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        audio = audio * float(10 ** (rng.uniform(-20, 12) / 20))
        return audio.clamp(-1, 1) if rng.random() < 0.5 else audio

    def speed(audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return change_speed(audio, float(rng.uniform(0.97, 1.03)))

    return {
        "babble": babble,
        "ambient": ambient,
        "reverb": reverb,
        "phone_band": phone_band,
        "eq": eq,
        "codec": codec,
        "gain_clip": gain_clip,
        "speed": speed,
    }


TRAINING_RECIPE: dict[str, float] = {
    "speed": 0.3,
    "reverb": 0.4,
    "eq": 0.5,
    "phone_band": 0.2,
    "babble": 0.45,
    "ambient": 0.35,
    "codec": 0.1,
    "gain_clip": 1.0,
}
"""Probability of each kind in a training view, applied in this order."""

ROOM_RECIPE: dict[str, float] = {
    "reverb": 1.0,
    "babble": 0.3,
    "ambient": 1.0,
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


Condition = Callable[[np.ndarray, np.random.Generator, NoiseBank], np.ndarray]


def _clean_mp3(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank) -> np.ndarray:
    return codec_roundtrip(torch.from_numpy(audio), "mp3", 128_000).numpy()


def _speech(snr_db: float) -> Condition:
    def condition(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank) -> np.ndarray:
        signal = torch.from_numpy(audio)
        babble = noise.babble(signal.numel(), int(rng.integers(3, 7)), rng)
        return codec_roundtrip(mix_at_snr(signal, babble, snr_db), "mp3", 128_000).numpy()

    return condition


def _room(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank) -> np.ndarray:
    signal = torch.from_numpy(audio)
    rir = torch.from_numpy(noise.rirs[int(rng.integers(len(noise.rirs)))])
    signal = fft_convolve(signal, rir)
    signal = mix_at_snr(signal, noise.ambience(signal.numel(), rng), 10.0)
    signal = taf.lowpass_biquad(taf.highpass_biquad(signal, SR, 300.0), SR, 3400.0)
    return codec_roundtrip(signal, "aac", 32_000).numpy()


def _speed_2pct(audio: np.ndarray, rng: np.random.Generator, noise: NoiseBank) -> np.ndarray:
    factor = 1.02 if rng.random() < 0.5 else 0.98
    signal = change_speed(torch.from_numpy(audio), factor)
    return codec_roundtrip(signal, "mp3", 128_000).numpy()


CONDITIONS: dict[str, Condition] = {
    "clean_mp3": _clean_mp3,
    "speech_5db": _speech(5.0),
    "speech_0db": _speech(0.0),
    "room": _room,
    "speed_2pct": _speed_2pct,
}
"""Benchmark conditions: clean = MP3 128 kbit/s; speech = 3-6 talkers at 5 / 0 dB SNR then
MP3; room = RIR reverb + ambient noise at 10 dB SNR + 300-3400 Hz band + AAC 32 kbit/s;
speed = +-2 % tape speed then MP3. Apply to a clip read from the track with extra audio
(speed_2pct consumes up to 2 % more samples than it returns)."""


def apply_condition(
    name: str, audio: np.ndarray, seed: int, noise: NoiseBank, duration_s: float
) -> np.ndarray:
    """Condition `name` on `audio`, reproducible from `seed`, cut to `duration_s` seconds."""
    rng = np.random.default_rng(seed)
    out = CONDITIONS[name](np.asarray(audio, dtype=np.float32), rng, noise)
    return np.asarray(out[: int(round(duration_s * SR))], dtype=np.float32)
