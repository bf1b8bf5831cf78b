"""Identification benchmark: simlib's learned fingerprint beside audfprint2 on the same clips.

Library = corpus tracks the model trained on plus half of the held-out tracks ("unseen":
indexed but never trained on); the other held-out half is "not in library" and gives the
false-positive rate. Clips of 3, 5 and 10 s at seeded random offsets (never digital
silence) are degraded by every `simlib.augment.CONDITIONS` entry and written as 16 kHz WAV
files that both systems read. Top-1 = right track and offset within +-1.5 s. "FP,
distinct" leaves out not-in-library tracks whose whole recording audfprint2 finds in the
library (the same music shipped in two packages): answering those is no error. The
simulated rooms come from another seed than the rooms the model trained with; the speech
and ambient clips are the corpus material training used too, in other mixtures.

    python benchmarks/identify.py --corpus ~/simlib-corpus --tracks 150 --clips-per-cell 40
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from simlib import weights
from simlib.audio import ANALYSIS_RATE_HZ, decode
from simlib.audio.features import log_mel
from simlib.identify import index as segment_index
from simlib.identify.index import FingerprintIndex
from simlib.identify.model import FingerprintModel
from simlib.identify.policy import Calibration, Match, Policy
from simlib.identify.query import ClipMatcher
from simlib.train.augment import CONDITIONS, NoiseBank, apply_condition
from simlib.train.corpus import fingerprint_split
from simlib.train.fingerprint import update_settings
from simlib.types import Segments

OFFSET_TOLERANCE_S = 1.5
ROOM_SEED = 1
"""Seed of the benchmark's simulated rooms; the fingerprint model trains with seed 0's."""
LENGTHS_S = (3.0, 5.0, 10.0)


@dataclass(frozen=True)
class Best:
    """The best alignment of a clip that keeps time, whatever its confidence."""

    track_id: int
    offset_s: float
    margin: float
    source_z: float | None


@dataclass
class Clip:
    path: Path
    track: int
    """Library track id, or -1 for a clip of a track not in the library."""
    start_s: float
    condition: str
    length_s: float
    unseen: bool
    source: Path


@dataclass
class Library:
    paths: list[Path]
    unseen: set[int]
    outside: list[Path]


def choose_library(corpus: Path, n_tracks: int) -> Library:
    """Deterministic library: training tracks + even held-out tracks; odd ones stay out."""
    train, held = fingerprint_split(corpus)
    unseen = held[0::2][: max(1, n_tracks // 6)]
    paths = train[: n_tracks - len(unseen)] + unseen
    return Library(paths, set(range(len(paths) - len(unseen), len(paths))), held[1::2])


def make_clips(
    library: Library,
    noise: NoiseBank,
    clips_per_cell: int,
    outdir: Path,
    seed: int,
    durations: dict[Path, float],
) -> list[Clip]:
    """Write every (condition, length) cell's clips plus not-in-library clips to `outdir`."""
    rng = np.random.default_rng(seed)
    clips: list[Clip] = []
    cells = [(c, n) for c in CONDITIONS for n in LENGTHS_S]
    cells += [(c, n, "outside") for c, n in (("clean_mp3", 5), ("speech_5db", 5), ("room", 10))]
    for cell in cells:
        condition, length_s = cell[0], cell[1]
        outside = len(cell) == 3
        pool = library.outside if outside else library.paths
        made = 0
        while made < clips_per_cell:
            track = int(rng.integers(len(pool)))
            span = durations[pool[track]] - length_s * 1.03 - 1.0
            if span <= 0:
                continue
            start_s = float(rng.uniform(0.5, span))
            raw = decode(pool[track], start_s, length_s * 1.03 + 0.1)
            if raw.size < length_s * 1.03 * ANALYSIS_RATE_HZ or np.abs(raw).max() < 1e-3:
                continue
            audio = apply_condition(condition, raw, int(rng.integers(2**31)), noise, length_s)
            name = f"{'out-' if outside else ''}{condition}-{length_s:g}-{made:03d}.wav"
            sf.write(outdir / name, audio, ANALYSIS_RATE_HZ, subtype="PCM_16")
            clips.append(
                Clip(
                    path=outdir / name,
                    track=-1 if outside else track,
                    start_s=start_s,
                    condition="not_in_library" if outside else condition,
                    length_s=length_s,
                    unseen=track in library.unseen and not outside,
                    source=pool[track],
                )
            )
            made += 1
    return clips


class SimlibSystem:
    """simlib's query path (`simlib.identify.query.ClipMatcher`) over an index of this
    library, its segments kept in memory instead of a catalog, with `simlib identify`'s
    policy (the weights' calibration and thresholds).

    `base` shares already embedded library segments (subsampled to this db hop) so that
    storage variants do not re-embed the library.
    """

    def __init__(self, model: FingerprintModel, workdir: Path, config: str, base=None):
        db_hop, query_hop = config.split(":")
        self.model = model.with_settings(db_hop_s=float(db_hop), query_hop_s=float(query_hop))
        self.dir = workdir
        self.policy = Policy.from_settings(model.settings)
        self.paths: list[Path] = []
        """Library files by track id (distractor tracks have none)."""
        self.base = base
        self.segments: list[Segments] = []
        self.stored: list[Segments] = []
        """Every indexed track's segments, library then distractors, by track id."""
        self.index: FingerprintIndex | None = None

    def build(self, paths: list[Path], extra: list[Segments] = ()) -> dict:
        started = time.perf_counter()
        self.paths = list(paths)
        if not self.segments and self.base is not None:
            step = int(round(self.model.db_hop_s / self.base.model.db_hop_s))
            self.segments = [
                Segments(s.start_s[::step], s.vectors[::step]) for s in self.base.segments
            ]
        elif not self.segments:
            self.segments = [
                self.model.embed(log_mel(decode(p)), self.model.db_hop_s) for p in self.paths
            ]
        embed_s = time.perf_counter() - started
        self.stored = self.segments + list(extra)
        items = list(enumerate(self.stored))
        stats = segment_index.build(self.dir, items, self.model.dim, self.model.n_trees)
        self.index = FingerprintIndex.open(self.dir)
        return {"seconds": embed_s + stats.seconds, "bytes": stats.bytes, "items": stats.items}

    def path_of(self, track_id: int) -> Path | None:
        return self.paths[track_id] if track_id < len(self.paths) else None

    def query(self, path: Path, policy: Policy | None = None) -> tuple[list[Match], Best | None]:
        """Matches under `policy` (default: the system's), and the best alignment that keeps
        time whatever its confidence (for calibration)."""
        policy = policy or self.policy
        matcher = ClipMatcher(
            self.model, self.index, self.stored.__getitem__, self.path_of, policy
        )
        decision = matcher.decide(decode(path))
        best = next((e for e in decision.evidence if e.alignment.keeps_time()), None)
        if best is not None:
            aligned = best.alignment
            best = Best(aligned.track_id, best.offset_s, aligned.margin, best.source_z)
        return list(decision.matches), best


class AudfprintSystem:
    """audfprint2 with default settings, in process, reading audio through simlib.audio."""

    def __init__(self, workdir: Path) -> None:
        from audfprint2 import cli
        from audfprint2.core import hash_table
        from audfprint2.utils import audio as afp_audio

        def read(filename, sr=None, channels=None, ffmpeg_path=None):
            rate = sr or ANALYSIS_RATE_HZ
            return decode(filename, sample_rate_hz=rate).astype(np.float32), rate

        afp_audio.audio_read = read
        args = cli.parse_args(["new", "-d", str(workdir / "afp.pklz")])
        make = [args.density, False, args.pks_per_frame, args.fanout, args.freq_sd]
        make += [args.shifts, args.samplerate, args.continue_on_error, None]
        self.ingest_analyzer = cli.setup_analyzer(*make)
        make[1] = True
        self.match_analyzer = cli.setup_analyzer(*make)
        self.matcher = cli.setup_matcher(
            args.match_win, args.search_depth, args.min_count, args.max_matches,
            args.exact_count, False, args.time_quantile, False, False, False,
        )  # fmt: skip
        self.table = hash_table.HashTable(
            hashbits=args.hashbits, depth=args.bucketsize, maxtime=1 << 14
        )
        self.table.params["samplerate"] = self.ingest_analyzer.target_sr
        self.db_path = workdir / "afp.pklz"
        self.hop_s = self.match_analyzer.n_hop / self.match_analyzer.target_sr

    def build(self, paths: list[Path]) -> dict:
        started = time.perf_counter()
        self.ids = {}
        for track, path in enumerate(paths):
            self.ingest_analyzer.ingest(self.table, str(path))
            self.ids[str(path)] = track
        self.table.save(str(self.db_path))
        return {"seconds": time.perf_counter() - started, "bytes": self.db_path.stat().st_size}

    def query(self, path: Path) -> tuple[list[Match], Match | None]:
        rows, _, _ = self.matcher.match_file(self.match_analyzer, self.table, str(path))
        matches = [
            Match(self.ids[self.table.names[int(r[0])]], float(r[2]) * self.hop_s, 1.0, int(r[1]))
            for r in rows
        ]
        return matches, matches[0] if matches else None


DUPLICATE_MIN_HASHES = 50
"""audfprint2 aligned hashes over a whole track that mean its recording is in the library."""


def duplicated_outside(afp: AudfprintSystem, outside: list[Path]) -> dict[Path, int]:
    """Not-in-library tracks whose whole recording audfprint2 finds in the library
    (the corpus has the same music in more than one package): {path: library track}.
    An independent judge, so that simlib does not decide what counts against it."""
    found = {}
    for path in outside:
        matches, _ = afp.query(path)
        if matches and matches[0].votes >= DUPLICATE_MIN_HASHES:
            found[path] = matches[0].track_id
    return found


def is_correct(clip: Clip, match: Match | Best | None) -> bool:
    if match is None:
        return False
    return match.track_id == clip.track and abs(match.offset_s - clip.start_s) <= OFFSET_TOLERANCE_S


def run_queries(system, clips: list[Clip], **query) -> tuple[dict, list[float]]:
    """Per clip (correct, any match, best alignment or None, best alignment correct,
    reported track or -1), and wall seconds per query."""
    outcome, latency = {}, []
    for clip in clips:
        started = time.perf_counter()
        matches, best = system.query(clip.path, **query)
        latency.append(time.perf_counter() - started)
        outcome[clip.path] = (
            is_correct(clip, matches[0] if matches else None),
            bool(matches),
            best,
            is_correct(clip, best),
            matches[0].track_id if matches else -1,
        )
    return outcome, latency


def distractors(segments: list[Segments], n_tracks: int, seed: int) -> list[Segments]:
    """Stand-ins for `n_tracks` more tracks: real tracks' vectors in shuffled order (so a copy
    cannot line up with a clip of its source in time), each turned by a random small
    rotation (cos between a vector and its copy about 0.5) and renormalised."""
    rng = np.random.default_rng(seed)
    dim = segments[0].vectors.shape[1]
    out = []
    for _ in range(n_tracks):
        source = segments[int(rng.integers(len(segments)))]
        skew = rng.standard_normal((dim, dim))
        skew = (skew - skew.T) / math.sqrt(2 * dim)
        rotation = torch.linalg.matrix_exp(torch.from_numpy(skew * 1.05)).numpy()
        vectors = source.vectors[rng.permutation(len(source))] @ rotation.T.astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
        out.append(Segments(source.start_s, vectors.astype(np.float32)))
    return out


def fit_logistic(features: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Weights (one per feature column, then the bias) of the logistic regression of
    `correct` on `features`, maximum likelihood by Newton steps."""
    x = np.c_[features.astype(np.float64), np.ones(len(features))]
    y = correct.astype(np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-(x @ w)))
        hess = x.T @ (x * (p * (1 - p))[:, None]) + 1e-6 * np.eye(len(w))
        w -= np.linalg.solve(hess, x.T @ (p - y))
    return w


def calibrate(name: str, system: SimlibSystem, clips: list[Clip]) -> Calibration:
    """Fit the system's confidence on separate calibration clips: on the margin alone over
    every clip, on margin and source z over the clips the fitted margin map would check
    (every best alignment is checked here). Print it with the not-in-library tail."""
    check_every = system.policy.override(check_floor=0.0, trusted_margin=math.inf)
    rows = run_queries(system, clips, policy=check_every)[0]
    best = [(rows[c.path][2], rows[c.path][3]) for c in clips if rows[c.path][2] is not None]
    slope, bias = fit_logistic(
        np.array([[a.margin] for a, _ in best]), np.array([ok for _, ok in best])
    )
    margin_only = Calibration((round(float(slope), 3), round(float(-bias / slope), 3)), (0, 0, 0))
    floor = system.policy.check_floor
    checked = [(a, ok) for a, ok in best if margin_only.from_margin(a.margin) >= floor]
    w = fit_logistic(
        np.array([[a.margin, a.source_z] for a, _ in checked]), np.array([ok for _, ok in checked])
    )
    fitted = Calibration(margin_only.margin, tuple(round(float(v), 3) for v in w))
    outside = [rows[c.path][2] for c in clips if c.track < 0 and rows[c.path][2] is not None]
    tail = " ".join(f"{v:.3f}" for v in np.percentile([a.margin for a in outside], [90, 99, 100]))
    z_tail = " ".join(
        f"{v:.1f}" for v in np.percentile([a.source_z for a in outside], [90, 99, 100])
    )
    print(f"calibration {name}: margin {fitted.margin}, with source {fitted.with_source}, from "
          f"{len(clips)} clips ({len(checked)} checked); not-in-library margin p90/p99/max "
          f"{tail}, source z {z_tail}", flush=True)  # fmt: skip
    return fitted


def pct(values: list[bool]) -> str:
    return f"{100 * np.mean(values):5.1f}" if values else "    -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/simlib-corpus"))
    parser.add_argument("--tracks", type=int, default=150)
    parser.add_argument("--clips-per-cell", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--weights", type=Path, default=None, help="ONNX file (default: the shipped model)"
    )
    parser.add_argument(
        "--configs",
        default="model",
        help="comma-separated db_hop_s:query_hop_s simlib variants, first is the main "
        "one ('model' = the weights' settings); later db hops must be multiples",
    )
    parser.add_argument("--scale-tracks", type=int, default=10_000)
    parser.add_argument("--no-audfprint", action="store_true")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="fit each simlib variant's confidence on separate clips (--calibration-seed) first",
    )
    parser.add_argument(
        "--calibration-seed",
        type=int,
        default=None,
        help="seed of the --calibrate clips (default: --seed + 1); never the reported seed",
    )
    parser.add_argument(
        "--calibration-clips-per-cell",
        type=int,
        default=None,
        help="clips per cell for --calibrate (default: half of --clips-per-cell)",
    )
    parser.add_argument(
        "--write-calibration",
        action="store_true",
        help="with --calibrate: store the main variant's fitted calibration in the weights file",
    )
    args = parser.parse_args()
    if args.write_calibration and not args.calibrate:
        parser.error("--write-calibration needs --calibrate")
    torch.set_num_threads(1)
    corpus = args.corpus.expanduser()
    library = choose_library(corpus, args.tracks)
    model = FingerprintModel.load(args.weights)
    configs = [
        f"{model.db_hop_s:g}:{model.query_hop_s:g}" if c == "model" else c
        for c in args.configs.split(",")
    ]
    noise = NoiseBank.load(corpus / "noise", rir_seed=ROOM_SEED)
    with tempfile.TemporaryDirectory(prefix="simlib-bench-") as tmp:
        work = Path(tmp)
        (work / "clips").mkdir()
        with open(corpus / "manifest.csv", newline="") as f:
            durations = {corpus / r["path"]: float(r["seconds"]) for r in csv.DictReader(f)}
        clips = make_clips(
            library, noise, args.clips_per_cell, work / "clips", args.seed, durations
        )
        audio_s = sum(durations[p] for p in library.paths)
        if args.calibrate:
            (work / "calibration").mkdir()
            calibration_seed = (
                args.seed + 1 if args.calibration_seed is None else args.calibration_seed
            )
            if calibration_seed == args.seed:
                parser.error("--calibration-seed must differ from --seed")
            per_cell = args.calibration_clips_per_cell or args.clips_per_cell // 2
            calibration_clips = make_clips(
                library, noise, per_cell, work / "calibration", calibration_seed, durations
            )
        main_system = SimlibSystem(model, work / "index0", configs[0])
        systems = {f"simlib {configs[0]}": main_system}
        for i, config in enumerate(configs[1:], 1):
            systems[f"simlib {config}"] = SimlibSystem(
                model, work / f"index{i}", config, main_system
            )
        if not args.no_audfprint:
            systems["audfprint2"] = AudfprintSystem(work)
        results, builds, latencies = {}, {}, {}
        duplicates: dict[Path, int] = {}
        for name, system in systems.items():
            builds[name] = system.build(library.paths)
            if isinstance(system, AudfprintSystem):
                duplicates = duplicated_outside(system, library.outside)
            if args.calibrate and isinstance(system, SimlibSystem):
                fitted = calibrate(name, system, calibration_clips)
                system.policy = system.policy.override(calibration=fitted)
            results[name], latencies[name] = run_queries(system, clips)
        main = f"simlib {configs[0]}"
        scale_clips = [c for c in clips if c.length_s == 5.0]
        extra = distractors(main_system.segments, args.scale_tracks, args.seed)
        scale_build = main_system.build(library.paths, extra)
        scale_results, scale_latency = run_queries(main_system, scale_clips)
        scale_audio_s = audio_s + sum(float(s.start_s[-1]) + 1 for s in extra if len(s))

    names = list(systems)
    width = max(12, *(len(n) + 2 for n in names))
    print(f"\nlibrary {len(library.paths)} tracks ({audio_s / 3600:.1f} h, "
          f"{len(library.unseen)} never trained on), not in library {len(library.outside)} "
          f"tracks, model {model.version}; simlib columns db_hop_s:query_hop_s")  # fmt: skip
    header = f"{'condition':<16}{'len':>4}{'n':>4}" + "".join(f"{n:>{width}}" for n in names)
    header += f"{'main unseen (n)':>17}{'main@scale':>12}{'main track':>12}"
    print(header)
    print("-" * len(header))
    for condition in CONDITIONS:
        for length_s in LENGTHS_S:
            cell = [c for c in clips if c.condition == condition and c.length_s == length_s]
            line = f"{condition:<16}{length_s:>4g}{len(cell):>4}"
            for n in names:
                line += f"{pct([results[n][c.path][0] for c in cell]):>{width}}"
            unseen = [results[main][c.path][0] for c in cell if c.unseen]
            line += f"{pct(unseen):>11} ({len(unseen):>3})"
            at_scale = [scale_results[c.path][0] for c in cell if c.path in scale_results]
            track_only = [results[main][c.path][4] == c.track for c in cell]
            print(line + f"{pct(at_scale):>12}{pct(track_only):>12}")
    outside = [c for c in clips if c.condition == "not_in_library"]
    distinct = [c for c in outside if c.source not in duplicates]
    for label, group in (("false positives", outside), ("FP, distinct", distinct)):
        line = f"{label:<16}{'':>4}{len(group):>4}"
        for n in names:
            line += f"{pct([results[n][c.path][1] for c in group]):>{width}}"
        fp_scale = [scale_results[c.path][1] for c in group if c.path in scale_results]
        print(line + f"{'':>17}{pct(fp_scale):>12}")
    print("-" * len(header))
    five = [i for i, c in enumerate(clips) if c.length_s == 5.0]
    for label, q in (("query p50 ms", 50), ("query p95 ms", 95)):
        line = f"{label + ' (5 s)':<24}"
        for n in names:
            line += f"{1000 * np.percentile([latencies[n][i] for i in five], q):>{width}.1f}"
        print(line + f"{'':>17}{1000 * np.percentile(scale_latency, q):>12.1f}")
    line = f"{'index x real time':<24}"
    for n in names:
        speed = audio_s / builds[n]["seconds"] if n in (main, "audfprint2") else math.nan
        line += f"{speed:>{width}.0f}"
    print(line + "   (1 core: decode+features+embed+build; variants reuse main's vectors)")
    line = f"{'index bytes / audio s':<24}"
    for n in names:
        line += f"{builds[n]['bytes'] / audio_s:>{width}.0f}"
    print(line + f"{'':>17}{scale_build['bytes'] / scale_audio_s:>12.0f}")
    print("main track: the main variant's top match is the right track, at any offset "
          "(looping music repeats itself)")  # fmt: skip
    print(f"scale: +{args.scale_tracks} distractor tracks ({scale_build['items']} items, "
          f"{scale_audio_s / 3600:.0f} h) = shuffled, rotated copies of real track vectors; "
          f"5 s clips only. SQLite float16 blobs: 2 x dim bytes per segment.")  # fmt: skip
    for path, track in duplicates.items():
        print(f"not in library, but audfprint2 finds the whole track in it: {path.name} "
              f"= {library.paths[track].name}")  # fmt: skip
    for clip in outside:
        for n in names:
            if results[n][clip.path][1]:
                print(f"false positive {n}: {clip.path.name} from {clip.source.name} "
                      f"-> {library.paths[results[n][clip.path][4]].name}")  # fmt: skip
    best = [results[main][c.path][2] for c in clips if results[main][c.path][2] is not None]
    conf = [main_system.policy.calibration.confidence(a.margin, a.source_z) for a in best]
    print(f"main confidence range {min(conf):.2f}..{max(conf):.2f}")
    if args.write_calibration:
        path = (args.weights or weights.shipped_path("fingerprint")).with_suffix(".pt")
        update_settings(path, **main_system.policy.settings())
        print(f"wrote calibration {main_system.policy.calibration} into {path}")


if __name__ == "__main__":
    main()
