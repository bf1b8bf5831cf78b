"""Watcher benchmark: freshness latency, a 2,000-file burst, concurrent readers.

    python benchmarks/watch.py --corpus ~/simlib-corpus [--library-tracks 60] [--burst 2000]

1. A library of real tracks is scanned, then `simlib watch` runs on it (a real
   subprocess, real inotify events). A new ~4-minute track is copied in: we
   time from the end of the copy until a 5 s clip of it is identified and
   until it is the top `similar` result of a re-encoded copy of itself; then it
   is deleted and we time until neither answer names it.
2. Burst: `--burst` distinct files (`--excerpt-s` excerpts of corpus tracks, cached
   under ~/.cache/simlib-bench) are copied in at once; we time until all are
   catalogued, sample the peak RSS of the watcher and its workers, and compare
   with `simlib scan` of the same files in a fresh home.
3. Then 10 reader processes loop `simlib.identify` and `simlib.similar`
   while 20 more tracks arrive and the watcher rebuilds its indexes; they
   count errors.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile
from process_memory import PeakMemory

from simlib import api, audio, example_library

CACHE = Path.home() / ".cache" / "simlib-bench"
READER = """
import os, sys, simlib
clip, query, stop_file = sys.argv[1:4]
errors = calls = 0
while not os.path.exists(stop_file):
    for call in (lambda: simlib.identify([clip])[0], lambda: simlib.similar([query], n=5)[0]):
        calls += 1
        try:
            result = call()
            if result.error:
                raise RuntimeError(result.error)
        except Exception as error:
            errors += 1
            print(repr(error), file=sys.stderr)
print(calls, errors)
"""


def corpus_tracks(corpus: Path) -> list[tuple[Path, float]]:
    with open(corpus / "manifest.csv", newline="") as handle:
        return [(corpus / row["path"], float(row["seconds"])) for row in csv.DictReader(handle)]


def wait_until(condition, timeout: float, step: float = 0.1) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    return None


def burst_files(corpus: Path, count: int, seconds: float) -> list[Path]:
    """`count` distinct MP3 excerpts of `seconds` from corpus tracks (cached)."""
    folder = CACHE / f"burst-{count}-{seconds:g}s"
    done = sorted(folder.glob("*.mp3")) if folder.exists() else []
    if len(done) == count:
        return done
    folder.mkdir(parents=True, exist_ok=True)
    tracks = [t for t in corpus_tracks(corpus) if t[1] >= 60]
    out = []
    for index in range(count):
        path, length = tracks[index % len(tracks)]
        start = (index // len(tracks)) * (seconds + 1) % max(1.0, length - seconds - 1)
        target = folder / f"{index:05d}.mp3"
        if not target.exists():
            excerpt = audio.decode(path, start, seconds)
            example_library.encode(target, excerpt, audio.ANALYSIS_RATE_HZ)
        out.append(target)
    return out


def count_tracks(home: Path) -> int:
    try:
        with sqlite3.connect(home / "catalog.db") as db:
            return db.execute("SELECT COUNT(*) FROM tracks WHERE status = 'ok'").fetchone()[0]
    except sqlite3.Error:
        return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path.home() / "simlib-corpus")
    parser.add_argument("--library-tracks", type=int, default=60)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--excerpt-s", type=float, default=10.0)
    parser.add_argument("--readers", type=int, default=10)
    args = parser.parse_args()

    tracks = corpus_tracks(args.corpus)
    library_tracks = tracks[: args.library_tracks]
    newcomer = min(tracks[args.library_tracks :], key=lambda t: abs(t[1] - 240))[0]
    work = Path(tempfile.mkdtemp(prefix="simlib-watch-bench-"))
    root, home = work / "music", work / "home"
    for path, _ in library_tracks:
        target = root / path.relative_to(args.corpus / "library")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    env = {**os.environ, "SIMLIB_HOME": str(home)}
    api.scan([root], home=home)

    clip = work / "clip.wav"
    soundfile.write(clip, audio.decode(newcomer, 60.0, 5.0), audio.ANALYSIS_RATE_HZ)
    reencoded = work / "reencoded.mp3"
    example_library.encode(reencoded, audio.decode(newcomer), audio.ANALYSIS_RATE_HZ)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "simlib", "watch", "--json-log"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    rows: list[tuple[str, str]] = []
    try:
        while json.loads(watcher.stdout.readline())["event"] != "watching":
            pass
        target = root / "new" / newcomer.name
        target.parent.mkdir()
        shutil.copy2(newcomer, target)  # the write is complete when this returns
        written = time.monotonic()

        def identified() -> bool:
            match = api.identify([clip], home=home)[0].match
            return bool(match and match.track.path == str(target))

        def recommended() -> bool:
            results = api.similar([reencoded], home=home, n=1)[0].results
            return bool(results and results[0].track.path == str(target))

        wait_until(identified, 60)
        t_identify = time.monotonic() - written
        wait_until(recommended, 60)
        t_similar = time.monotonic() - written
        target.unlink()
        t_gone = wait_until(lambda: not identified() and not recommended(), 60)
        rows += [
            ("new 4-min track identifiable, after its write (s)", f"{t_identify:.2f}"),
            ("new track the top `similar` result, after its write (s)", f"{t_similar:.2f}"),
            ("deleted track gone from both (s)", f"{t_gone:.2f}"),
        ]

        files = burst_files(args.corpus, args.burst, args.excerpt_s)
        audio_s = args.excerpt_s * len(files)
        before = count_tracks(home)
        started = time.monotonic()
        shutil.copytree(files[0].parent, root / "burst")
        with PeakMemory(watcher.pid, interval_s=0.5) as memory:
            while count_tracks(home) < before + len(files):
                time.sleep(0.5)
        burst_s = time.monotonic() - started

        # Readers loop while a further batch arrives and the indexes are rebuilt.
        query = next(root.rglob("*.flac"))
        reader_clip = work / "reader.wav"
        soundfile.write(reader_clip, audio.decode(query, 10.0, 5.0), audio.ANALYSIS_RATE_HZ)
        stop_file = work / "stop-readers"
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", READER, str(reader_clip), str(query), str(stop_file)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(args.readers)
        ]
        time.sleep(5)
        more = tracks[args.library_tracks : args.library_tracks + 20]
        for path, _ in more:
            shutil.copy2(path, root / "new" / path.name)
        rebuilt = False
        deadline = time.monotonic() + 600
        while not rebuilt and time.monotonic() < deadline:
            line = watcher.stdout.readline()
            rebuilt = (
                bool(line)
                and json.loads(line)["event"] == "indexes-rebuilt"
                and (count_tracks(home) >= before + len(files) + len(more))
            )
        time.sleep(5)
        stop_file.touch()
        calls = errors = 0
        for reader in readers:
            out, _ = reader.communicate(timeout=300)
            reader_calls, reader_errors = map(int, out.split())
            calls, errors = calls + reader_calls, errors + reader_errors
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=120)

    scan_home = work / "scan-home"
    started = time.monotonic()
    api.scan([files[0].parent], home=scan_home)
    scan_s = time.monotonic() - started
    rows += [
        (f"burst of {len(files)} files: all catalogued (s)", f"{burst_s:.0f}"),
        ("burst throughput (audio-s per wall-s)", f"{audio_s / burst_s:.0f}"),
        ("`simlib scan` of the same files (audio-s per wall-s)", f"{audio_s / scan_s:.0f}"),
        ("watcher throughput vs scan", f"{scan_s / burst_s:.0%}"),
        ("peak memory of watcher + workers, PSS sum (MB)", f"{memory.pss_mb:.0f}"),
        ("peak RSS of the largest single process (MB)", f"{memory.rss_mb:.0f}"),
        (
            f"{args.readers} reader processes during ingest + rebuild: errors / calls",
            f"{errors} / {calls}",
        ),
    ]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; library {len(library_tracks)} "
        f"tracks; newcomer {newcomer.name}"
    )
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
