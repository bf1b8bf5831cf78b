#!/usr/bin/env python3
"""Impulse responses shipped in Debian packages, as 16 kHz mono WAV with a manifest.

    python extract_irs.py --out ~/simlib-corpus-extra --cache ~/.cache/simlib-debs

Debian 12 has no package with a set of measured room impulse responses (convolution reverbs such as
jconvolver, ir.lv2, x42 zeroconvo, lsp-plugins ship none). What there is:

  room-measured      guitarix-common: usr/share/gx_head/sounds/greathall.wav, the stereo hall IR that
                     Guitarix's convolver uses by default (48 kHz, 2.3 s); each channel is written as its own IR.
  room-sparse-approx rakarrack: usr/share/rakarrack/*.rvb, Reverbtron files. Each is a ~1500-tap
                     approximation (time, amplitude pairs) that rakarrack's 'rakverb' made from a real
                     reverb recording (first line names it: chamber, concrete room, church, wood room, hall,
                     studio, Santa Lucia). Rendered here as a sparse tap IR; not a real IR, but with the
                     rooms' timing/decay. 9.rvb ('/home/invented', 24 taps) is synthetic and is skipped.
  cabinet            guitar speaker-cabinet IRs (short, band-limited 'device' colourations): guitarix-common
                     usr/share/gx_head/sounds/{amps,bands}/*.wav and rakarrack usr/share/rakarrack/[1-9].wav
                     (Convolotron).

Not taken: soundscaperenderer-common's HRIRs (anechoic head-related IRs of KEMAR/FABIAN, no room) and
x42-plugins' delta-48k.wav (a unit impulse).

Output: OUT/noise/ir/<kind>/<package>__<name>.wav and OUT/noise/ir/manifest.csv with path, kind,
source_package, source, seconds, orig_rate, rt30_s (reverberation time estimated from the Schroeder
decay between -5 and -35 dB, empty where the decay does not reach -35 dB), license.
Uses apt-get download and dpkg-deb like build_corpus.py; re-running reuses the cached .deb files.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import os
import re
import subprocess
import sys
import tarfile

PACKAGES = {"guitarix-common": "GPL-2+", "rakarrack": "GPL-2"}


def member_filter(pkg: str, name: str) -> str:
    if pkg == "guitarix-common":
        if name.endswith("gx_head/sounds/greathall.wav"):
            return "room-measured"
        if re.search(r"gx_head/sounds/(amps|bands)/[^/]+\.wav$", name):
            return "cabinet"
    if pkg == "rakarrack":
        if re.search(r"usr/share/rakarrack/\d+\.rvb$", name):
            return "room-sparse-approx"
        if re.search(r"usr/share/rakarrack/\d+\.wav$", name):
            return "cabinet"
    return ""


def deb_members(deb: str, pkg: str):
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tf:
        for m in tf:
            if m.isfile():
                name = m.name.lstrip("./")
                kind = member_filter(pkg, name)
                if kind:
                    yield name, kind, tf.extractfile(m).read()
    proc.wait()


def resample(y, sr: int, rate: int = 16000):
    import av
    import numpy as np
    if sr == rate:
        return y.astype(np.float32)
    res = av.AudioResampler(format="flt", layout="mono", rate=rate)
    fr = av.AudioFrame.from_ndarray(y.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
    fr.sample_rate = sr
    out = [r.to_ndarray().reshape(-1) for r in res.resample(fr)] + [r.to_ndarray().reshape(-1) for r in res.resample(None)]
    return np.concatenate(out)


def rvb_to_ir(text: str, rate: int = 16000):
    """Render a Reverbtron .rvb file (name / two numbers / tap count / 'time,amplitude' lines) as a tap IR."""
    import numpy as np
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    taps = []
    for l in lines[3:]:
        try:
            t, a = (float(x) for x in l.split(","))
        except ValueError:
            continue
        taps.append((t, a))
    if len(taps) < 100:
        return lines[0] if lines else "", None
    n = int(round(max(t for t, _ in taps) * rate)) + 1
    ir = np.zeros(n, np.float32)
    for t, a in taps:
        ir[int(round(t * rate))] += a
    return lines[0], ir


def rt30(ir, rate: int):
    import numpy as np
    e = np.cumsum((ir.astype(np.float64) ** 2)[::-1])[::-1]
    if e[0] <= 0:
        return ""
    db = 10 * np.log10(e / e[0] + 1e-30)
    i5, i35 = np.argmax(db <= -5), np.argmax(db <= -35)
    if not (db <= -35).any() or i35 <= i5:
        return ""
    return round(2.0 * (i35 - i5) / rate, 3)  # 30 dB of decay x 2 = RT60 estimate


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="corpus folder; IRs go to OUT/noise/ir")
    ap.add_argument("--cache", help="cache folder (its debs/ subfolder holds the .deb files; default OUT/cache)")
    args = ap.parse_args(argv)
    import numpy as np
    import soundfile as sf
    out = os.path.abspath(os.path.expanduser(args.out))
    debdir = os.path.join(os.path.abspath(os.path.expanduser(args.cache or os.path.join(out, "cache"))), "debs")
    irdir = os.path.join(out, "noise", "ir")
    os.makedirs(debdir, exist_ok=True)
    rows = []
    for pkg, lic in PACKAGES.items():
        debs = sorted(glob.glob(os.path.join(debdir, glob.escape(pkg) + "_*.deb")))
        if not debs:
            r = subprocess.run(["apt-get", "download", pkg], cwd=debdir, capture_output=True, text=True)
            debs = sorted(glob.glob(os.path.join(debdir, glob.escape(pkg) + "_*.deb")))
            if r.returncode != 0 or not debs:
                sys.exit(f"extract_irs: error: apt-get download {pkg} failed: {r.stderr.strip()[-300:]}")
        for name, kind, data in deb_members(debs[-1], pkg):
            base = os.path.splitext(os.path.basename(name))[0]
            if kind == "room-sparse-approx":
                label, ir = rvb_to_ir(data.decode("utf-8", "replace"))
                if ir is None:
                    print(f"skip {pkg}:{name}: synthetic/too few taps ({label})")
                    continue
                src = "-".join(os.path.splitext(label.strip())[0].split("/")[-2:])  # e.g. Concrete-16, Chamber
                chans, sr = [(f"{base}-{re.sub(r'[^A-Za-z0-9]+', '_', src).strip('_')}", ir)], 16000
            else:
                y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
                if y.shape[1] == 1:
                    chans = [(base, y[:, 0])]
                else:
                    chans = [(f"{base}-ch{c}", y[:, c]) for c in range(y.shape[1])]
            for label, y in chans:
                y16 = resample(y, sr)
                peak = float(np.abs(y16).max())
                if peak <= 0:
                    continue
                y16 = y16 / peak * 0.99  # peak-normalised
                rel = os.path.join("noise", "ir", kind, re.sub(r"[^\w.+-]+", "_", f"{pkg}__{label}") + ".wav")
                os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
                sf.write(os.path.join(out, rel), y16, 16000, subtype="FLOAT", format="WAV")
                rows.append(dict(path=rel, kind=kind, source_package=pkg, source=name, seconds=round(len(y16) / 16000, 3),
                                 orig_rate=sr, rt30_s=rt30(y16, 16000), license=lic))
    with open(os.path.join(irdir, "manifest.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["path", "kind", "source_package", "source", "seconds", "orig_rate", "rt30_s",
                                          "license"])
        w.writeheader()
        for r in sorted(rows, key=lambda r: r["path"]):
            w.writerow(r)
    for kind in ("room-measured", "room-sparse-approx", "cabinet"):
        print(f"{kind}: {sum(1 for r in rows if r['kind'] == kind)} IRs")
    print(f"DONE: {len(rows)} IRs in {irdir}")


if __name__ == "__main__":
    main()
