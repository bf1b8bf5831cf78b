"""Benchmark "learns your tags": fine-tune on half of an unseen library's albums, query the rest.

The library is the held-out TEST packages (`simlib.train.corpus`), music the weights
never heard. Its albums are split in two halves by a hash of the album name: one half
keeps its tags (the user's tags), the other half's tracks are given no tags. The weights
are fine-tuned as `simlib train similarity` does (`train_similarity` from the weights in
use with its defaults, `--minutes` of training, then the album scatter of the tagged
albums blended in); then every track of the untagged half
whose album has >= 5 tracks queries the whole library, before and after. Both halves
take the untagged role in turn (two fine-tunings); the table pools their queries.

    python benchmarks/similar_finetune.py --corpus ~/simlib-corpus [--weights W.pt] \
        [--minutes 8] [--side val] [--own-scatter-share S]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from similar import precision_at_10, simlib_distances

from simlib import weights as model_weights
from simlib.api import TRAINING_MINUTES
from simlib.audio import decode
from simlib.audio.features import log_mel
from simlib.catalog import read_tags
from simlib.similar.model import SimilarityModel
from simlib.train.corpus import CorpusTrack, load_split
from simlib.train.similarity import (
    FINE_TUNING,
    OWN_SCATTER_SHARE,
    TrainConfig,
    TrainMetrics,
    train_similarity,
)

METRICS = ("album", "artist", "album, other artists")


def tagged_albums(tracks: list[CorpusTrack]) -> set[str]:
    """Albums whose tags the user gives: albums in hash order until half the album-tagged
    tracks are covered."""
    sizes: dict[str, int] = {}
    for t in tracks:
        if t.album:
            sizes[t.album] = sizes.get(t.album, 0) + 1
    order = sorted(sizes, key=lambda a: hashlib.blake2b(a.encode(), digest_size=8).digest())
    chosen: set[str] = set()
    covered = 0
    for album in order:
        if covered >= sum(sizes.values()) / 2:
            break
        chosen.add(album)
        covered += sizes[album]
    return chosen


def fold(
    library: list[CorpusTrack],
    given: set[str],
    weights: Path,
    minutes: float,
    config: TrainConfig | None = None,
    own_scatter_share: float = OWN_SCATTER_SHARE,
) -> tuple[list[int], SimilarityModel, TrainMetrics, float]:
    """Fine-tune on the tags of albums `given`: (queries, model, metrics, wall minutes)."""
    tracks = [
        (t.path, read_tags(t.path) if t.album in given or not t.album else None) for t in library
    ]
    queries = [i for i, t in enumerate(library) if t.album and t.album not in given]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "similarity.pt"
        started = time.monotonic()
        metrics = train_similarity(
            tracks,
            out,
            minutes=minutes,
            init_weights=weights,
            config=config,
            cache_dir=Path.home() / ".cache/simlib/similarity",
            own_scatter_share=own_scatter_share,
        )
        wall_min = (time.monotonic() - started) / 60
        model = SimilarityModel.load(out.with_suffix(".onnx"))
    return queries, model, metrics, wall_min


def pooled(folds: list[tuple[np.ndarray, list[int]]], albums: list, artists: list) -> dict:
    """precision_at_10 of both folds' queries together (a mean weighted by query counts)."""
    scores = [precision_at_10(d, q, albums, artists) for d, q in folds]
    out = {}
    for key in METRICS:
        counts = [s[f"n {key}"] for s in scores]
        values = [s[key] if c else 0.0 for s, c in zip(scores, counts, strict=True)]
        out[key] = float(np.average(values, weights=counts)) if sum(counts) else float("nan")
        out[f"n {key}"] = sum(counts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/simlib-corpus"))
    parser.add_argument(
        "--weights",
        type=Path,
        default=model_weights.shipped_path("similarity", "training"),
        help="checkpoint to start from (default: the shipped one)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=TRAINING_MINUTES["similarity"],
        help="of encoder training per fold (default: simlib train similarity's)",
    )
    parser.add_argument("--side", choices=("test", "val"), default="test")
    parser.add_argument("--lr", type=float, default=None, help="default: simlib train's")
    parser.add_argument("--anchor", type=float, default=None, help="default: simlib train's")
    parser.add_argument(
        "--own-scatter-share", type=float, default=OWN_SCATTER_SHARE, help="of the album scatter"
    )
    args = parser.parse_args()
    changes = {"learning_rate": args.lr, "anchor": args.anchor}
    config = replace(FINE_TUNING, **{k: v for k, v in changes.items() if v is not None})
    torch.set_num_threads(1)
    library = load_split(args.corpus)[args.side]
    first_half = tagged_albums(library)
    halves = [first_half, {t.album for t in library if t.album} - first_half]
    mels = [log_mel(decode(t.path)) for t in library]
    albums = [t.album for t in library]
    artists = [t.artist for t in library]
    start = SimilarityModel.load(args.weights.with_suffix(".onnx"))
    before = simlib_distances(start.embed_many(mels), start)
    rows: dict[str, list] = {"before (weights in use)": [], "after fine-tuning": []}
    for k, given in enumerate(halves):
        queries, model, metrics, wall_min = fold(
            library, given, args.weights, args.minutes, config, args.own_scatter_share
        )
        after = simlib_distances(model.embed_many(mels), model)
        print(
            f"fold {k + 1}: tags of {len(given)} albums given, {len(queries)} tracks of"
            f" {len({albums[q] for q in queries})} albums withheld; fine-tuned"
            f" {metrics.members} encoder(s) {metrics.epochs:.1f} epochs,"
            f" {metrics.wall_s / 60:.1f} min of training ({wall_min:.1f} min wall),"
            f" one torch thread; best epochs {metrics.best_epochs} (0: the weights in use kept)",
            flush=True,
        )
        rows["before (weights in use)"].append((before, queries))
        rows["after fine-tuning"].append((after, queries))
    print(f"library: {len(library)} {args.side.upper()} tracks; the two folds' queries pooled")
    print(f"{'':28} {'album-P@10':>11} {'artist-P@10':>12} {'album-P@10, other artists':>26}")
    results = {name: pooled(folds, albums, artists) for name, folds in rows.items()}
    first = next(iter(results.values()))
    print(
        f"{'(queries)':28} {first['n album']:>11} {first['n artist']:>12}"
        f" {first['n album, other artists']:>26}"
    )
    for name, r in results.items():
        print(f"{name:28} {r['album']:>11.3f} {r['artist']:>12.3f} {r[METRICS[2]]:>26.3f}")
    b, a = results["before (weights in use)"], results["after fine-tuning"]
    print("gain: " + ", ".join(f"{key}-P@10 {a[key] - b[key]:+.3f}" for key in METRICS))


if __name__ == "__main__":
    main()
