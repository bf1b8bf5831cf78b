"""Contrastive training of the fingerprint encoder on unlabelled music.

Each example is one ~1 s segment seen twice: clean (as the library holds it) and degraded
(as a phone hears it: `simlib.train.augment` noise, reverb, filters, codecs, gain, +-3 % speed,
up to +-0.12 s misalignment). NT-Xent with in-batch negatives pulls the two views together.
Progress is checkpointed next to the output (`<out>.ckpt`) so an interrupted run resumes;
`<out>` always holds the best weights so far by degraded->clean retrieval on a fixed
validation set.

Only training material is drawn: the TRAIN tracks of `simlib.train.corpus` (development
packages, extra corpora, MIDI renders) and the "train" role of every degradation source.
Validation, which picks the checkpoint, uses VAL tracks degraded with "calib" sources; a
"test" bank is refused. Reproduce the shipped weights (docs/training.md, the model card):

    python -m simlib.train.fingerprint --corpus ~/simlib-corpus \
        --extra ~/simlib-corpus-extra --out simlib/weights/fingerprint.pt \
        --minutes 85 --seed 0 --pca-dim 32 --room-chance 0.3 --no-resume

The budget is wall time, so the number of steps depends on the machine's load.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from simlib import weights
from simlib.audio import ANALYSIS_RATE_HZ, DecodeError, decode
from simlib.audio.features import HOP, N_FFT, log_mel_frames, phone_band
from simlib.files import replace_atomically
from simlib.identify.encoder import FingerprintEncoder
from simlib.train.augment import (
    CONDITIONS,
    ROOM_RECIPE,
    SYNTH_SPEECH_DIR,
    TRAINING_RECIPE,
    NoiseBank,
    Role,
    change_speed,
    degradation_family,
    degrade,
)
from simlib.train.corpus import load_split
from simlib.train.export import export

SR = ANALYSIS_RATE_HZ
FRAMES = 100
CROP = (FRAMES - 1) * HOP + N_FFT
"""Samples that give exactly FRAMES uncentred log-mel frames."""
PRE = SR // 4
"""Audio before the crop that is degraded too, so reverb has a past."""
MAX_JITTER_S = 0.12
SPEED_CHANCE, MAX_SPEED = 0.3, 0.03
SILENT_RMS = 3e-3
PER_STRETCH = 4
"""Pairs cut from one degraded stretch: the degradation's per-call costs (codec containers,
filter set-up) are shared, and neighbouring seconds of a track are each other's negatives."""
STRIDE = CROP + SR // 10
MODEL_SETTINGS = {"segment_s": 1.0, "db_hop_s": 0.5, "query_hop_s": 0.2}
"""What a trained model's vectors are made with, stored beside its weights."""

Progress = Callable[[int, int, float], None]
Pair = tuple[np.ndarray, np.ndarray, bool]
"""A clean crop, its degraded view, and whether the clean side is a telephone band."""


def load_audio(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """All tracks decoded into one float16 array, and each track's (start, end) sample."""
    chunks, bounds, pos = [], [], 0
    for path in paths:
        try:
            audio = decode(path).astype(np.float16)
        except (DecodeError, OSError):
            continue
        if audio.size < CROP + PRE + SR:
            continue
        chunks.append(audio)
        bounds.append((pos, pos + audio.size))
        pos += audio.size
    return np.concatenate(chunks), np.asarray(bounds, dtype=np.int64)


class PairSampler:
    """Draws (clean, degraded) crops of random loud segments."""

    def __init__(
        self,
        audio: np.ndarray,
        bounds: np.ndarray,
        noise: NoiseBank,
        room_chance: float = 0.0,
        phone_chance: float = 0.0,
    ) -> None:
        if noise.role == "test":
            raise ValueError("test sources never train or validate the fingerprint")
        self.audio, self.bounds, self.noise = audio, bounds, noise
        self.family = degradation_family(noise)
        self.recipe = {k: v for k, v in TRAINING_RECIPE.items() if k != "speed"}
        self.room_chance = room_chance
        """Share of views degraded by ROOM_RECIPE instead of the independent draws."""
        self.phone_chance = phone_chance
        """Share of stretches heard as a phone across a room (the benchmark's condition on
        this bank's sources) and paired with the clean crop's telephone band: the library's
        phone view (`FingerprintModel.embed_phone_band`), which otherwise never trains."""
        lengths = (bounds[:, 1] - bounds[:, 0]).astype(np.float64)
        self.weights = lengths / lengths.sum()

    def _anchor(self, rng: np.random.Generator, count: int = 1) -> tuple[int, int]:
        """Start of a random loud stretch of up to `count` crops STRIDE apart (fewer where
        the track is short), with room for jitter, speed and the degradation's lead-in
        around it; and the number of crops."""
        start, fits = -1, 1
        for _ in range(20):
            lo, hi = self.bounds[rng.choice(len(self.bounds), p=self.weights)]
            margin = PRE + int(MAX_JITTER_S * SR * 1.1) + 2 * CROP
            room = (hi - lo - 2 * margin - CROP) / (STRIDE * (1 + MAX_SPEED))
            fits = int(min(count, max(room, 0) + 1))
            span = (fits - 1) * STRIDE + CROP
            margin += int(span * MAX_SPEED)
            if hi - margin - span <= lo + margin:
                continue
            start = int(rng.integers(lo + margin, hi - margin - span))
            crop = self.audio[start : start + span].astype(np.float32)
            if np.sqrt(np.mean(crop**2)) > SILENT_RMS:
                break
        if start < 0:
            raise ValueError("no track is long enough for a training crop")
        return start, fits

    def pairs(self, rng: np.random.Generator, count: int) -> list[Pair]:
        """Up to `count` (clean, degraded, narrow) crops STRIDE apart, from one degraded
        stretch; `narrow`: the clean side stands for the library's telephone band."""
        start, count = self._anchor(rng, count)
        span = (count - 1) * STRIDE + CROP
        speed = rng.uniform(1 - MAX_SPEED, 1 + MAX_SPEED) if rng.random() < SPEED_CHANCE else 1.0
        aligned = start + int(rng.uniform(-MAX_JITTER_S, MAX_JITTER_S) * SR)
        first = aligned - int(PRE * speed)
        source = self.audio[first : first + int((PRE + span) * speed) + 2].astype(np.float32)
        view = torch.from_numpy(source)
        if speed != 1.0:
            view = change_speed(view, speed)
        narrow = self.phone_chance > 0 and rng.random() < self.phone_chance
        if narrow:
            phoned, _ = CONDITIONS["phone_room"](view.numpy(), rng, self.noise)
            view = torch.from_numpy(phoned)
        else:
            room = self.room_chance > 0 and rng.random() < self.room_chance
            view = degrade(view, rng, self.family, ROOM_RECIPE if room else self.recipe)
        out = []
        for i in range(count):
            at = start + int(round(i * STRIDE * speed))
            clean = self.audio[at : at + CROP].astype(np.float32)
            crop = view[PRE + i * STRIDE : PRE + i * STRIDE + CROP]
            out.append((clean, F.pad(crop, (0, CROP - crop.numel())).numpy(), narrow))
        return out

    def clean_batch(self, size: int, rng: np.random.Generator) -> torch.Tensor:
        """(size, FRAMES, N_MELS) log-mel of random loud clean segments."""
        starts = [self._anchor(rng)[0] for _ in range(size)]
        return _log_mel([self.audio[s : s + CROP].astype(np.float32) for s in starts])

    def batch(self, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(size, FRAMES, N_MELS) clean and degraded log-mel batches."""
        pairs: list[Pair] = []
        while len(pairs) < size:
            pairs += self.pairs(rng, min(PER_STRETCH, size - len(pairs)))
        clean = _log_mel([p[0] for p in pairs])
        narrow = torch.tensor([p[2] for p in pairs])
        if narrow.any():
            clean[narrow] = torch.from_numpy(phone_band(clean[narrow].numpy()))
        return clean, _log_mel([p[1] for p in pairs])


def _log_mel(crops: list) -> torch.Tensor:
    """(len(crops), FRAMES, N_MELS) log-mel of CROP-sample crops (arrays or tensors)."""
    return torch.from_numpy(log_mel_frames(np.stack([np.asarray(c) for c in crops])))


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over 2N unit vectors; row i of `a` and `b` are positives."""
    z = torch.cat([a, b])
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    n = a.shape[0]
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)


def retrieval_accuracy(model: FingerprintEncoder, clean: torch.Tensor, view: torch.Tensor):
    """Share of degraded views whose nearest clean segment (of the set) is their own."""
    model.eval()
    with torch.inference_mode():
        sims = model(view) @ model(clean).T
    model.train()
    return float((sims.argmax(dim=1) == torch.arange(len(clean))).float().mean())


def save_weights(model: FingerprintEncoder, path: Path, settings: dict) -> None:
    """Write weights as `FingerprintModel.load` reads them."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    blob = {"config": model.config, "settings": settings, "state_dict": state}
    weights.write(path, "fingerprint", blob)


def update_settings(path: Path, **changes: object) -> None:
    """Rewrite the checkpoint at `path` with `changes` merged into its settings, and its ONNX
    export beside it."""
    blob = weights.read(path, "fingerprint")
    blob["settings"] = {**blob["settings"], **changes}
    weights.write(path, "fingerprint", blob)
    export(weights.FINGERPRINT.name, path)


def starting_settings(init_weights: Path | None) -> dict:
    """MODEL_SETTINGS, with the calibrations of `init_weights` (else of the shipped model):
    the best guess until the benchmark refits them for the new weights."""
    start = init_weights or weights.shipped_path("fingerprint", "training")
    inherited = weights.read(start, "fingerprint")
    calibrations = ("calibration", "source_calibration")
    return {**MODEL_SETTINGS, **{k: inherited["settings"][k] for k in calibrations}}


def train_fingerprint(
    audio_paths: Sequence[Path],
    noise_dirs: Path | Sequence[Path] | None,
    out_path: Path,
    steps: int = 3000,
    minutes: float | None = None,
    seed: int = 0,
    resume: bool = True,
    progress: Progress | None = None,
    val_paths: Sequence[Path] = (),
    init_weights: Path | None = None,
    batch_size: int = 128,
    dim: int = 64,
    width: int = 24,
    temperature: float = 0.05,
    lr: float = 2e-3,
    pca_dim: int | None = None,
    val_pairs: int = 512,
    pca_segments: int = 4096,
    room_chance: float = 0.0,
    phone_chance: float = 0.0,
    synth_dirs: Sequence[Path] = (),
    val_role: Role = "train",
) -> dict:
    """Train (or fine-tune from `init_weights`) and write the best weights to `out_path`.

    Stops after `steps` optimiser steps or `minutes` of wall time, whichever comes first;
    the learning rate follows a cosine over whichever budget is nearer. Validation uses
    `val_paths` (default: every tenth training track). With `pca_dim`, the best full-size
    weights are kept in `<out>.full.pt` and `out_path` gets them with the output reduced to
    `pca_dim` dimensions by PCA on `pca_segments` clean training segments. Interference is
    the "train" role of `noise_dirs` and `synth_dirs` (`NoiseBank.load`); the validation
    views draw `val_role`'s ("test" is refused). Returns a summary.
    """
    if val_role == "test":
        raise ValueError("test sources never train or validate the fingerprint")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_path.with_suffix(".ckpt")
    best_path = out_path.with_suffix(".full.pt") if pca_dim else out_path
    noise = NoiseBank.load(noise_dirs, "train", synth_dirs)
    val_noise = noise if val_role == "train" else NoiseBank.load(noise_dirs, val_role, synth_dirs)
    audio, bounds = load_audio(audio_paths)
    sampler = PairSampler(audio, bounds, noise, room_chance, phone_chance)
    val_audio = load_audio(val_paths) if val_paths else (audio, bounds[::10])
    val_sampler = PairSampler(*val_audio, val_noise, room_chance, phone_chance)
    val_clean, val_view = val_sampler.batch(val_pairs, np.random.default_rng(1))

    settings = starting_settings(init_weights)
    model = FingerprintEncoder(dim=dim, frames=FRAMES, width=width)
    if init_weights is not None:
        blob = weights.read(init_weights, "fingerprint")
        model = FingerprintEncoder(**blob["config"])
        model.load_state_dict(blob["state_dict"])
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    step, elapsed, best, history = 0, 0.0, -1.0, []
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimiser"])
        step, elapsed, best = int(ckpt["step"]), float(ckpt["elapsed"]), float(ckpt["best"])
    budget_s = math.inf if minutes is None else minutes * 60
    started = time.perf_counter() - elapsed
    last_save = time.perf_counter()
    model.train()
    while step < steps and time.perf_counter() - started < budget_s:
        done = max(step / steps, (time.perf_counter() - started) / budget_s)
        warm = min(1.0, (step + 1) / max(1, min(100, steps // 10)))
        for group in optimiser.param_groups:
            group["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
        clean, view = sampler.batch(batch_size, np.random.default_rng([seed, step]))
        loss = nt_xent(model(clean), model(view), temperature)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        history.append(float(loss.detach()))
        if progress is not None:
            progress(step, steps, history[-1])
        final = step >= steps or time.perf_counter() - started >= budget_s
        if step % 100 == 0 or final or time.perf_counter() - last_save > 120:
            accuracy = retrieval_accuracy(model, val_clean, val_view)
            if accuracy > best:
                best = accuracy
                save_weights(model, best_path, settings)
            state = {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "step": step,
                "elapsed": time.perf_counter() - started,
                "best": best,
            }
            replace_atomically(ckpt_path, partial(torch.save, state))
            last_save = time.perf_counter()
            if progress is None:  # the command line's log; callers get `progress` instead
                print(
                    f"step {step} loss {np.mean(history[-100:]):.3f} val_top1 {accuracy:.3f} "
                    f"best {best:.3f} lr {optimiser.param_groups[0]['lr']:.2e} "
                    f"{time.perf_counter() - started:.0f}s",
                    flush=True,
                )
    if pca_dim:
        blob = weights.read(best_path, "fingerprint")
        best_model = FingerprintEncoder(**blob["config"])
        best_model.load_state_dict(blob["state_dict"])
        best_model.reduce_dim(
            sampler.clean_batch(pca_segments, np.random.default_rng(seed)), pca_dim
        )
        save_weights(best_model, out_path, settings)
    export(weights.FINGERPRINT.name, out_path)
    return {
        "steps": step,
        "seconds": time.perf_counter() - started,
        "best_val_top1": best,
        "first_loss": history[0] if history else None,
        "last_loss": float(np.mean(history[-20:])) if history else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/simlib-corpus"))
    parser.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        default=[],
        help="extra corpora (their music, noise/ and midi-renders/ train only)",
    )
    parser.add_argument(
        "--synth-speech", type=Path, default=SYNTH_SPEECH_DIR, help="simlib.train.synth_speech"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--minutes", type=float, default=36.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=24, help="channels of the first conv")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--pca-dim", type=int, default=None)
    parser.add_argument("--init-weights", type=Path, default=None, help="fine-tune these")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument(
        "--room-chance", type=float, default=0.0, help="share of views from ROOM_RECIPE"
    )
    parser.add_argument(
        "--phone-chance",
        type=float,
        default=0.0,
        help="share of stretches heard through a phone across a room, paired with the "
        "library's telephone band",
    )
    args = parser.parse_args()
    corpus = args.corpus.expanduser()
    extras = [e.expanduser() for e in args.extra]
    split = load_split(corpus, extras)
    train = [t.path for t in split["train"]]
    val = [t.path for t in split["val"]]
    print(f"{len(train)} training tracks, {len(val)} validation tracks", flush=True)
    summary = train_fingerprint(
        train,
        [corpus / "noise", *(e / "noise" for e in extras)],
        args.out,
        steps=args.steps,
        minutes=args.minutes,
        seed=args.seed,
        resume=not args.no_resume,
        val_paths=val,
        batch_size=args.batch_size,
        width=args.width,
        pca_dim=args.pca_dim,
        init_weights=args.init_weights,
        lr=args.lr,
        room_chance=args.room_chance,
        phone_chance=args.phone_chance,
        synth_dirs=[args.synth_speech] if args.synth_speech.is_dir() else [],
        val_role="calib",
    )
    print(summary, flush=True)


if __name__ == "__main__":
    main()
