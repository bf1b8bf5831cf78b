"""Footprint of the lean runtime: today's PyTorch runtime and the ONNX one, installed side by side.

    python benchmarks/footprint.py --corpus ~/simlib-corpus [--workdir DIR] [--baseline b1b5225]
        [--tracks N] [--keep]

Builds two fresh virtual environments with the Python running this script: "today" =
`pip install` of commit `--baseline` (PyTorch), "lean" = `pip install` of this checkout's
HEAD (no extras). Each runtime is then driven only through its own `simlib` command, with
its own SIMLIB_HOME, so it uses the weights its package ships. Measured per runtime:

1. install wall time, venv size (sum of file sizes), whether `import torch` works;
2. cold `simlib identify clip.wav` on the example library (median of 5 runs, timed from
   outside), beside a bare `python -c "import torch"` in today's venv (median of 5);
3. `simlib scan --workers 2` of the corpus library (or `--tracks N` of it, spread over the
   manifest): x real time, peak PSS sum of the process tree and peak RSS of its largest
   process (sampled every 0.2 s); then the wall time of a rescan of the unchanged library;
4. a fixed accuracy probe on that scanned library: 60 seeded 5 s clips with white noise
   at 10 dB SNR through one `simlib identify --json` (top-1 = right file and offset within
   +-1.5 s), and `simlib similar --json` for up to 40 tracks (album-P@10, manifest labels).

Prints one markdown table (today | lean | goal), the machine, the command, and the load
average at start and end. Everything lives in a temporary folder (or `--workdir`) that is
removed unless `--keep`; with `--keep --workdir DIR`, a later run reuses a venv whose commit
matches instead of reinstalling it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from process_memory import PeakMemory

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
COLD_RUNS = 5
SCAN_WORKERS = 2
PROBE_SEED = 18
PROBE_CLIPS = 60
PROBE_CLIP_S = 5.0
PROBE_SNR_DB = 10.0
PROBE_QUERIES = 40
OFFSET_TOLERANCE_S = 1.5
TOP = 10
MIN_ALBUM_TRACKS = 5
"""A similar-probe query's album has at least this many tracks in the scanned library."""
IDLE_LOAD_PER_CORE = 0.25
"""Above this 1-minute load average per core (at start or end) the machine is not idle."""
MARKER = "simlib-footprint-commit"
"""File in a venv naming the commit installed in it, for reuse with --keep."""
MADE = ("homes", "library", "probe", "example-library")
"""Folders of the work folder that each run makes afresh."""
DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "SIMLIB_HOME")
"""Variables of this shell that a user's machine would not have (no bytecode cache would
make every cold start compile simlib afresh)."""

CUT_CLIPS = r"""
import json, sys, wave
import av, numpy as np

RATE = 16000

def decode(path, start, seconds, seek=True):
    with av.open(path) as container:
        stream = container.streams.audio[0]
        if seek and start > 2:
            container.seek(int((start - 2) / stream.time_base), stream=stream)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks, first, got = [], None, 0
        for frame in container.decode(stream):
            first = float(frame.time or 0.0) if first is None else first
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                got += chunks[-1].size
            if first + got / RATE > start + seconds + 1:
                break
    if first > start:  # the seek landed past the clip: read from the beginning
        return decode(path, start, seconds, seek=False)
    skip = int(round((start - first) * RATE))
    return np.concatenate(chunks)[skip : skip + int(seconds * RATE)]

def write(path, samples):
    peak = max(1.0, float(np.abs(samples).max()))
    pcm = (samples / peak * 32767).astype("<i2")
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(pcm.tobytes())

done = []
for spec in json.load(sys.stdin):
    rng = np.random.default_rng(spec["seed"])
    for _ in range(10):  # draw again where the clip is (nearly) digital silence
        start = float(rng.uniform(spec["lo"], spec["hi"]))
        clip = decode(spec["src"], start, spec["seconds"])
        power = float(np.mean(clip**2)) if clip.size else 0.0
        if power > 1e-6:
            break
    if spec["snr_db"] is not None:
        sigma = (power / 10 ** (spec["snr_db"] / 10)) ** 0.5
        clip = clip + rng.standard_normal(clip.size).astype(np.float32) * sigma
    write(spec["out"], clip)
    done.append({"out": spec["out"], "src": spec["src"], "start": start})
json.dump(done, sys.stdout)
"""
"""Run by the lean venv's Python (PyAV and numpy are simlib dependencies): cuts 16 kHz mono
WAV clips at seeded offsets, with white noise at a given SNR; prints where each came from."""


@dataclass
class Runtime:
    """One installed simlib: its venv, the commit in it, and what installing it took."""

    name: str
    commit: str
    venv: Path
    install_s: float | None = None
    """None when a kept venv was reused."""
    size_mb: float = 0.0
    torch: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def simlib(self) -> str:
        return str(self.venv / "bin" / "simlib")


@dataclass(frozen=True)
class Track:
    """A corpus track as linked into the benchmark's library."""

    path: Path
    seconds: float
    album: str


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()


def child_env(home: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    if home is not None:
        env["SIMLIB_HOME"] = str(home)
    return env


def run(cmd: list[str], cwd: Path, home: Path | None = None, stdin: str | None = None) -> str:
    """Run `cmd`; its stdout, or its stderr in the error if it fails."""
    done = subprocess.run(
        cmd, cwd=cwd, env=child_env(home), input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def timed(cmd: list[str], cwd: Path, home: Path | None = None) -> tuple[float, str]:
    """Wall seconds of `cmd` as a new process, timed from outside, and its stdout."""
    started = time.perf_counter()
    out = run(cmd, cwd, home)
    return time.perf_counter() - started, out


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def tree_size_mb(root: Path) -> float:
    """Sum of the sizes of the files under `root`, each hard-linked file once (like du)."""
    seen: set[int] = set()
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return total / MB


def install(name: str, commit: str, work: Path) -> Runtime:
    """A venv of `commit` at work/venv-NAME: reused if a kept one holds that commit, else
    `pip install` of a clean export of the commit (never editable, no extras)."""
    runtime = Runtime(name, commit, work / f"venv-{name}")
    marker = runtime.venv / MARKER
    if not (marker.is_file() and marker.read_text() == commit):
        shutil.rmtree(runtime.venv, ignore_errors=True)
        source = work / f"src-{name}"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", commit], cwd=REPO, check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        started = time.perf_counter()
        run([sys.executable, "-m", "venv", str(runtime.venv)], work)
        run([runtime.python, "-m", "pip", "install", "--quiet", str(source)], work)
        runtime.install_s = time.perf_counter() - started
        shutil.rmtree(source)
        marker.write_text(commit)
    runtime.size_mb = tree_size_mb(runtime.venv)
    runtime.torch = (
        subprocess.run(
            [runtime.python, "-c", "import torch"], cwd=work, env=child_env(), capture_output=True
        ).returncode
        == 0
    )
    check_own_simlib(runtime, work)
    return runtime


def check_own_simlib(runtime: Runtime, work: Path) -> None:
    """The venv imports its own installed simlib, not a checkout or the host's editable one."""
    where = run([runtime.python, "-c", "import simlib; print(simlib.__file__)"], work).strip()
    if not Path(where).resolve().is_relative_to(runtime.venv.resolve()):
        raise RuntimeError(f"{runtime.name}: simlib imported from {where}, outside its venv")


def cut_clips(lean: Runtime, specs: list[dict], work: Path) -> list[dict]:
    return json.loads(run([lean.python, "-c", CUT_CLIPS], work, stdin=json.dumps(specs)))


def scan(runtime: Runtime, library: Path, home: Path, work: Path) -> dict:
    """`simlib scan` into `home`: its JSON report plus wall seconds and peak memory."""
    cmd = [runtime.simlib, "scan", str(library), "--workers", str(SCAN_WORKERS), "--json"]
    started = time.perf_counter()
    process = subprocess.Popen(
        cmd,
        cwd=work,
        env=child_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with PeakMemory(process.pid) as memory:
        out, err = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{runtime.name}: {shlex.join(cmd)} failed:\n{err[-3000:]}")
    return {**json_lines(out)[-1], "wall_s": wall, "pss_mb": memory.pss_mb, "rss_mb": memory.rss_mb}


def example_setup(runtimes: list[Runtime], work: Path) -> tuple[Path, Path]:
    """The example library, scanned by each runtime into its own home; returns a 5 s clip
    of its first track, and that track."""
    library = work / "example-library"
    run([runtimes[-1].python, "-m", "simlib.example_library", str(library)], work)
    first = sorted(p for p in library.rglob("*") if p.is_file())[0]
    clip = work / "clip.wav"
    spec = {"src": str(first), "out": str(clip), "seconds": 5.0, "seed": 0, "snr_db": None}
    cut_clips(runtimes[-1], [{**spec, "lo": 4.0, "hi": 4.0}], work)
    for runtime in runtimes:
        scan(runtime, library, work / "homes" / f"example-{runtime.name}", work)
    return clip, first


def cold_identify(runtimes: list[Runtime], clip: Path, track: Path, work: Path) -> float:
    """Median wall seconds of `simlib identify clip.wav` per runtime (figures) and of a bare
    `import torch` in today's venv (returned). Runs interleave, so a change in the machine's
    load hits both runtimes alike; one untimed run first warms the page cache."""
    commands = {
        r.name: ([r.simlib, "identify", "--json", str(clip)], work / "homes" / f"example-{r.name}")
        for r in runtimes
    }
    commands["torch"] = ([runtimes[0].python, "-c", "import torch"], None)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for attempt in range(COLD_RUNS + 1):
        for name, (cmd, home) in commands.items():
            seconds, out = timed(cmd, work, home)
            if attempt:
                times[name].append(seconds)
            if name != "torch" and attempt == 0:
                match = json_lines(out)[0]["match"] or {}
                right = os.path.realpath(match.get("path", "")) == os.path.realpath(track)
                next(r for r in runtimes if r.name == name).figures["cold_right"] = right
    for runtime in runtimes:
        runtime.figures["cold_s"] = statistics.median(times[runtime.name])
    return statistics.median(times["torch"])


def corpus_library(corpus: Path, tracks: int, dest: Path) -> list[Track]:
    """`tracks` manifest rows spread evenly over the corpus, hard-linked (else copied) into
    `dest` under their paths below library/."""
    with open(corpus / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    count = min(tracks, len(rows))
    chosen = [rows[i * len(rows) // count] for i in range(count)]
    out = []
    for row in chosen:
        source = corpus / row["path"]
        target = dest / Path(row["path"]).relative_to("library")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another file system
            shutil.copy2(source, target)
        out.append(Track(target, float(row["seconds"]), row["album"].strip().casefold()))
    return out


def probe_clips(lean: Runtime, tracks: list[Track], work: Path) -> list[dict]:
    """PROBE_CLIPS noisy clips from seeded tracks at seeded offsets (same for both runtimes)."""
    rng = random.Random(PROBE_SEED)
    long_enough = [t for t in tracks if t.seconds > 2 * PROBE_CLIP_S]
    picks = [rng.choice(long_enough) for _ in range(PROBE_CLIPS)]
    folder = work / "probe"
    folder.mkdir()
    specs = [
        {
            "src": str(t.path),
            "out": str(folder / f"{i:03d}.wav"),
            "seconds": PROBE_CLIP_S,
            "seed": PROBE_SEED * 1000 + i,
            "snr_db": PROBE_SNR_DB,
            "lo": 0.05 * t.seconds,
            "hi": 0.95 * t.seconds - PROBE_CLIP_S,
        }
        for i, t in enumerate(picks)
    ]
    return cut_clips(lean, specs, work)


def identify_probe(runtime: Runtime, clips: list[dict], home: Path, work: Path) -> list[tuple]:
    """Top-1 and seconds per clip of one `simlib identify --json` over all clips; returns each
    clip's answer (path, offset) to compare the runtimes."""
    cmd = [runtime.simlib, "identify", "--json", *(c["out"] for c in clips)]
    seconds, out = timed(cmd, work, home)
    answers = {r["query"]: r.get("match") or {} for r in json_lines(out)}
    right, found = 0, []
    for clip in clips:
        match = answers.get(clip["out"], {})
        path = os.path.realpath(match.get("path", ""))
        offset = float(match.get("offset_s", float("nan")))
        right += path == os.path.realpath(clip["src"]) and abs(offset - clip["start"]) <= (
            OFFSET_TOLERANCE_S
        )
        found.append((path, offset))
    runtime.figures["top1_right"] = right
    runtime.figures["top1"] = f"{right}/{len(clips)} ({100 * right / len(clips):.1f} %)"
    runtime.figures["s_per_clip"] = f"{seconds / len(clips):.3f}"
    return found


def similar_queries(tracks: list[Track]) -> list[Track]:
    """Up to PROBE_QUERIES seeded tracks whose album has >= MIN_ALBUM_TRACKS tracks here."""
    sizes: dict[str, int] = {}
    for track in tracks:
        sizes[track.album] = sizes.get(track.album, 0) + 1
    eligible = [t for t in tracks if sizes[t.album] >= MIN_ALBUM_TRACKS]
    return random.Random(PROBE_SEED).sample(eligible, min(PROBE_QUERIES, len(eligible)))


def similar_probe(
    runtime: Runtime, queries: list[Track], tracks: list[Track], home: Path, work: Path
) -> list[frozenset]:
    """Album-P@10 of one `simlib similar --json` over the queries (the query itself left out);
    returns each query's top-10 set to compare the runtimes."""
    if not queries:  # a library this small has no album of MIN_ALBUM_TRACKS
        runtime.figures.update(p10="— (no album large enough)", p10_hits=0)
        return []
    albums = {os.path.realpath(t.path): t.album for t in tracks}
    cmd = [runtime.simlib, "similar", "--json", "-n", str(TOP + 1), *(str(q.path) for q in queries)]
    results = {r["query"]: r.get("results", []) for r in json_lines(run(cmd, work, home))}
    precisions, tops = [], []
    for query in queries:
        paths = [os.path.realpath(r["path"]) for r in results.get(str(query.path), [])]
        top = [p for p in paths if p != os.path.realpath(query.path)][:TOP]
        precisions.append(sum(albums.get(p) == query.album for p in top) / TOP)
        tops.append(frozenset(top))
    runtime.figures["p10_hits"] = round(sum(precisions) * TOP)
    p10 = statistics.fmean(precisions) if precisions else float("nan")
    runtime.figures["p10"] = f"{p10:.3f} ({len(queries)} queries)"
    return tops


def corpus_measures(
    runtimes: list[Runtime], tracks: list[Track], library: Path, work: Path
) -> None:
    """Scan, rescan and the accuracy probe, per runtime, into figures."""
    clips = probe_clips(runtimes[-1], tracks, work)
    queries = similar_queries(tracks)
    answers, tops = [], []
    for runtime in runtimes:
        home = work / "homes" / f"corpus-{runtime.name}"
        first = scan(runtime, library, home, work)
        rescan = scan(runtime, library, home, work)
        runtime.figures.update(
            speed=first["audio_s"] / first["wall_s"],
            pss=first["pss_mb"],
            rss=first["rss_mb"],
            scanned=f"{first['analysed']} ({first['failed']} failed, "
            f"{first['wall_s']:.0f} s for {first['audio_s'] / 3600:.2f} h)",
            rescan=f"{rescan['wall_s']:.2f} ({rescan['unchanged']} unchanged)",
        )
        answers.append(identify_probe(runtime, clips, home, work))
        tops.append(similar_probe(runtime, queries, tracks, home, work))
    before, after = answers
    differ = sum(
        a[0] != b[0] or abs(a[1] - b[1]) > OFFSET_TOLERANCE_S
        for a, b in zip(before, after, strict=True)
    )
    runtimes[-1].figures["clips_differ"] = str(differ)
    runtimes[-1].figures["queries_differ"] = str(sum(a != b for a, b in zip(*tops, strict=True)))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {ram_kb / 1024**2:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def mark(met: bool) -> str:
    return "met" if met else "**missed**"


def idle_verdict(met: bool, loads: list[float]) -> str:
    """The 0.6 s goal holds on an idle machine: on a busy one it is not judged."""
    busiest = max(loads)
    if busiest > IDLE_LOAD_PER_CORE * (os.cpu_count() or 1):
        return f"not judged (load {busiest:.1f})"
    return mark(met)


def table_rows(
    today: Runtime, lean: Runtime, torch_s: float, loads: list[float]
) -> list[tuple[str, str, str, str]]:
    """(measure, today, lean, goal) rows; `loads` are the 1-minute load averages seen."""
    t, le = today.figures, lean.figures
    install = [f"{r.install_s:.0f}" if r.install_s is not None else "reused" for r in (today, lean)]
    half = torch_s / 2
    cold = [
        f"{r.figures['cold_s']:.2f}" + ("" if r.figures["cold_right"] else " (wrong answer)")
        for r in (today, lean)
    ]
    return [
        ("install: new venv + `pip install <checkout>` (wall s)", *install, ""),
        (
            "venv size (MB)",
            f"{today.size_mb:,.0f}",
            f"{lean.size_mb:,.0f}",
            f"≤ 400: {mark(lean.size_mb <= 400)}",
        ),
        (
            "`import torch` works in the venv",
            *("yes" if r.torch else "no" for r in (today, lean)),
            f"no: {mark(not lean.torch)}",
        ),
        (
            f"cold `simlib identify clip.wav`, example library (s, median of {COLD_RUNS})",
            *cold,
            f"< ½ torch import = {half:.2f}: {mark(le['cold_s'] < half)}; ≤ 0.6 idle: "
            f"{idle_verdict(le['cold_s'] <= 0.6, loads)}",
        ),
        (f'bare `python -c "import torch"` (s, median of {COLD_RUNS})', f"{torch_s:.2f}", "—", ""),
        (f"scan --workers {SCAN_WORKERS}: tracks analysed", t["scanned"], le["scanned"], ""),
        (
            "scan throughput (× real time)",
            f"{t['speed']:.0f}",
            f"{le['speed']:.0f}",
            f"≥ today: {mark(le['speed'] >= t['speed'])}",
        ),
        (
            "scan peak PSS, process tree (MB)",
            f"{t['pss']:.0f}",
            f"{le['pss']:.0f}",
            f"≤ 500: {mark(le['pss'] <= 500)}",
        ),
        ("scan peak RSS, largest process (MB)", f"{t['rss']:.0f}", f"{le['rss']:.0f}", ""),
        ("rescan, library unchanged (wall s)", t["rescan"], le["rescan"], ""),
        (
            f"identify probe: top-1, {PROBE_CLIP_S:g} s clips at {PROBE_SNR_DB:g} dB SNR",
            t["top1"],
            le["top1"],
            f"today's − 1 clip or more: {mark(le['top1_right'] >= t['top1_right'] - 1)}",
        ),
        ("identify probe: clips answered differently from today", "—", le["clips_differ"], ""),
        (
            "identify probe: s per clip (one process for all clips)",
            t["s_per_clip"],
            le["s_per_clip"],
            "",
        ),
        (
            "similar probe: album-P@10",
            t["p10"],
            le["p10"],
            f"today's ± 1 query: {mark(abs(le['p10_hits'] - t['p10_hits']) <= TOP)}",
        ),
        ("similar probe: queries whose top 10 differ from today's", "—", le["queries_differ"], ""),
    ]


def report(
    work: Path,
    today: Runtime,
    lean: Runtime,
    torch_s: float,
    tracks: list[Track],
    load_start: tuple[float, ...],
) -> None:
    audio_h = sum(t.seconds for t in tracks) / 3600
    print(
        f"simlib footprint, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: today = {today.commit[:7]} "
        f"(PyTorch), lean = {lean.commit[:7]} (ONNX Runtime)"
    )
    print(f"machine: {machine()}")
    print(f"command: python {shlex.join(sys.argv)}")
    examples = sum(p.is_file() for p in (work / "example-library").rglob("*"))
    print(
        f"corpus: {len(tracks)} tracks spread over the manifest, {audio_h:.2f} h of audio; "
        f"example library: {examples} tracks\n"
    )
    print("| measure | today | lean | goal |\n|---|---|---|---|")
    end = os.getloadavg()
    for row in table_rows(today, lean, torch_s, [load_start[0], end[0]]):
        print("| " + " | ".join(row) + " |")
    print(
        f"\nload average (1/5/15 min): start {' '.join(f'{x:.2f}' for x in load_start)}, "
        f"end {' '.join(f'{x:.2f}' for x in end)}"
    )


def measure(args: argparse.Namespace, work: Path) -> None:
    load_start = os.getloadavg()
    baseline, lean_commit = git("rev-parse", args.baseline), git("rev-parse", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no"):
        print("note: uncommitted changes are not measured (lean = HEAD)", file=sys.stderr)
    (work / "homes").mkdir(exist_ok=True)
    today, lean = install("today", baseline, work), install("lean", lean_commit, work)
    runtimes = [today, lean]
    clip, track = example_setup(runtimes, work)
    torch_s = cold_identify(runtimes, clip, track, work)
    tracks = corpus_library(args.corpus.expanduser(), args.tracks, work / "library")
    corpus_measures(runtimes, tracks, work / "library", work)
    report(work, today, lean, torch_s, tracks, load_start)


def clean(work: Path, created: bool) -> None:
    """Remove what this run made; a --workdir given by the user stays, without it."""
    if created:
        shutil.rmtree(work, ignore_errors=True)
        return
    for name in (*MADE, "venv-today", "venv-lean", "src-today", "src-lean"):
        shutil.rmtree(work / name, ignore_errors=True)
    (work / "clip.wav").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path.home() / "simlib-corpus")
    parser.add_argument("--workdir", type=Path, help="Work folder (default: a temporary one).")
    parser.add_argument("--baseline", default="b1b5225", help="Commit of today's runtime.")
    parser.add_argument("--tracks", type=int, default=278, help="Corpus tracks to scan.")
    parser.add_argument("--keep", action="store_true", help="Keep venvs and homes.")
    args = parser.parse_args()
    created = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="simlib-footprint-")) if created else args.workdir
    work = work.expanduser().absolute()
    work.mkdir(parents=True, exist_ok=True)
    for stale in MADE:  # only venvs are reused
        shutil.rmtree(work / stale, ignore_errors=True)
    try:
        measure(args, work)
    finally:
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            clean(work, created)


if __name__ == "__main__":
    main()
