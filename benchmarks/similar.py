"""Benchmark "find similar tracks" on music the model never heard, against baselines.

The development corpus is split by package (`simlib.train.corpus`: no TEST album or
artist is in training or in checkpoint selection). The library is the TEST tracks
alone, each queried against all the others, as a user's own library of unseen albums
would be. Labels are the files' own tags.

    python benchmarks/similar.py --corpus ~/simlib-corpus [--weights A.pt B.onnx] [--side val]

Prints the split, then one table: album-P@10 (queries whose album has >= 5 tracks),
artist-P@10 (queries whose known artist has >= 3 tracks), artist-filtered album-P@10
(results by the query's artist removed first; queries whose album has >= 5 tracks by
other artists), for simlib, pymusly (timbre, whole track and its default 30 s excerpt),
a mean/std-of-MFCC cosine baseline and random; then a "seen albums" line (the first
weights on the dev TRAIN packages they trained on, for scale), the first simlib model
minus the best baseline of each column with a 95 % bootstrap interval over queries, the
cost per track and query latency. `--side val` runs the same on the VAL packages (model selection).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymusly
import torch
import torchaudio

from simlib.audio import ANALYSIS_RATE_HZ, decode
from simlib.audio.features import log_mel
from simlib.similar.index import TrackIndex, ranked_scores
from simlib.similar.index import build as build_track_index
from simlib.similar.model import SimilarityModel
from simlib.train.corpus import CorpusTrack, describe, leaks, load_split

MUSLY_RATE_HZ = 22_050
MUSLY_EXCERPT_S = 30.0
TOP = 10
SCALE_TRACKS = 10_000
"""A large library, for the exact index's query time."""


@dataclass
class Timing:
    """Wall seconds per stage, summed over tracks."""

    audio_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds


def simlib_vector(
    path: Path, model: SimilarityModel, timing: Timing
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What simlib does per track: decode -> log_mel -> embed. Returns (embedding, samples, mel)."""
    t0 = time.perf_counter()
    samples = decode(path)
    t1 = time.perf_counter()
    mel = log_mel(samples)
    t2 = time.perf_counter()
    vector = model.embed(mel)
    t3 = time.perf_counter()
    timing.audio_s += samples.size / ANALYSIS_RATE_HZ
    timing.add("decode", t1 - t0)
    timing.add("features", t2 - t1)
    timing.add("embed", t3 - t2)
    return vector, samples, mel


_MFCC = torchaudio.transforms.MFCC(
    sample_rate=ANALYSIS_RATE_HZ,
    n_mfcc=20,
    melkwargs={"n_fft": 1024, "hop_length": 160, "n_mels": 64, "f_min": 30.0, "f_max": 8000.0},
)


def mfcc_stats(samples: np.ndarray) -> np.ndarray:
    """Mean and std over time of 20 MFCCs (40 values); silence-only input gives zeros' stats."""
    mfcc = _MFCC(torch.from_numpy(samples[: max(samples.size, 1024)].copy()).float())
    if mfcc.shape[-1] == 0:
        return np.zeros(40, dtype=np.float32)
    return torch.cat([mfcc.mean(dim=1), mfcc.std(dim=1, unbiased=False)]).numpy()


def musly_input(samples: np.ndarray, frame: int = 1024) -> np.ndarray:
    """Audio for musly with digitally silent frames (RMS < 1e-4) cut and a -100 dB dither added.

    Without this, a mostly silent track gives musly a singular Gaussian whose NaN
    distances poison the mutual-proximity normalisation of every track.
    """
    usable = samples[: samples.size // frame * frame].reshape(-1, frame)
    loud = usable[np.sqrt((usable**2).mean(axis=1)) >= 1e-4].reshape(-1)
    audio = loud if loud.size >= MUSLY_RATE_HZ else samples
    dither = np.random.default_rng(0).standard_normal(audio.size).astype(np.float32) * 1e-5
    return audio + dither


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return 1.0 - unit @ unit.T


def simlib_distances(vectors: np.ndarray, model: SimilarityModel) -> np.ndarray:
    """Minus the scores `simlib similar` ranks by, computed exactly (tests/test_similar.py
    checks that a real track index answers with them)."""
    return -ranked_scores(vectors, model.ranking)


def musly_distances(tracks: list[pymusly.MuslyTrack]) -> tuple[np.ndarray, float]:
    """(n, n) musly distances (mutual-proximity normalised) and the median query latency (s)."""
    jukebox = pymusly.MuslyJukebox(method="timbre")
    jukebox.set_style(tracks)
    ids = jukebox.add_tracks(tracks)
    everyone = list(zip(ids, tracks, strict=True))
    rows, latencies = [], []
    for seed in everyone:
        start = time.perf_counter()
        rows.append(jukebox.compute_similarity(seed, everyone))
        latencies.append(time.perf_counter() - start)
    return np.array(rows, dtype=np.float64), statistics.median(latencies)


def per_query(
    distances: np.ndarray,
    queries: list[int],
    albums: list[str | None],
    artists: list[str | None],
) -> dict[str, dict[int, float]]:
    """{metric: {query: its precision}} for album-P@10, artist-P@10 and artist-filtered
    album-P@10, over the queries each counts (see the module docstring)."""
    album_count = Counter(a for a in albums if a)
    artist_count = Counter(a for a in artists if a)
    other_artist_album = Counter((al, ar) for al, ar in zip(albums, artists, strict=True) if al)
    scores: dict[str, dict[int, float]] = {"album": {}, "artist": {}, "album, other artists": {}}
    for q in queries:
        order = [j for j in np.argsort(distances[q], kind="stable") if j != q]
        top = order[:TOP]
        if albums[q] and album_count[albums[q]] >= 5:
            scores["album"][q] = float(np.mean([albums[j] == albums[q] for j in top]))
        if artists[q] and artist_count[artists[q]] >= 3:
            scores["artist"][q] = float(np.mean([artists[j] == artists[q] for j in top]))
        others = album_count[albums[q]] - other_artist_album[(albums[q], artists[q])] * bool(
            artists[q]
        )
        if albums[q] and others >= 5:
            kept = [j for j in order if not (artists[q] and artists[j] == artists[q])][:TOP]
            scores["album, other artists"][q] = float(
                np.mean([albums[j] == albums[q] for j in kept])
            )
    return scores


def precision_at_10(
    distances: np.ndarray,
    queries: list[int],
    albums: list[str | None],
    artists: list[str | None],
) -> dict[str, float]:
    """album-P@10, artist-P@10 and artist-filtered album-P@10 (see the module docstring)."""
    return means(per_query(distances, queries, albums, artists))


def means(scores: dict[str, dict[int, float]]) -> dict[str, float]:
    """Each metric's mean over its queries, and its count of queries ("n <metric>")."""
    return {
        k: float(np.mean(list(v.values()))) if v else float("nan") for k, v in scores.items()
    } | {f"n {k}": len(v) for k, v in scores.items()}


COLUMNS = {
    "album": "album-P@10",
    "artist": "artist-P@10",
    "album, other artists": "album-P@10, other artists",
}
"""The table's columns: per_query's metric -> its heading."""

BOOTSTRAP_DRAWS = 2000
"""Resamples of the queries for a difference's interval (its ends move by about 0.005
between seeds at this count)."""


def difference_interval(
    mine: dict[int, float], theirs: dict[int, float], seed: int = 0
) -> tuple[float, float, float]:
    """Mean over queries of mine - theirs, and its 95 % bootstrap interval (queries
    resampled): whether a difference between two methods is more than the queries' luck."""
    diffs = np.array([mine[q] - theirs[q] for q in mine])
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(len(diffs), size=(BOOTSTRAP_DRAWS, len(diffs)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def onnx_path(weights: Path | None) -> Path | None:
    """The runtime file of `weights` (a checkpoint's export sits beside it)."""
    return weights.with_suffix(".onnx") if weights is not None else None


def seen_albums(library: list[CorpusTrack], model: SimilarityModel) -> dict[str, float]:
    """precision_at_10 of `library` queried against itself with `model`, no baselines."""
    vectors, albums, artists = [], [], []
    for track in library:
        samples = decode(track.path)
        if samples.size == 0:
            continue
        vectors.append(model.embed(log_mel(samples)))
        albums.append(track.album)
        artists.append(track.artist)
    distances = simlib_distances(np.stack(vectors), model)
    return precision_at_10(distances, list(range(len(vectors))), albums, artists)


@dataclass
class Library:
    """What the benchmark computes per track of the queried library."""

    albums: list[str | None] = field(default_factory=list)
    artists: list[str | None] = field(default_factory=list)
    simlib: list[list[np.ndarray]] = field(default_factory=list)
    mfcc: list[np.ndarray] = field(default_factory=list)
    musly_whole: list = field(default_factory=list)
    musly_excerpt: list = field(default_factory=list)
    musly_s: float = 0.0


def analyse(tracks: list[CorpusTrack], models: list[SimilarityModel], timing: Timing) -> Library:
    """Embed every track with each model, MFCC statistics and both musly analyses."""
    out = Library(simlib=[[] for _ in models])
    jukebox = pymusly.MuslyJukebox(method="timbre")
    for track in tracks:
        vector, samples, mel = simlib_vector(track.path, models[0], timing)
        if samples.size == 0:
            continue
        out.albums.append(track.album)
        out.artists.append(track.artist)
        out.simlib[0].append(vector)
        for rows, model in zip(out.simlib[1:], models[1:], strict=True):
            rows.append(model.embed(mel))
        out.mfcc.append(mfcc_stats(samples))
        start = time.perf_counter()
        audio = musly_input(decode(track.path, sample_rate_hz=MUSLY_RATE_HZ))
        out.musly_whole.append(jukebox.track_from_audiodata(audio))
        middle = max(0, (audio.size - int(MUSLY_EXCERPT_S * MUSLY_RATE_HZ)) // 2)
        excerpt = audio[middle : middle + int(MUSLY_EXCERPT_S * MUSLY_RATE_HZ)]
        out.musly_excerpt.append(jukebox.track_from_audiodata(excerpt))
        out.musly_s += time.perf_counter() - start
    return out


def index_latency(vectors: np.ndarray, model: SimilarityModel, queries: int = 0) -> float:
    """Mean seconds of one top-10 query (the query vector ranked, expanded, then looked up)
    through a real track index over `vectors`, for the first `queries` of them (0: all)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "i.npz"
        build_track_index(path, np.arange(1, len(vectors) + 1), vectors, model.ranking)
        index = TrackIndex(path, vectors.shape[1], model.ranking)
        asked = vectors[:queries] if queries else vectors
        start = time.perf_counter()
        for track_id, vector in enumerate(asked, start=1):
            query = index.expanded_query(index.ranked(vector[None, :])[0], frozenset({track_id}))
            index.nearest(query, TOP + 1)
        return (time.perf_counter() - start) / max(1, len(asked))


def scaled(vectors: np.ndarray, tracks: int, seed: int = 0) -> np.ndarray:
    """`tracks` stand-in track vectors: the library's, drawn again with a little noise."""
    rng = np.random.default_rng(seed)
    drawn = vectors[rng.integers(len(vectors), size=tracks)]
    return (drawn + rng.normal(0, 0.05 * drawn.std(), drawn.shape)).astype(np.float32)


def print_row(name: str, r: dict[str, float]) -> None:
    print(f"{name:44} {r['album']:>11.3f} {r['artist']:>12.3f} {r['album, other artists']:>26.3f}")


def print_margins(
    first: str, by_query: dict[str, dict[str, dict[int, float]]], results: dict
) -> None:
    """The first simlib model minus the best baseline of each column, query by query: the
    mean and its 95 % bootstrap interval over the queries."""
    baselines = [n for n in by_query if not n.startswith("simlib") and n != "random"]
    print(f"{first} minus the best baseline, query by query (95 % bootstrap interval):")
    for metric, label in COLUMNS.items():
        best = max(baselines, key=lambda n: results[n][metric])
        mean, low, high = difference_interval(by_query[first][metric], by_query[best][metric])
        print(f"  {label} vs {best}: {mean:+.3f} [{low:+.3f}, {high:+.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/simlib-corpus"))
    parser.add_argument(
        "--weights", type=Path, nargs="*", default=[None], help="default: the shipped weights"
    )
    parser.add_argument("--side", choices=("test", "val"), default="test")
    parser.add_argument("--no-seen", action="store_true", help="skip the seen-albums line")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pymusly.set_musly_loglevel(0)
    split = load_split(args.corpus)
    print(describe(split))
    problems = leaks(split)
    if problems:
        raise SystemExit("split leaks: " + "; ".join(problems))
    models = [SimilarityModel.load(onnx_path(w)) for w in args.weights]
    timing = Timing()
    lib = analyse(split[args.side], models, timing)
    n = len(lib.albums)
    mfcc = np.stack(lib.mfcc)
    mfcc = (mfcc - mfcc.mean(axis=0)) / np.maximum(mfcc.std(axis=0), 1e-9)
    whole, whole_latency = musly_distances(lib.musly_whole)
    excerpt, _ = musly_distances(lib.musly_excerpt)
    rng = np.random.default_rng(0)
    names = [
        f"simlib {f'{w.parent.name}/{w.stem}' if w else 'shipped'} ({m.version[:6]})"
        for w, m in zip(args.weights, models, strict=True)
    ]
    methods = {
        name: simlib_distances(np.stack(rows), model)
        for name, rows, model in zip(names, lib.simlib, models, strict=True)
    } | {
        "pymusly timbre, whole track": whole,
        "pymusly timbre, 30 s excerpt": excerpt,
        "MFCC mean/std cosine": cosine_distances(mfcc),
        "random": cosine_distances(rng.standard_normal((n, 32))),
    }
    queries = list(range(n))
    by_query = {name: per_query(d, queries, lib.albums, lib.artists) for name, d in methods.items()}
    results = {name: means(scores) for name, scores in by_query.items()}
    first = next(iter(results.values()))
    print(
        f"library: the {n} {args.side.upper()} tracks ({timing.audio_s / 3600:.1f} h), "
        "each queried against the others"
    )
    print(f"{'method':44} {'album-P@10':>11} {'artist-P@10':>12} {'album-P@10, other artists':>26}")
    print(
        f"{'(queries)':44} {first['n album']:>11} {first['n artist']:>12} "
        f"{first['n album, other artists']:>26}"
    )
    for name, r in results.items():
        print_row(name, r)
    if not args.no_seen:
        seen = seen_albums([t for t in split["train"] if not t.extra], models[0])
        print_row(f"{names[0]}, seen albums", seen)
        print(
            f"  (seen albums: the {len([t for t in split['train'] if not t.extra])} dev TRAIN"
            " tracks queried against each other; weights trained on the TRAIN packages saw"
            " these albums)"
        )
    print_margins(names[0], by_query, results)
    stages = timing.stages
    print(
        f"simlib per track: decode {stages['decode'] / n * 1000:.0f} ms, "
        f"features {stages['features'] / n * 1000:.0f} ms, "
        f"embed {stages['embed'] / n * 1000:.0f} ms "
        f"(embed = {stages['embed'] / (stages['decode'] + stages['features']):.0%}"
        " of decode+features)"
    )
    print(
        "throughput, audio-s per wall-s: "
        f"simlib embed only {timing.audio_s / stages['embed']:.0f}, "
        f"simlib decode+features+embed {timing.audio_s / sum(stages.values()):.0f}, "
        f"pymusly decode+analysis {timing.audio_s / lib.musly_s:.0f}"
    )
    latency = index_latency(np.stack(lib.simlib[0]), models[0])
    print(
        f"query latency (top-10 over {n} tracks): simlib index "
        f"{latency * 1e3:.3f} ms, pymusly {whole_latency * 1e3:.3f} ms"
    )
    large = index_latency(scaled(np.stack(lib.simlib[0]), SCALE_TRACKS), models[0], 200)
    print(f"query latency (top-10 over {SCALE_TRACKS} tracks, the library's drawn again with "
          f"noise): simlib index {large * 1e3:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
