"""Benchmark "find similar tracks" on the real development corpus, against baselines.

Queries are the corpus tracks of the held-out TEST split (`similarity_split`, the
tracks the shipped weights never saw); candidates are the whole library (train
and test tracks), minus the query itself. Labels are the files' own tags.

    python benchmarks/similar.py --corpus ~/simlib-corpus

Prints one table: album-P@10 (queries whose album has >= 5 tracks), artist-P@10
(queries whose known artist has >= 3 tracks), artist-filtered album-P@10
(results by the query's artist removed first; queries whose album has >= 5
tracks by other artists), for simlib, pymusly (timbre, whole track and its
default 30 s excerpt), a mean/std-of-MFCC cosine baseline and random; then
throughput and query latency.
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
from simlib.similar.index import TrackIndex
from simlib.similar.index import build as build_track_index
from simlib.similar.model import SimilarityModel
from simlib.train.corpus import library_tracks, similarity_split
from simlib.train.pairs import normalise_tag

MUSLY_RATE_HZ = 22_050
MUSLY_EXCERPT_S = 30.0
TOP = 10


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


def simlib_distances(vectors: np.ndarray) -> np.ndarray:
    """Minus the scores `simlib similar` ranks by: a real track index, scored exactly."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "similarity.ann"
        build_track_index(path, np.arange(1, len(vectors) + 1), vectors)
        index = TrackIndex(path, vectors.shape[1])
        units = index.centred(vectors)
        return -(units @ units.T)


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


def precision_at_10(
    distances: np.ndarray,
    queries: list[int],
    albums: list[str | None],
    artists: list[str | None],
) -> dict[str, float]:
    """album-P@10, artist-P@10 and artist-filtered album-P@10 (see the module docstring)."""
    album_count = Counter(a for a in albums if a)
    artist_count = Counter(a for a in artists if a)
    other_artist_album = Counter((al, ar) for al, ar in zip(albums, artists, strict=True) if al)
    scores: dict[str, list[float]] = {"album": [], "artist": [], "album, other artists": []}
    for q in queries:
        order = [j for j in np.argsort(distances[q], kind="stable") if j != q]
        top = order[:TOP]
        if albums[q] and album_count[albums[q]] >= 5:
            scores["album"].append(np.mean([albums[j] == albums[q] for j in top]))
        if artists[q] and artist_count[artists[q]] >= 3:
            scores["artist"].append(np.mean([artists[j] == artists[q] for j in top]))
        others = album_count[albums[q]] - other_artist_album[(albums[q], artists[q])] * bool(
            artists[q]
        )
        if albums[q] and others >= 5:
            kept = [j for j in order if not (artists[q] and artists[j] == artists[q])][:TOP]
            scores["album, other artists"].append(np.mean([albums[j] == albums[q] for j in kept]))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()} | {
        f"n {k}": len(v) for k, v in scores.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/simlib-corpus"))
    parser.add_argument(
        "--weights", type=Path, nargs="*", default=[None], help="default: the shipped weights"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N tracks only (quick runs)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pymusly.set_musly_loglevel(0)
    corpus = args.corpus.expanduser()
    tracks = library_tracks(corpus)[: args.limit]
    models = [SimilarityModel.load(w) for w in args.weights]
    timing = Timing()
    simlib_rows: list[list[np.ndarray]] = [[] for _ in models]
    mfcc_rows, musly_whole, musly_excerpt, kept = [], [], [], []
    jukebox = pymusly.MuslyJukebox(method="timbre")
    musly_time = 0.0
    for path, tags in tracks:
        vector, samples, mel = simlib_vector(path, models[0], timing)
        if samples.size == 0:
            continue
        kept.append((path, tags))
        simlib_rows[0].append(vector)
        for rows, model in zip(simlib_rows[1:], models[1:], strict=True):
            rows.append(model.embed(mel))
        mfcc_rows.append(mfcc_stats(samples))
        start = time.perf_counter()
        audio = musly_input(decode(path, sample_rate_hz=MUSLY_RATE_HZ))
        musly_whole.append(jukebox.track_from_audiodata(audio))
        middle = max(0, (audio.size - int(MUSLY_EXCERPT_S * MUSLY_RATE_HZ)) // 2)
        excerpt = audio[middle : middle + int(MUSLY_EXCERPT_S * MUSLY_RATE_HZ)]
        musly_excerpt.append(jukebox.track_from_audiodata(excerpt))
        musly_time += time.perf_counter() - start
    albums = [normalise_tag(t.album) for _, t in kept]
    artists = [normalise_tag(t.artist) for _, t in kept]
    queries = [
        i for i, (p, _) in enumerate(kept) if similarity_split(str(p.relative_to(corpus))) == "test"
    ]
    simlib_vectors = np.stack(simlib_rows[0])
    with tempfile.TemporaryDirectory() as folder:
        build_track_index(Path(folder) / "i.ann", np.arange(1, len(kept) + 1), simlib_vectors)
        index = TrackIndex(Path(folder) / "i.ann", simlib_vectors.shape[1])
        start = time.perf_counter()
        for q in queries:
            index.nearest(simlib_vectors[q], TOP + 1)
        simlib_latency = (time.perf_counter() - start) / max(1, len(queries))
    mfcc = np.stack(mfcc_rows)
    mfcc = (mfcc - mfcc.mean(axis=0)) / np.maximum(mfcc.std(axis=0), 1e-9)
    whole, whole_latency = musly_distances(musly_whole)
    excerpt, _ = musly_distances(musly_excerpt)
    rng = np.random.default_rng(0)
    methods = (
        {
            f"simlib {w.stem if w else 'shipped'} ({m.version[:6]})": simlib_distances(
                np.stack(rows)
            )
            for w, m, rows in zip(args.weights, models, simlib_rows, strict=True)
        }
        | {
            f"simlib {w.stem if w else 'shipped'}, plain cosine": cosine_distances(np.stack(rows))
            for w, rows in zip(args.weights, simlib_rows, strict=True)
        }
        | {
            "pymusly timbre, whole track": whole,
            "pymusly timbre, 30 s excerpt": excerpt,
            "MFCC mean/std cosine": cosine_distances(mfcc),
            "random": cosine_distances(rng.standard_normal((len(kept), 32))),
        }
    )
    results = {name: precision_at_10(d, queries, albums, artists) for name, d in methods.items()}
    first = next(iter(results.values()))
    print(
        f"corpus {corpus}: {len(kept)} tracks ({timing.audio_s / 3600:.1f} h) as candidates; "
        f"{len(queries)} held-out TEST-split queries"
    )
    header = (
        f"{'method':32} {'album-P@10':>11} {'artist-P@10':>12} {'album-P@10, other artists':>26}"
    )
    print(header)
    print(
        f"{'(queries)':32} {first['n album']:>11} {first['n artist']:>12} "
        f"{first['n album, other artists']:>26}"
    )
    for name, r in results.items():
        print(
            f"{name:32} {r['album']:>11.3f} {r['artist']:>12.3f} {r['album, other artists']:>26.3f}"
        )
    stages = timing.stages
    print(
        f"simlib per track: decode {stages['decode'] / len(kept) * 1000:.0f} ms, "
        f"features {stages['features'] / len(kept) * 1000:.0f} ms, "
        f"embed {stages['embed'] / len(kept) * 1000:.0f} ms "
        f"(embed = {stages['embed'] / (stages['decode'] + stages['features']):.0%}"
        " of decode+features)"
    )
    print(
        "throughput, audio-s per wall-s: "
        f"simlib embed only {timing.audio_s / stages['embed']:.0f}, "
        f"simlib decode+features+embed {timing.audio_s / sum(stages.values()):.0f}, "
        f"pymusly decode+analysis {timing.audio_s / musly_time:.0f}"
    )
    print(
        f"query latency (top-10 over {len(kept)} tracks): simlib Annoy index "
        f"{simlib_latency * 1e3:.3f} ms, pymusly {whole_latency * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
