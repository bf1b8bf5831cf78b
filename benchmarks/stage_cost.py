"""Cost of each analysis stage per track, as a scan worker pays it.

    python benchmarks/stage_cost.py ~/simlib-corpus/library [--every 14]

Runs in one process set up like a scan worker (the models on one ONNX Runtime thread, as
`simlib.weights.load` sets them; the workers' malloc limits from
`workers.limit_heap_growth`) over every `--every`-th audio file, sorted by
path, and prints one table: seconds spent in decode + features (log-mel and spectral
peaks) and in each embedder
stage, the stages run as `pipeline.embed` runs them (per-track stages with
`workers.roomy_heap`) and, for comparison, each embedder called directly under the
workers' limits alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from simlib.library import pipeline
from simlib.library.embedders import load_embedders
from simlib.library.sync import is_candidate
from simlib.library.workers import limit_heap_growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--every", type=int, default=14)
    args = parser.parse_args()
    limit_heap_growth()
    paths = sorted(p for p in args.library.expanduser().rglob("*") if is_candidate(p.name))
    paths = paths[:: args.every]
    with tempfile.TemporaryDirectory() as home:  # no local weights: the shipped ones
        embedders = load_embedders(Path(home))
    features_s, audio_s = 0.0, 0.0
    as_scan = {e.name: 0.0 for e in embedders}
    direct = {e.name: 0.0 for e in embedders}
    for path in paths:
        started = time.perf_counter()
        mel, _peaks, duration_s = pipeline.decode_features(path)
        features_s += time.perf_counter() - started
        audio_s += duration_s
        for embedder in embedders:
            started = time.perf_counter()
            pipeline.embed(embedder, mel)
            as_scan[embedder.name] += time.perf_counter() - started
            started = time.perf_counter()
            embedder.embed(mel)
            direct[embedder.name] += time.perf_counter() - started
    print(f"{len(paths)} tracks, {audio_s / 60:.0f} min of audio, one process, one thread")
    print("| stage | s as the scan runs it | % of decode + features | s without roomy_heap | % |")
    print("|---|---|---|---|---|")
    print(f"| decode + features | {features_s:.1f} | 100 | | |")
    for name in as_scan:
        print(
            f"| {name} | {as_scan[name]:.1f} | {100 * as_scan[name] / features_s:.0f} "
            f"| {direct[name]:.1f} | {100 * direct[name] / features_s:.0f} |"
        )


if __name__ == "__main__":
    main()
