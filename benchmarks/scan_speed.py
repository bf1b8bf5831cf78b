"""Scan speed: audio-seconds analysed per wall-second, and peak memory.

    python benchmarks/scan_speed.py ~/simlib-corpus/library [--workers 2] [--stages features|all]

Scans the folder into a fresh temporary SIMLIB_HOME and prints one table:
decode + features only (the foundation's stages), and the full pipeline with
every shipped embedder and the index build. Memory is sampled every 0.2 s
over this process and all its descendants (the fork server and its workers):
the peak PSS sum, and the peak RSS of the largest single process.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from functools import partial
from pathlib import Path

from process_memory import PeakMemory

from simlib.catalog import Catalog
from simlib.library.embedders import load_embedders
from simlib.library.sync import scan


def no_embedders() -> list:
    return []


def run(library: Path, workers: int, with_models: bool) -> dict:
    with tempfile.TemporaryDirectory() as home:
        catalog = Catalog(Path(home))
        factory = partial(load_embedders, Path(home)) if with_models else no_embedders
        started = time.perf_counter()
        with PeakMemory(os.getpid()) as memory:
            report = scan(catalog, [library], factory, workers=workers)
        wall = time.perf_counter() - started
        catalog.close()
    return {
        "pss_mb": memory.pss_mb,
        "rss_mb": memory.rss_mb,
        "audio_s": report.audio_s,
        "wall_s": wall,
        "tracks": report.analysed,
        "failed": report.failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--stages", choices=["features", "all", "both"], default="both")
    args = parser.parse_args()
    rows = []
    if args.stages in ("features", "both"):
        rows.append(("decode + features", run(args.library, args.workers, False)))
    if args.stages in ("all", "both"):
        rows.append(("full pipeline + index", run(args.library, args.workers, True)))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, workers={args.workers}")
    print(
        "| stages | tracks | failed | audio (h) | wall (s) | x real time "
        "| peak PSS sum (MB) | peak RSS, largest process (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, row in rows:
        speed = row["audio_s"] / row["wall_s"]
        print(
            f"| {name} | {row['tracks']} | {row['failed']} | {row['audio_s'] / 3600:.2f} "
            f"| {row['wall_s']:.1f} | {speed:.0f} | {row['pss_mb']:.0f} | {row['rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
