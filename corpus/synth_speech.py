#!/usr/bin/env python3
"""Synthetic talkers for simlib's speech interference: render sentences with several TTS engines and voices.

    python synth_speech.py --out ~/simlib-corpus-extra [--per-voice 40] [--seed 1]

Writes OUT/noise/synth/<engine>-<voice>/<NNN>.wav (16 kHz, mono, 16-bit PCM) and
OUT/noise/synth/manifest.csv with: path (relative to OUT), kind ('speech'), family (<engine>-<voice>, the
unit to keep apart between training and test), engine, voice, language, speed (engine-specific rate
setting), seconds, text_source, text.

Text (nothing is downloaded):
  * English: sentences from the docstrings of a fixed list of Python standard-library modules
    (their functions and classes), split into sentences and filtered to plain prose of 5-25 words.
  * Other languages: translated messages (msgstr) from the gettext catalogs that Debian installs under
    /usr/share/locale/<lang>/LC_MESSAGES/ for coreutils, dpkg, apt, bash, grep, tar, ... filtered to
    plain sentences of 4-25 words. A language without catalogs is skipped with a message.

Engines (Debian packages): espeak-ng (apt: espeak-ng), flite (apt: flite), festival with the voices
festvox-kallpc16k and festvox-us-slt-hts (apt: festival festvox-kallpc16k festvox-us-slt-hts).
An engine that is not installed is skipped with a message. Each clip gets one speed, picked
deterministically from the engine's speed list; --seed changes which sentences each voice speaks.

Re-running is cheap: existing clips are not rendered again (the manifest is rewritten).
"""
from __future__ import annotations

import argparse
import csv
import gettext
import glob
import hashlib
import importlib
import inspect
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

# English text source: docstrings of these standard-library modules (fixed list, sorted walk)
STDLIB_MODULES = ["argparse", "bisect", "calendar", "collections", "csv", "datetime", "decimal", "difflib",
                  "email.message", "fractions", "ftplib", "functools", "gettext", "glob", "gzip", "heapq", "hmac",
                  "html.parser", "http.client", "imaplib", "inspect", "ipaddress", "itertools", "json", "locale",
                  "logging", "mailbox", "mimetypes", "netrc", "numbers", "operator", "optparse", "os", "pathlib",
                  "pickle", "pprint", "queue", "random", "sched", "secrets", "shelve", "shlex", "shutil", "smtplib",
                  "socket", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading",
                  "timeit", "turtle", "typing", "unittest", "urllib.parse", "uuid", "wave", "weakref", "zipfile"]
# Other languages: gettext catalogs of these (mostly Essential/required) Debian packages
MO_DOMAINS = ["coreutils", "dpkg", "apt", "bash", "grep", "tar", "findutils", "diffutils", "sed", "gettext-runtime",
              "gettext-tools", "libc", "util-linux", "adduser", "debconf", "gnupg2", "wget", "glib20", "gtk30", "git"]

# (engine, voice, language, label). espeak-ng voice variants (+m3, +f2, ...) change timbre/pitch.
VOICES = [
    ("espeak-ng", "en-us", "en", "en-us"),
    ("espeak-ng", "en-gb+f3", "en", "en-gb+f3"),
    ("espeak-ng", "en-gb-scotland+m3", "en", "en-gb-scotland+m3"),
    ("espeak-ng", "en-029+f2", "en", "en-029+f2"),
    ("espeak-ng", "de+m2", "de", "de+m2"),
    ("espeak-ng", "de+f4", "de", "de+f4"),
    ("espeak-ng", "fr-fr+m1", "fr", "fr-fr+m1"),
    ("espeak-ng", "fr-fr+f2", "fr", "fr-fr+f2"),
    ("espeak-ng", "es+m4", "es", "es+m4"),
    ("espeak-ng", "it+f1", "it", "it+f1"),
    ("espeak-ng", "ru+m3", "ru", "ru+m3"),
    ("espeak-ng", "pt-br+f3", "pt", "pt-br+f3"),
    ("espeak-ng", "nl+m5", "nl", "nl+m5"),
    ("espeak-ng", "pl+croak", "pl", "pl+croak"),
    ("flite", "kal16", "en", "kal16"),
    ("flite", "awb", "en", "awb"),
    ("flite", "rms", "en", "rms"),
    ("flite", "slt", "en", "slt"),
    ("festival", "kal_diphone", "en", "kal_diphone"),
    ("festival", "cmu_us_slt_arctic_hts", "en", "cmu_us_slt_arctic_hts"),
]
SPEEDS = {"espeak-ng": [120, 150, 175, 210, 250],  # words per minute (-s)
          "flite": [0.8, 0.9, 1.0, 1.15, 1.3],  # duration_stretch (larger = slower)
          "festival": [0.8, 0.9, 1.0, 1.15, 1.3]}  # Duration_Stretch
LICENSES = {"espeak-ng": "GPL-3+ (espeak-ng)", "flite": "BSD-like (flite, CMU voices)",
            "festival": "festival: X11-like; kallpc16k: custom free; us-slt-hts: BSD-like"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


PLAIN = re.compile(r"^[^\W\d_][\w\s,;:'’\-–.!?()«»„“”\"]*[.!?]$", re.U)


def clean_sentence(s: str, min_words: int, max_words: int) -> str:
    s = re.sub(r"\s+", " ", s).strip()
    if not (min_words <= len(s.split()) <= max_words):
        return ""
    if re.search(r"[%{}<>\[\]\\/_=*#@|`~^$&+]|--|\d|\.\.|\b[A-Za-z]+\(|\b\w+\.\w+\b", s):
        return ""
    if "(" in s or ")" in s:
        return ""
    if not PLAIN.match(s):
        return ""
    return s


def english_sentences() -> list[str]:
    out: list[str] = []
    seen = set()
    for name in STDLIB_MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:
            continue
        docs = [inspect.getdoc(mod) or ""]
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == mod.__name__:
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            for para in re.split(r"\n\s*\n", doc):
                if para.lstrip().startswith((">>>", "...", ":", "-", "*")):
                    continue
                for s in re.split(r"(?<=[.!?])\s+", para.replace("\n", " ")):
                    c = clean_sentence(s, 5, 25)
                    if c and c.lower() not in seen:
                        seen.add(c.lower())
                        out.append(c)
    return out


def catalog_sentences(lang: str) -> list[str]:
    out: list[str] = []
    seen = set()
    for dom in MO_DOMAINS:
        p = f"/usr/share/locale/{lang}/LC_MESSAGES/{dom}.mo"
        if not os.path.isfile(p):
            continue
        try:
            with open(p, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog  # msgid -> msgstr
        except Exception:
            continue
        for k in sorted(cat, key=lambda k: str(k)):
            v = cat[k]
            if not isinstance(v, str) or not k or isinstance(k, tuple):
                continue
            for s in re.split(r"(?<=[.!?])\s+", v.replace("\n", " ")):
                s = s.strip().rstrip(":;,").strip()
                if s and s[-1] not in ".!?":
                    s += "."
                c = clean_sentence(s, 4, 25)
                if c and c.lower() not in seen:
                    seen.add(c.lower())
                    out.append(c)
    return out


def to_16k_mono(src: str, dst: str) -> float:
    import numpy as np
    import soundfile as sf
    y, sr = sf.read(src, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != 16000:
        import av  # PyAV's resampler (same as build_corpus.py)
        res = av.AudioResampler(format="flt", layout="mono", rate=16000)
        fr = av.AudioFrame.from_ndarray(y.reshape(1, -1), format="flt", layout="mono")
        fr.sample_rate = sr
        chunks = [r.to_ndarray().reshape(-1) for r in res.resample(fr)]
        chunks += [r.to_ndarray().reshape(-1) for r in res.resample(None)]
        y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    tmp = dst + ".part"
    sf.write(tmp, np.clip(y, -1, 1), 16000, subtype="PCM_16", format="WAV")
    os.replace(tmp, dst)
    return len(y) / 16000


def synth(engine: str, voice: str, speed, text: str, wav: str, td: str) -> None:
    if engine == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-w", wav, text]
    elif engine == "flite":
        cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={speed}", "-t", text, "-o", wav]
    else:
        txt = os.path.join(td, "in.txt")
        with open(txt, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        cmd = ["text2wave", "-o", wav, "-eval", f"(voice_{voice})",
               "-eval", f"(Parameter.set 'Duration_Stretch {speed})", txt]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or not os.path.exists(wav) or os.path.getsize(wav) <= 44:
        raise RuntimeError(f"{' '.join(cmd[:4])} ...: rc {r.returncode}: {(r.stderr or r.stdout).strip()[-200:]}")


def engine_ok(engine: str, voice: str) -> str:
    """'' if usable, else why not."""
    exe = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}[engine]
    if shutil.which(exe) is None:
        return f"{exe} not installed"
    if engine == "festival":
        if not glob.glob(f"/usr/share/festival/voices/*/{voice}"):
            return f"festival voice {voice} not installed"
    if engine == "flite":
        r = subprocess.run(["flite", "-lv"], capture_output=True, text=True)
        if voice not in r.stdout.split():
            return f"flite voice {voice} not built in"
    return ""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="corpus folder; clips go to OUT/noise/synth")
    ap.add_argument("--per-voice", type=int, default=40, help="sentences per voice (default 40)")
    ap.add_argument("--seed", type=int, default=1, help="seed for the choice of sentences (default 1)")
    args = ap.parse_args(argv)
    try:
        import av, numpy, soundfile  # noqa: F401,E401
    except ImportError as e:
        sys.exit(f"synth_speech: error: missing Python package {e.name} (pip install av numpy soundfile)")
    out = os.path.abspath(os.path.expanduser(args.out))
    sdir = os.path.join(out, "noise", "synth")
    os.makedirs(sdir, exist_ok=True)
    t0 = time.time()
    pools: dict[str, tuple[str, list[str]]] = {}
    for lang in sorted({v[2] for v in VOICES}):
        if lang == "en":
            pools[lang] = ("python-stdlib-docstrings", english_sentences())
        else:
            pools[lang] = ("gettext-catalogs:" + ",".join(MO_DOMAINS[:3]) + ",...", catalog_sentences(lang))
        log(f"text pool {lang}: {len(pools[lang][1])} sentences ({pools[lang][0]})")
    rows, failed = [], 0
    for engine, voice, lang, label in VOICES:
        why = engine_ok(engine, voice)
        family = f"{engine}-{label}"
        if why:
            log(f"SKIP {family}: {why}")
            continue
        src, pool = pools[lang]
        if not pool:
            log(f"SKIP {family}: no {lang} sentences (no gettext catalogs under /usr/share/locale/{lang})")
            continue
        rng = random.Random(f"{args.seed}:{family}")
        picks = rng.sample(pool, min(args.per_voice, len(pool)))
        fdir = os.path.join(sdir, family)
        os.makedirs(fdir, exist_ok=True)
        n0 = len(rows)
        with tempfile.TemporaryDirectory(prefix="synth_speech_") as td:
            for i, text in enumerate(picks):
                h = int(hashlib.md5(f"{family}:{text}".encode()).hexdigest()[:8], 16)
                speed = SPEEDS[engine][h % len(SPEEDS[engine])]
                rel = os.path.join("noise", "synth", family, f"{i:03d}.wav")
                dst = os.path.join(out, rel)
                if not os.path.exists(dst):
                    raw = os.path.join(td, "raw.wav")
                    try:
                        synth(engine, voice, speed, text, raw, td)
                        secs = to_16k_mono(raw, dst)
                    except Exception as e:  # one bad sentence should not stop the run
                        failed += 1
                        log(f"  WARNING: {family} #{i}: {e}")
                        continue
                else:
                    import soundfile as sf
                    secs = sf.info(dst).duration
                rows.append(dict(path=rel, kind="speech", family=family, engine=engine, voice=voice, language=lang,
                                 speed=speed, seconds=round(secs, 3), text_source=src, license=LICENSES[engine],
                                 text=text))
        rs = rows[n0:]
        log(f"{family}: {len(rs)} clips, {sum(r['seconds'] for r in rs) / 60:.1f} min")
    fields = ["path", "kind", "family", "engine", "voice", "language", "speed", "seconds", "text_source", "license",
              "text"]
    with open(os.path.join(sdir, "manifest.csv.part"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in sorted(rows, key=lambda r: r["path"]):
            w.writerow(r)
    os.replace(os.path.join(sdir, "manifest.csv.part"), os.path.join(sdir, "manifest.csv"))
    size = sum(os.path.getsize(os.path.join(out, r["path"])) for r in rows)
    log(f"DONE: {len(rows)} clips from {len({r['family'] for r in rows})} voices,"
        f" {sum(r['seconds'] for r in rows) / 60:.1f} min, {size / 1e6:.0f} MB, {failed} failed,"
        f" wall {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
