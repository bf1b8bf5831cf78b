#!/usr/bin/env python3
"""Render the MIDI files of a build_corpus.py --midi manifest to audio with several soundfonts.

    python render_midi.py --manifest ~/simlib-corpus/midi/manifest.csv --out ~/simlib-corpus-extra

For every MIDI file in the manifest and every soundfont, runs

    fluidsynth -ni -F tmp.wav -r 16000 -g 0.6 SOUNDFONT file.mid

and writes OUT/midi-renders/<soundfont>/<package>/<name>.flac (16 kHz, mono, 16-bit FLAC; the stereo
render is averaged to mono and cut to the MIDI end time + --max-tail (5) seconds, as fluidsynth goes
on rendering while notes ring on). Renders shorter than --min-seconds (30) or silent (peak below
--silence-dbfs, -60 dBFS) are not kept; they are listed in OUT/midi-renders/skipped.csv.
OUT/midi-renders/manifest.csv has one row per kept render: path (relative to OUT), midi_path (as in
the MIDI manifest, relative to its corpus folder), package, soundfont, seconds, midi_seconds (pretty_midi
end time from the MIDI manifest), peak_dbfs, license. OUT/midi-renders/soundfonts.csv lists the
soundfont files used (name, path, bytes).

Re-running is cheap: an existing output file (or a '.skip' marker left for a short/silent render)
is not rendered again. Rendering is deterministic for a given fluidsynth and soundfont version.

Default soundfonts (those of them that are installed):
  FluidR3_GM             /usr/share/sounds/sf2/FluidR3_GM.sf2            (apt: fluid-soundfont-gm)
  TimGM6mb               /usr/share/sounds/sf2/TimGM6mb.sf2              (apt: timgm6mb-soundfont)
  MuseScore_General_Lite /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 (apt: musescore-general-soundfont-small)
  OPL-3_FM_128M          /usr/share/sounds/sf2/OPL-3_FM_128M.sf2         (apt: opl3-soundfont)
Others: --soundfont NAME=PATH (repeatable; replaces the defaults).

Needs: the fluidsynth program (apt: fluidsynth), pip packages numpy and soundfile.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

DEFAULT_SOUNDFONTS = [
    ("FluidR3_GM", "/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    ("TimGM6mb", "/usr/share/sounds/sf2/TimGM6mb.sf2"),
    ("MuseScore_General_Lite", "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"),
    ("OPL-3_FM_128M", "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"),
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def render_one(job: dict) -> dict:
    """Render one (MIDI, soundfont) pair; returns the job with seconds/peak_dbfs or skip=reason."""
    import numpy as np
    import soundfile as sf
    dst, marker = job["dst"], job["dst"] + ".skip"
    if os.path.exists(dst):
        info = sf.info(dst)
        return dict(job, seconds=round(info.duration, 3), peak_dbfs=job.get("peak_dbfs", ""), cached=True)
    if os.path.exists(marker):
        return dict(job, skip=open(marker).read().strip() or "skipped earlier", cached=True)
    if job["only_existing"]:
        return dict(job, skip="not rendered yet (--only-existing)")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="render_midi_") as td:
        wav = os.path.join(td, "out.wav")
        cmd = ["fluidsynth", "-ni", "-F", wav, "-r", str(job["rate"]), "-g", str(job["gain"]), job["sf_path"],
               job["midi_file"]]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=job["timeout"])
        except subprocess.TimeoutExpired:
            return dict(job, skip=f"fluidsynth timed out after {job['timeout']} s")
        if r.returncode != 0 or not os.path.exists(wav) or os.path.getsize(wav) <= 44:
            msg = (r.stderr or r.stdout).strip().splitlines()
            return dict(job, skip=f"fluidsynth failed (rc {r.returncode}): {msg[-1] if msg else 'no output'}"[:300])
        y, rate = sf.read(wav, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    try:  # fluidsynth keeps rendering while voices ring on (long pads); cut to the MIDI end + max_tail
        limit = int((float(job["midi_seconds"]) + job["max_tail"]) * rate)
        y = y[:limit] if job["max_tail"] >= 0 and limit > 0 else y
    except (TypeError, ValueError):
        pass
    secs = len(y) / rate
    peak = float(np.abs(y).max()) if len(y) else 0.0
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else -999.0
    reason = ""
    if secs < job["min_seconds"]:
        reason = f"too short ({secs:.1f} s < {job['min_seconds']:g} s)"
    elif peak_dbfs < job["silence_dbfs"]:
        reason = f"silent (peak {peak_dbfs:.1f} dBFS)"
    if reason:
        with open(marker, "w") as f:
            f.write(reason + "\n")
        return dict(job, skip=reason)
    tmp = dst + ".part"
    sf.write(tmp, np.clip(y, -1, 1), rate, subtype="PCM_16", format="FLAC")
    os.replace(tmp, dst)
    return dict(job, seconds=round(secs, 3), peak_dbfs=round(peak_dbfs, 1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", required=True, help="OUT/midi/manifest.csv written by build_corpus.py --midi")
    ap.add_argument("--out", required=True, help="output corpus folder (renders go to OUT/midi-renders)")
    ap.add_argument("--soundfont", action="append", default=[], metavar="NAME=PATH",
                    help="soundfont to render with (repeatable; default: the installed ones of the list above)")
    ap.add_argument("--rate", type=int, default=16000, help="sample rate (default 16000)")
    ap.add_argument("--gain", type=float, default=0.6, help="fluidsynth gain -g (default 0.6)")
    ap.add_argument("--min-seconds", type=float, default=30.0, help="shortest render kept (default 30)")
    ap.add_argument("--silence-dbfs", type=float, default=-60.0, help="renders with a lower peak are dropped")
    ap.add_argument("--max-tail", type=float, default=5.0,
                    help="cut renders to the MIDI end time (manifest 'seconds') plus this many seconds; -1: no cut")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for one fluidsynth run")
    ap.add_argument("--only-existing", action="store_true",
                    help="render nothing; just write the manifests for the renders already there")
    ap.add_argument("--jobs", type=int, default=1, help="parallel fluidsynth processes (default 1)")
    args = ap.parse_args(argv)

    if shutil.which("fluidsynth") is None:
        sys.exit("render_midi: error: fluidsynth not found (apt-get install fluidsynth)")
    try:
        import numpy  # noqa: F401
        import soundfile  # noqa: F401
    except ImportError as e:
        sys.exit(f"render_midi: error: missing Python package {e.name} (pip install numpy soundfile)")
    if args.soundfont:
        sfs = []
        for s in args.soundfont:
            if "=" not in s:
                sys.exit(f"render_midi: error: --soundfont wants NAME=PATH, got {s!r}")
            name, path = s.split("=", 1)
            if not os.path.isfile(path):
                sys.exit(f"render_midi: error: soundfont not found: {path}")
            sfs.append((name, path))
    else:
        sfs = [(n, p) for n, p in DEFAULT_SOUNDFONTS if os.path.isfile(p)]
        if not sfs:
            sys.exit("render_midi: error: none of the default soundfonts is installed")
    manifest = os.path.abspath(os.path.expanduser(args.manifest))
    if not os.path.isfile(manifest):
        sys.exit(f"render_midi: error: manifest not found: {manifest}")
    corpus = os.path.dirname(os.path.dirname(manifest))  # manifest paths are relative to the corpus folder
    out = os.path.abspath(os.path.expanduser(args.out))
    rdir = os.path.join(out, "midi-renders")
    os.makedirs(rdir, exist_ok=True)
    rows = list(csv.DictReader(open(manifest, newline="", encoding="utf-8")))
    log(f"{len(rows)} MIDI files x {len(sfs)} soundfonts ({', '.join(n for n, _ in sfs)}) -> {rdir}")
    jobs = []
    for name, path in sfs:
        for r in rows:
            midi_file = os.path.join(corpus, r["path"])
            if not os.path.isfile(midi_file):
                sys.exit(f"render_midi: error: MIDI file listed in the manifest is missing: {midi_file}")
            stem = os.path.splitext(os.path.basename(r["path"]))[0]
            rel = os.path.join("midi-renders", name, r["package"], stem + ".flac")
            jobs.append(dict(sf_name=name, sf_path=path, midi_file=midi_file, midi_path=r["path"],
                             package=r["package"], midi_seconds=r.get("seconds", ""), license=r.get("license", ""),
                             rel=rel, dst=os.path.join(out, rel), rate=args.rate, gain=args.gain,
                             min_seconds=args.min_seconds, max_tail=args.max_tail, only_existing=args.only_existing, silence_dbfs=args.silence_dbfs, timeout=args.timeout))
    t0 = time.time()
    results = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        for k, res in enumerate(ex.map(render_one, jobs), 1):
            results.append(res)
            if not res.get("cached") and (k % 20 == 0 or "skip" in res):
                what = res["skip"] if "skip" in res else "%.0f s" % res["seconds"]
                log(f"  {k}/{len(jobs)} {res['rel']}: {what}")
    kept = [r for r in results if "skip" not in r]
    skipped = [r for r in results if "skip" in r]
    # peak of files rendered in an earlier run is not stored in the FLAC; keep it from the old manifest
    old = {}
    mpath = os.path.join(rdir, "manifest.csv")
    if os.path.exists(mpath):
        old = {r["path"]: r for r in csv.DictReader(open(mpath, newline="", encoding="utf-8"))}
    fields = ["path", "midi_path", "package", "soundfont", "seconds", "midi_seconds", "peak_dbfs", "license"]
    with open(mpath + ".part", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in sorted(kept, key=lambda r: r["rel"]):
            peak = r["peak_dbfs"] if r["peak_dbfs"] != "" else old.get(r["rel"], {}).get("peak_dbfs", "")
            if peak == "":  # rendered by an earlier run whose manifest did not list it: measure the file
                import numpy as np
                import soundfile as sf
                y, _sr = sf.read(r["dst"], dtype="float32")
                pk = float(np.abs(y).max()) if len(y) else 0.0
                peak = round(20 * np.log10(pk), 1) if pk > 0 else -999.0
            w.writerow(dict(path=r["rel"], midi_path=r["midi_path"], package=r["package"], soundfont=r["sf_name"],
                            seconds=r["seconds"], midi_seconds=r["midi_seconds"], peak_dbfs=peak,
                            license=r["license"]))
    os.replace(mpath + ".part", mpath)
    with open(os.path.join(rdir, "skipped.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["midi_path", "package", "soundfont", "reason"])
        w.writeheader()
        for r in sorted(skipped, key=lambda r: r["rel"]):
            w.writerow(dict(midi_path=r["midi_path"], package=r["package"], soundfont=r["sf_name"], reason=r["skip"]))
    with open(os.path.join(rdir, "soundfonts.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "path", "bytes"])
        for name, path in sfs:
            w.writerow([name, path, os.path.getsize(path)])
    size = sum(os.path.getsize(r["dst"]) for r in kept)
    for name, _ in sfs:
        ks = [r for r in kept if r["sf_name"] == name]
        log(f"  {name}: {len(ks)} renders, {sum(r['seconds'] for r in ks) / 60:.1f} min")
    log(f"DONE: {len(kept)} renders kept ({sum(r['seconds'] for r in kept) / 60:.1f} min, {size / 1e6:.0f} MB),"
        f" {len(skipped)} skipped, wall {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
