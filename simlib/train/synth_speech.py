"""Synthetic talkers (espeak-ng and flite voices) as speech interference, one folder per voice.

`python -m simlib.train.synth_speech --out DIR` writes DIR/<engine>-<voice>/NNN.wav (16 kHz
mono): sentences from the machine's license texts, each read at a random rate and pitch.
Which voices train, calibrate or test is `simlib.train.augment.voice_role`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from simlib.audio import ANALYSIS_RATE_HZ, decode
from simlib.train.augment import SYNTH_SPEECH_DIR

DEFAULT_OUT = SYNTH_SPEECH_DIR
TEXT_SOURCES = sorted(Path("/usr/share/common-licenses").glob("*"))
ESPEAK_VOICES = [
    "en-us",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "nl",
    "pl",
    "ru",
    "sv",
    "fi",
    "tr",
    "hi",
    "cmn",
    "ja",
    "ko",
    "id",
    "sk",
    "hr",
    "lt",
    "lv",
    "et",
    "is",
    "ga",
    "sq",
    "en-gb",
    "cs",
    "ro",
    "hu",
    "bg",
    "uk",
    "ca",
    "af",
    "el",
    "da",
    "vi",
    "en-029",
    "sw",
    "ta",
    "eu",
    "nb",
]
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
ESPEAK_VARIANTS = ("", "+m1", "+m3", "+m5", "+f1", "+f2", "+f4", "+croak", "+klatt")


def sentences(limit: int = 2000) -> list[str]:
    """Plain sentences of 6-30 words from the license texts on this machine."""
    text = " ".join(p.read_text(errors="ignore") for p in TEXT_SOURCES if p.is_file())
    parts = re.split(r"(?<=[.;:!?])\s+", re.sub(r"\s+", " ", text))
    keep = [s for s in parts if 6 <= len(s.split()) <= 30 and not re.search(r"[<>{}|@]", s)]
    return keep[:limit]


def synthesise(engine: str, voice: str, text: str, rng: np.random.Generator, wav: Path) -> None:
    if engine == "espeak-ng":
        variant = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
        cmd = ["espeak-ng", "-v", voice + variant, "-s", str(int(rng.integers(130, 200)))]
        cmd += ["-p", str(int(rng.integers(25, 75))), "-w", str(wav), text]
    else:
        stretch = f"{rng.uniform(0.8, 1.25):.2f}"
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}"]
        cmd += ["--setf", f"int_f0_target_mean={int(rng.integers(80, 220))}", "-t", text, wav]
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--per-voice", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts = sentences()
    voices = [("espeak-ng", v) for v in ESPEAK_VOICES] + [("flite", v) for v in FLITE_VOICES]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        for i, (engine, voice) in enumerate(voices):
            if shutil.which(engine) is None:
                raise SystemExit(f"{engine} is not installed (apt-get install espeak-ng flite)")
            folder = args.out.expanduser() / f"{engine}-{voice}"
            if folder.is_dir() and len(list(folder.glob("*.wav"))) >= args.per_voice:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([args.seed, i])
            for n in range(args.per_voice):
                text = " ".join(texts[int(j)] for j in rng.integers(len(texts), size=2))
                synthesise(engine, voice, text, rng, raw)
                sf.write(folder / f"{n:03d}.wav", decode(raw), ANALYSIS_RATE_HZ, "PCM_16")
            print(f"{engine}-{voice}: {args.per_voice} utterances", flush=True)


if __name__ == "__main__":
    main()
