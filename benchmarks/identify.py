"""Identification on music and degradations the model never trained or was calibrated on.

Music (`simlib.train.corpus`): the library and its not-in-library tracks are TEST packages
(one track in OUTSIDE_EVERY, by a hash of its file name, stays out of the library: its
clips measure false positives); the fingerprint trains on TRAIN packages only.
An answer is right at the clip's track and offset (within OFFSET_TOLERANCE_S), or where
the library's clean audio is the clip's own (a loop, one recording in two files:
`same_audio`). Degradations (`simlib.train.augment`): every test clip is degraded with
the "test" role of every source (talkers, noise, rooms, loudspeakers, microphones,
codecs), which neither training nor calibration draw. `--calibrate` fits each simlib
model's confidence on VAL packages (padded with TRAIN tracks to the test library's size)
degraded with "calib" sources, never on test clips; `--write-calibration` stores the fit
in the weights.

One run prints one table with the simlib model(s), audfprint2 default and audfprint2 dense
(`--density 100 --shifts 4`) on the same WAV clips; then results per source family, the
"seen" rows (test music, the earlier benchmark's recipe with training sources), false
positives, the precision-recall curve, query times, the first model at `--scale-tracks`
synthetic tracks, disk (a real `simlib scan` of the library: catalog + indexes), and
`simlib identify` over a batch of clips against `audfprint match` on the same clips.

    python benchmarks/identify.py --calibrate --write-calibration

`--side val` runs the same on VAL music with "calib" sources, to choose between models
without TEST; its confidence figures are in-sample (the calibration is fitted there).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from simlib import weights
from simlib.audio import ANALYSIS_RATE_HZ, decode
from simlib.audio.features import log_mel
from simlib.catalog import Catalog, TrackPeaks
from simlib.identify import index as segment_index
from simlib.identify.index import FingerprintIndex
from simlib.identify.model import PHONE_VIEW, FingerprintModel
from simlib.identify.peaks import track_peaks
from simlib.identify.policy import SOURCE_Z_CAP, Calibration, Match, Policy
from simlib.identify.query import ClipMatcher, StoredView
from simlib.library.embedders import FingerprintPhoneStage, FingerprintStage
from simlib.train.augment import (
    CONDITIONS,
    SEEN_CONDITIONS,
    SYNTH_SPEECH_DIR,
    NoiseBank,
    Role,
    apply_condition,
)
from simlib.train.corpus import load_split
from simlib.train.fingerprint import update_settings
from simlib.types import Segments

OFFSET_TOLERANCE_S = 1.5
SEGMENT_STAGES = (FingerprintStage, FingerprintPhoneStage)
"""The scan's stages of the library's two stored views (full band, telephone band)."""
FINGERPRINT_FILES = (weights.FINGERPRINT.name, weights.FINGERPRINT_PHONE.name)
"""The weights files of a fingerprint model: its network and its telephone band's."""
LENGTHS_S = (3.0, 5.0, 10.0)
SOURCE_ROLE: dict[str, Role] = {"test": "test", "val": "calib"}
"""The degradation sources each side of the corpus is benchmarked with."""
SEEN_CELLS = (("seen_babble_0db", 5.0), ("seen_room", 10.0))
OUTSIDE_CELLS = (("clean_mp3", 5.0), ("babble_5db", 5.0), ("phone_room", 10.0))
OUTSIDE_EVERY = 5
AUDFPRINT = {"audfprint2": [], "audfprint2 dense": ["--density", "100", "--shifts", "4"]}


@dataclass(frozen=True)
class Clip:
    path: Path
    track: int
    """Library track id, or -1 for a clip of a track not in the library."""
    start_s: float
    condition: str
    length_s: float
    sources: str
    """The degradation sources the clip drew ("kind:source" words)."""
    source: Path


@dataclass
class Library:
    paths: list[Path]
    outside: list[Path]
    fillers: list[Path]
    """Indexed but never queried (calibration: brings its library to the test's size)."""


def _outside(path: Path) -> bool:
    digest = hashlib.blake2b(path.name.encode()).digest()
    return int.from_bytes(digest[:8], "little") % OUTSIDE_EVERY == 0


def choose_library(split: dict, side: str, n_tracks: int, fillers: int = 0) -> Library:
    """`side`'s tracks: one in OUTSIDE_EVERY outside the library, the rest (at most
    `n_tracks`) in it; with `fillers`, that many TRAIN tracks indexed beside them."""
    paths = [t.path for t in split[side]]
    inside = [p for p in paths if not _outside(p)][:n_tracks]
    extra = [t.path for t in split["train"] if not t.extra][:fillers]
    return Library(inside, [p for p in paths if _outside(p)], extra)


def make_clips(
    library: Library,
    banks: dict[str, NoiseBank],
    per_cell: int,
    outdir: Path,
    seed: int,
    seconds: dict[Path, float],
    seen: bool = True,
    conditions: tuple[str, ...] = tuple(CONDITIONS),
) -> list[Clip]:
    """Write the (condition, length) cells' clips of `conditions` and their not-in-library
    clips to `outdir`; CONDITIONS draw on banks["main"], SEEN_CONDITIONS on banks["seen"]."""
    rng = np.random.default_rng(seed)
    outdir.mkdir(parents=True, exist_ok=True)
    cells = [(c, n, False) for c in conditions for n in LENGTHS_S]
    cells += [(c, n, False) for c, n in SEEN_CELLS] if seen else []
    cells += [(c, n, True) for c, n in OUTSIDE_CELLS if c in conditions]
    clips: list[Clip] = []
    for condition, length_s, outside in cells:
        pool = library.outside if outside else library.paths
        bank = banks["seen" if condition in SEEN_CONDITIONS else "main"]
        made = 0
        while made < per_cell:
            track = int(rng.integers(len(pool)))
            span = seconds[pool[track]] - length_s * 1.03 - 1.0
            if span <= 0:
                continue
            start_s = float(rng.uniform(0.5, span))
            raw = decode(pool[track], start_s, length_s * 1.03 + 0.1)
            if raw.size < length_s * 1.03 * ANALYSIS_RATE_HZ or np.abs(raw).max() < 1e-3:
                continue
            audio, sources = apply_condition(
                condition, raw, int(rng.integers(2**31)), bank, length_s
            )
            name = f"{'out-' if outside else ''}{condition}-{length_s:g}-{made:03d}.wav"
            sf.write(outdir / name, audio, ANALYSIS_RATE_HZ, subtype="PCM_16")
            label = "not_in_library" if outside else condition
            track_id = -1 if outside else track
            clips.append(
                Clip(outdir / name, track_id, start_s, label, length_s, sources, pool[track])
            )
            made += 1
    return clips


@dataclass(frozen=True)
class View:
    """Segments of the library's two stored views: the full band and the telephone band
    (`FingerprintModel.embed_phone_band`); one item each per track, or lists of them."""

    full: Segments | list[Segments]
    phone: Segments | list[Segments]


@dataclass(frozen=True)
class Best:
    """An alignment of a clip that keeps time, whatever its confidence."""

    track_id: int
    offset_s: float
    margin: float
    source_z: float | None
    confidence: float


class SimlibSystem:
    """simlib's query path (`simlib.identify.query.ClipMatcher`) over indexes of the
    library's two stored views (the full band and the telephone band), their segments
    kept in memory instead of a catalog (stored as the catalog stores them: int8 vectors,
    see `simlib.catalog.segments`), under `simlib identify`'s policy (the weights'
    calibration and thresholds)."""

    def __init__(self, model: FingerprintModel, workdir: Path) -> None:
        self.model = model
        self.dir = workdir
        self.policy = Policy.from_settings(model.settings)
        self.paths: list[Path] = []
        self.segments: list[View] = []
        """The library tracks' segments of each view (full band, telephone band)."""
        self.peaks: list[TrackPeaks] = []
        """The library tracks' spectral peaks, as a scan stores them."""
        self.stored: View = View([], [])
        """Every indexed track's segments, library then distractors, by track id."""
        self.views: tuple[StoredView, StoredView] | None = None

    def build(self, paths: list[Path], extra: View = View([], [])) -> dict:
        started = time.perf_counter()
        if list(paths) != self.paths or not self.segments:
            self.paths = list(paths)
            analysed = [self._analyse(decode(p)) for p in self.paths]
            self.segments = [segments for segments, _ in analysed]
            self.peaks = [peaks for _, peaks in analysed]
        full = [s.full for s in self.segments] + list(extra.full)
        phone = [s.phone for s in self.segments] + list(extra.phone)
        self.stored = View(full, phone)
        views, stats = [], []
        for name, stored in zip(("full", "phone"), (full, phone), strict=True):
            folder = self.dir / name
            stats.append(segment_index.build(folder, list(enumerate(stored)), self.model.dim))
            views.append(StoredView(FingerprintIndex.open(folder), stored.__getitem__))
        self.views = (views[0], views[1])
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "bytes": sum(s.bytes for s in stats),
            "items": sum(s.items for s in stats),
        }

    def _analyse(self, samples: np.ndarray) -> tuple[View, TrackPeaks]:
        """A track's segments of both views and its peaks, as a scan stores them."""
        mel = log_mel(samples)
        full, phone = (s(self.model).embed(mel).unpack() for s in SEGMENT_STAGES)
        return View(full, phone), track_peaks(samples)

    def path_of(self, track_id: int) -> Path | None:
        return self.paths[track_id] if track_id < len(self.paths) else None

    def peaks_of(self, track_id: int) -> TrackPeaks | None:
        return self.peaks[track_id] if track_id < len(self.peaks) else None

    def query(self, path: Path, policy: Policy | None = None) -> tuple[list[Match], list[Best]]:
        """Matches under `policy` (default: the system's), and the alignments of the deciding
        view that keep time, whatever their confidence, in the order the query ranks them."""
        policy = policy or self.policy
        full, phone = self.views
        matcher = ClipMatcher(
            self.model, full, self.path_of, policy, phone, track_peaks=self.peaks_of
        )
        decision = matcher.decide(decode(path))
        kept = [
            Best(e.alignment.track_id, e.offset_s, e.alignment.margin, e.source_z,
                 policy.confidence(e))
            for e in decision.evidence
            if e.alignment.keeps_time()
        ]  # fmt: skip
        return list(decision.matches), kept


class AudfprintSystem:
    """audfprint2 (its command-line `options`), in process, reading audio through
    simlib.audio."""

    def __init__(self, workdir: Path, options: list[str]) -> None:
        from audfprint2 import cli
        from audfprint2.core import hash_table
        from audfprint2.utils import audio as afp_audio

        def read(filename, sr=None, channels=None, ffmpeg_path=None):
            rate = sr or ANALYSIS_RATE_HZ
            return decode(filename, sample_rate_hz=rate).astype(np.float32), rate

        afp_audio.audio_read = read
        self.options = options
        self.db_path = workdir / f"afp-{len(options)}.pklz"
        args = cli.parse_args(["new", "-d", str(self.db_path), *options])
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
        self.hop_s = self.match_analyzer.n_hop / self.match_analyzer.target_sr

    def build(self, paths: list[Path]) -> dict:
        started = time.perf_counter()
        self.ids = {}
        self.paths = list(paths)
        for track, path in enumerate(paths):
            self.ingest_analyzer.ingest(self.table, str(path))
            self.ids[str(path)] = track
        self.table.save(str(self.db_path))
        return {"seconds": time.perf_counter() - started, "bytes": self.db_path.stat().st_size}

    def query(self, path: Path) -> tuple[list[Match], list[Match]]:
        rows, _, _ = self.matcher.match_file(self.match_analyzer, self.table, str(path))
        matches = [
            Match(self.ids[self.table.names[int(r[0])]], float(r[2]) * self.hop_s, 1.0, int(r[1]))
            for r in rows
        ]
        return matches, matches[:1]


DUPLICATE_MIN_HASHES = 50
"""audfprint2 aligned hashes over a whole track that mean its recording is in the library."""


def duplicated_outside(afp: AudfprintSystem, outside: list[Path]) -> dict[Path, int]:
    """Not-in-library tracks whose whole recording audfprint2 finds in the library (the
    same music shipped twice): {path: library track}. An independent judge."""
    found = {}
    for path in outside:
        matches, _ = afp.query(path)
        if matches and matches[0].votes >= DUPLICATE_MIN_HASHES:
            found[path] = matches[0].track_id
    return found


SAME_AUDIO_MIN_CORRELATION = 0.9
"""An answer elsewhere than where the clip was cut counts as right when the clean audio
there is the clip's own: in the test library an exact repeat (a loop, one recording in two
files) correlates 0.95-0.99 with the clip's source, a varied reprise of a theme 0.80-0.82."""


@functools.cache  # a clip's reported match is often its best alignment too: judge it once
def same_audio(clip: Clip, path: Path | None, offset_s: float) -> bool:
    """Whether the clean audio of `path` near `offset_s` is the clip's source audio: the
    highest normalised cross-correlation of the waveforms, over lags within the offset
    tolerance, reaches SAME_AUDIO_MIN_CORRELATION. Independent of every system's evidence."""
    if path is None:
        return False
    source = decode(clip.source, clip.start_s, clip.length_s).astype(np.float64)
    start_s = max(0.0, offset_s - OFFSET_TOLERANCE_S)
    there = decode(path, start_s, clip.length_s + 2 * OFFSET_TOLERANCE_S).astype(np.float64)
    if there.size < source.size or not source.any():
        return False
    size = source.size + there.size
    spectrum = np.conj(np.fft.rfft(source, size)) * np.fft.rfft(there, size)
    products = np.fft.irfft(spectrum, size)[: there.size - source.size + 1]
    energies = np.convolve(there**2, np.ones(source.size), "valid")
    correlation = products / np.sqrt(np.maximum(energies, 1e-12) * (source**2).sum())
    return bool(correlation.max() >= SAME_AUDIO_MIN_CORRELATION)


def at_source(clip: Clip, match: Match | Best | None) -> bool:
    """The clip's own track, at the offset it was cut from."""
    if match is None:
        return False
    return match.track_id == clip.track and abs(match.offset_s - clip.start_s) <= OFFSET_TOLERANCE_S


def is_correct(clip: Clip, match: Match | Best | None, paths: list[Path]) -> bool:
    """`at_source`, or at a place of `paths` (the indexed library, by track id) whose
    audio is the clip's (`same_audio`)."""
    if match is None:
        return False
    if at_source(clip, match):
        return True
    path = paths[match.track_id] if 0 <= match.track_id < len(paths) else None
    return clip.track >= 0 and same_audio(clip, path, match.offset_s)


@dataclass(frozen=True)
class Outcome:
    correct: bool
    """The reported match is the right track and offset (`is_correct`)."""
    elsewhere: bool
    """... right only because the audio there is the clip's (not `at_source`)."""
    matched: bool
    best: Best | Match | None
    """The alignment the query ranks first (what the margin's calibration is fitted on)."""
    best_correct: bool
    answer: Best | Match | None
    """The most confident alignment: the answer at any threshold (the precision-recall
    curve)."""
    answer_correct: bool
    track: int
    """The reported track, -1 for no match."""


def run_queries(system, clips: list[Clip], **query) -> tuple[dict[Path, Outcome], list[float]]:
    """Each clip's outcome, and the wall seconds of each query."""
    outcome, latency = {}, []
    for clip in clips:
        started = time.perf_counter()
        matches, kept = system.query(clip.path, **query)
        latency.append(time.perf_counter() - started)
        top = matches[0] if matches else None
        correct = is_correct(clip, top, system.paths)
        best = kept[0] if kept else None
        answer = max(kept, key=lambda a: a.confidence, default=None)
        outcome[clip.path] = Outcome(
            correct,
            correct and not at_source(clip, top),
            bool(matches),
            best,
            is_correct(clip, best, system.paths),
            answer,
            is_correct(clip, answer, system.paths),
            top.track_id if top else -1,
        )
    return outcome, latency


def distractors(segments: list[Segments], n_tracks: int, seed: int) -> list[Segments]:
    """Stand-ins for `n_tracks` more tracks: real tracks' vectors in shuffled order (a copy
    cannot line up with a clip of its source in time), each turned by a random small
    rotation (cosine about 0.5 with its source) and renormalised."""
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


def fit_logistic(
    features: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weights (one per feature column, then the bias) of the logistic regression of
    `correct` on `features` (each row counting `weights`, default 1), maximum likelihood by
    Newton steps."""
    x = np.c_[features.astype(np.float64), np.ones(len(features))]
    y = correct.astype(np.float64)
    counts = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-(x @ w)))
        hess = x.T @ (x * (counts * p * (1 - p))[:, None]) + 1e-6 * np.eye(len(w))
        w -= np.linalg.solve(hess, x.T @ (counts * (p - y)))
    return w


CALIBRATION_ROUNDS = 6
"""Most fits `calibrate` makes: each one answers the clips under the one before, since
which view answers a clip (`ClipMatcher.decide`) reads the calibration in use."""


def calibrate(name: str, system: SimlibSystem, clips: list[Clip]) -> Calibration:
    """The system's confidence fitted on calibration clips (`fit_calibration`), again and
    again on the clips as answered under the last fit, until a fit equals the calibration
    it was fitted under: the result does not depend on the calibration the weights
    carried."""
    used = system.policy.calibration
    for round_ in range(1, CALIBRATION_ROUNDS + 1):
        fitted = fit_calibration(system, clips, used)
        print(f"calibration {name}, fit {round_}: margin {fitted.margin}, with source "
              f"{fitted.with_source}", flush=True)  # fmt: skip
        if fitted == used:
            return fitted
        used = fitted
    print(f"calibration {name}: no fixed point in {CALIBRATION_ROUNDS} fits; the last is "
          "used", flush=True)  # fmt: skip
    return used


def fit_calibration(system: SimlibSystem, clips: list[Clip], used: Calibration) -> Calibration:
    """The confidence fitted on calibration clips answered under calibration `used`: on the
    margin alone over every clip's best alignment (the map that picks which alignments are
    checked), on margin and source z (capped at SOURCE_Z_CAP) over those it would check
    (every best alignment is checked here), the clips of tracks not in the library weighing
    as much as the others."""
    check_every = system.policy.override(calibration=used, check_floor=0.0, trusted_margin=math.inf)
    rows = run_queries(system, clips, policy=check_every)[0]
    best = [
        (rows[c.path].best, rows[c.path].best_correct, c.track < 0)
        for c in clips
        if rows[c.path].best
    ]
    slope, bias = fit_logistic(
        np.array([[a.margin] for a, _, _ in best]), np.array([ok for _, ok, _ in best])
    )
    margin_only = Calibration((round(float(slope), 3), round(float(-bias / slope), 3)), (0, 0, 0))
    floor = system.policy.check_floor
    checked = [row for row in best if margin_only.from_margin(row[0].margin) >= floor]
    unknown = sum(c.track < 0 for c in clips)
    # a clip is as likely not in the library as in it: unknown clips weigh as much together
    weight = (len(clips) - unknown) / max(unknown, 1)
    w = fit_logistic(
        np.array([[a.margin, min(a.source_z, SOURCE_Z_CAP)] for a, _, _ in checked]),
        np.array([ok for _, ok, _ in checked]),
        np.array([weight if outside else 1.0 for _, _, outside in checked]),
    )
    right = sum(ok for _, ok, _ in best)
    print(f"  from {len(clips)} clips ({len(best)} aligned, {right} right, {len(checked)} "
          f"checked, clips not in the library weighted {weight:.2f})", flush=True)  # fmt: skip
    return Calibration(margin_only.margin, tuple(round(float(v), 3) for v in w))


def pct(values: list[bool]) -> str:
    return f"{100 * np.mean(values):5.1f}" if values else "    -"


def pr_curve(name: str, results: dict[Path, Outcome], clips: list[Clip], outside: list[Clip]):
    """Recall (the most confident alignment is right and reaches the threshold) per condition
    at 5 s and over every in-library test clip, against the share of not-in-library clips
    whose most confident alignment reaches it."""
    inside = [c for c in clips if c.track >= 0 and c.condition in CONDITIONS]
    if not outside:  # e.g. `--conditions babble_0db`: no cell draws tracks outside it
        print(f"\nprecision-recall, {name}: no clips of tracks outside the library")
        return

    def conf(clip: Clip) -> float:
        answer = results[clip.path].answer
        return -1.0 if answer is None else answer.confidence

    print(f"\nprecision-recall, {name}: threshold, FP % (of {len(outside)}), recall % (all "
          f"{len(inside)} test clips; per condition at 5 s)")  # fmt: skip
    print(f"{'threshold':>10}{'FP':>7}{'all':>7}" + "".join(f"{c[:12]:>13}" for c in CONDITIONS))
    scores = sorted((conf(c) for c in outside), reverse=True)
    grid = set(np.quantile([max(s, 0.0) for s in scores], np.linspace(0, 1, 9)).round(3))
    for thr in sorted(grid | {0.1, 0.3, 0.5, 0.7, 0.9}):
        fp = np.mean([conf(c) >= thr for c in outside])
        rec = [results[c.path].answer_correct and conf(c) >= thr for c in inside]
        line = f"{thr:>10.3f}{100 * fp:>7.1f}{100 * np.mean(rec):>7.1f}"
        for condition in CONDITIONS:
            cell = [c for c in inside if c.condition == condition and c.length_s == 5.0]
            line += f"{pct([results[c.path].answer_correct and conf(c) >= thr for c in cell]):>13}"
        print(line)
    for target in (0.0, 0.01, 0.05):
        allowed = int(math.floor(target * len(outside)))
        thr = scores[allowed] + 1e-9 if allowed < len(scores) else -math.inf
        rec = [results[c.path].answer_correct and conf(c) >= thr for c in inside]
        print(f"  at FP <= {100 * target:.0f} % (threshold > {thr:.3f}): recall "
              f"{100 * np.mean(rec):.1f} %")  # fmt: skip


def scanned_home(weights_path: Path, library: list[Path], work: Path) -> tuple[Path, dict]:
    """A SIMLIB_HOME with `library` linked in and scanned with these weights in use (as
    `simlib train` installs its own), and its bytes: catalog and indexes."""
    from simlib import api

    home, folder = work / "home", work / "library"
    for i, path in enumerate(library):
        link = folder / f"{i:04d}{path.suffix}"
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, link)
        except OSError:  # another file system
            shutil.copy(path, link)
    for name, kind in itertools.product(FINGERPRINT_FILES, ("runtime", "training")):
        source = weights.beside(weights_path, name, kind)
        if source.is_file():  # the telephone band's network, when the weights have one
            target = weights.local_path(home, name, kind)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    started = time.perf_counter()
    api.scan([folder], home=home, workers=2)
    scan_s = time.perf_counter() - started
    catalog = Catalog(home)
    catalog.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    catalog.db.execute("VACUUM")
    payload = catalog.db.execute(
        "SELECT SUM(LENGTH(start_s) + LENGTH(vectors)) FROM fingerprints"
    ).fetchone()[0]
    catalog.close()
    sizes = {"catalog": (home / "catalog.db").stat().st_size}
    for name in ("fingerprint", PHONE_VIEW, "similarity"):
        files = [p for p in (home / "indexes").rglob("*") if p.is_file() and name in str(p)]
        sizes[f"{name} index"] = sum(p.stat().st_size for p in files)
    sizes["fingerprint rows (payload)"] = payload
    return home, {"sizes": sizes, "scan_s": scan_s}


def batch_times(home: Path, afp: Path, clips: list[Clip], library: list[Path]) -> dict:
    """Wall seconds per clip of one `simlib identify` command over every clip (the real
    catalog and index of `home`), and of one `audfprint match` over the same clips; and
    simlib's top-1 there."""
    paths = [str(c.path) for c in clips]
    env = {**os.environ, "SIMLIB_HOME": str(home)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "simlib", "identify", "--json", *paths],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    simlib_s = time.perf_counter() - started
    started = time.perf_counter()
    # audfprint's options go before its command; its answers are debug log lines, not needed
    subprocess.run(["audfprint", "-d", str(afp), "match", *paths], capture_output=True, check=True)
    audfprint_s = time.perf_counter() - started
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    names = {f"{i:04d}{p.suffix}": i for i, p in enumerate(library)}
    right = 0
    for clip, answer in zip(clips, answers, strict=False):
        match = answer.get("match")
        if match and clip.track >= 0:
            track = names.get(Path(match["path"]).name, -2)
            right += is_correct(clip, Match(track, match["offset_s"], 1.0, 0), library)
    return {
        "simlib_ms": 1000 * simlib_s / len(clips),
        "audfprint_ms": 1000 * audfprint_s / len(clips),
        "simlib_right": right,
        "in_library": sum(c.track >= 0 for c in clips),
        "answers": len(answers),
    }


POLICY_SETTINGS = {f.name for f in fields(Policy)} - {"calibration"}
"""What `--scale-against` may change: the policy's thresholds and counts."""
SETTABLE = POLICY_SETTINGS | {"query_hop_s"}
"""What `--set` may change: the policy's thresholds and counts, and the clip's hop."""


def changed_settings(items: list[str], settable: set[str] = SETTABLE) -> dict[str, float]:
    """KEY=NUMBER items as settings (ValueError names what is wrong)."""
    out: dict[str, float] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in settable:
            raise ValueError(f"{key!r} is not one of {', '.join(sorted(settable))}")
        try:
            out[key] = float(value) if "." in value else int(value)
        except ValueError:
            raise ValueError(f"{item!r} is not KEY=NUMBER") from None
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("~/simlib-corpus"))
    parser.add_argument("--extra", type=Path, nargs="*", default=[Path("~/simlib-corpus-extra")])
    parser.add_argument("--synth-speech", type=Path, default=SYNTH_SPEECH_DIR)
    parser.add_argument("--tracks", type=int, default=400, help="library tracks, at most")
    parser.add_argument(
        "--side", choices=sorted(SOURCE_ROLE), default="test", help="val: model selection"
    )
    parser.add_argument("--clips-per-cell", type=int, default=40)
    parser.add_argument(
        "--conditions",
        nargs="+",
        choices=list(CONDITIONS),
        default=list(CONDITIONS),
        help="only these conditions' cells (model selection on more clips a cell)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--outcomes", type=Path, default=None, help="write each clip's right/wrong here (JSON)"
    )
    parser.add_argument(
        "--paired-with",
        type=Path,
        default=None,
        help="an earlier run's --outcomes on the same clips: compared clip by clip",
    )
    parser.add_argument(
        "--weights", default=None, help="comma-separated ONNX files (default: the shipped model)"
    )
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="change settings of the weights for this run: a policy's threshold or count "
        "(`simlib.identify.policy.Policy`: neighbours, probes, shortlist, ...) or query_hop_s",
    )
    parser.add_argument("--scale-tracks", type=int, default=10_000)
    parser.add_argument(
        "--scale-against",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="the scale run also answers every clip under the first model's policy with "
        "these thresholds or counts changed, the two interleaved clip by clip, and compares them",
    )
    parser.add_argument("--batch-clips", type=int, default=200)
    parser.add_argument("--no-audfprint", action="store_true")
    parser.add_argument("--no-seen", action="store_true", help="leave out the seen rows")
    parser.add_argument("--no-disk", action="store_true", help="no real scan (disk, batch)")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="fit each simlib model's confidence on VAL packages and calibration sources first",
    )
    parser.add_argument("--calibration-clips-per-cell", type=int, default=40)
    parser.add_argument(
        "--write-calibration",
        action="store_true",
        help="with --calibrate: store the calibrations in the weights (.pt and .onnx)",
    )
    args = parser.parse_args()
    if args.write_calibration and not args.calibrate:
        parser.error("--write-calibration needs --calibrate")
    try:
        args.set = changed_settings(args.set)
    except ValueError as error:
        parser.error(f"--set: {error}")
    try:
        args.scale_against = changed_settings(args.scale_against, POLICY_SETTINGS)
    except ValueError as error:
        parser.error(f"--scale-against: {error}")
    if args.set and args.write_calibration:
        parser.error("--write-calibration would store a calibration fitted under --set")
    if args.calibrate and args.side == "val":
        parser.error("--calibrate fits on VAL music: it cannot benchmark on VAL too")
    if not (args.no_disk or args.no_audfprint) and shutil.which("ffmpeg") is None:
        # checked first: the batch comparison comes last, after most of the run's time
        parser.error("`audfprint match` reads audio with ffmpeg: install it, or pass --no-disk")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    corpus, extras = args.corpus.expanduser(), [e.expanduser() for e in args.extra]
    split = load_split(corpus, extras)
    seconds = {t.path: t.seconds for side in split.values() for t in side}
    library = choose_library(split, args.side, args.tracks)
    weight_paths = [
        Path(w) for w in (args.weights or str(weights.shipped_path("fingerprint"))).split(",")
    ]
    models = {_name(p): FingerprintModel.load(p).with_settings(**args.set) for p in weight_paths}
    noise_dirs = [corpus / "noise", *(e / "noise" for e in extras)]
    synth = [args.synth_speech] if args.synth_speech.is_dir() else []

    def bank(role: Role) -> NoiseBank:
        return NoiseBank.load(noise_dirs, role, synth)

    clip_bank = bank(SOURCE_ROLE[args.side])
    banks = {"main": clip_bank, "seen": clip_bank if args.no_seen else bank("train")}
    talkers = {k: len(v) for k, v in clip_bank.talker_groups().items()}
    print(f"{args.side} music; {clip_bank.role} talkers (sources per family) {talkers}, "
          f"{len(clip_bank.speech)} clips; "
          f"noise recordings {len(clip_bank.ambient)}; recorded rooms {len(clip_bank.room_irs)}; "
          f"loudspeakers {len(clip_bank.speakers)}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="simlib-bench-") as tmp:
        work = Path(tmp)
        clips = make_clips(
            library, banks, args.clips_per_cell, work / "clips", args.seed, seconds,
            seen=not args.no_seen, conditions=tuple(args.conditions),
        )  # fmt: skip
        print(f"{len(clips)} {args.side} clips written", flush=True)
        calibration: list[Clip] = []
        if args.calibrate:
            calib_lib = choose_library(split, "val", args.tracks)
            calib_lib.fillers = choose_library(
                split, "val", 0, max(0, len(library.paths) - len(calib_lib.paths))
            ).fillers
            calib_bank = bank(SOURCE_ROLE["val"])
            calibration = make_clips(
                calib_lib, {"main": calib_bank, "seen": calib_bank},
                args.calibration_clips_per_cell, work / "calibration", args.seed + 1000,
                seconds, seen=False,
            )  # fmt: skip
            print(f"{len(calibration)} calibration clips written", flush=True)
        results, builds, latencies = run_systems(
            args, models, weight_paths, library, clips, calibration,
            calib_lib if args.calibrate else None, work,
        )  # fmt: skip
        scale = run_scale(args, models, builds, library, clips, work)
        disk = None if args.no_disk else run_disk(args, weight_paths[0], library, clips, work)
    report(args, library, clips, models, results, builds, latencies, scale, disk, seconds)


def _name(path: Path) -> str:
    """A simlib model's column: its folder ("weights" for the shipped model)."""
    return f"simlib:{path.parent.name}"


def run_systems(args, models, weight_paths, library, clips, calibration, calib_lib, work):
    """Every system built on the library and queried with every clip (simlib models first
    calibrated on the calibration library, when asked)."""
    systems: dict = {
        n: SimlibSystem(m, work / f"index-{i}") for i, (n, m) in enumerate(models.items())
    }
    if not args.no_audfprint:
        for name, options in AUDFPRINT.items():
            systems[name] = AudfprintSystem(work, options)
    results, builds, latencies = {}, {}, {}
    for name, system in systems.items():
        if calib_lib is not None and isinstance(system, SimlibSystem):
            system.build(calib_lib.paths + calib_lib.fillers)
            fitted = calibrate(name, system, calibration)
            system.policy = system.policy.override(calibration=fitted)
            if args.write_calibration:
                path = weight_paths[list(models).index(name)].with_suffix(".pt")
                update_settings(path, **system.policy.settings())
                print(f"wrote the calibration into {path} and its ONNX export", flush=True)
            system.segments = []
        builds[name] = system.build(library.paths)
        if isinstance(system, SimlibSystem):
            builds[name]["calibration"] = system.policy.calibration
        if name == "audfprint2":
            builds["duplicates"] = duplicated_outside(system, library.outside)
        results[name], latencies[name] = run_queries(system, clips)
        print(f"{name}: done", flush=True)
    return results, builds, latencies


def run_scale(args, models, builds, library, clips, work) -> dict:
    """The first simlib model with `--scale-tracks` synthetic tracks beside the library:
    5 s clips' outcomes and query times under its policy (as calibrated in this run), and
    under `--scale-against`'s changes to it when asked (each clip answered under both in
    turn, the first to answer changing every clip, so that neither gains from the other's
    warm caches)."""
    if not args.scale_tracks:
        return {}
    name = next(iter(models))
    system = SimlibSystem(models[name], work / "index-scale")
    system.policy = system.policy.override(calibration=builds[name]["calibration"])
    system.build(library.paths)
    extra = View(
        *(
            distractors([getattr(s, view) for s in system.segments], args.scale_tracks, args.seed)
            for view in ("full", "phone")
        )
    )
    build = system.build(library.paths, extra)
    five = [c for c in clips if c.length_s == 5.0]
    run_queries(
        system, five[:20]
    )  # warm: the index's pages in memory, as a DJ or a watcher has them
    policies = {name: system.policy}
    if args.scale_against:
        against = " ".join(f"{k}={v}" for k, v in args.scale_against.items())
        policies[f"{name}, {against}"] = system.policy.override(**args.scale_against)
    runs: dict = {label: ({}, []) for label in policies}
    labels = list(policies)
    for i, clip in enumerate(five):
        for label in labels[i % len(labels) :] + labels[: i % len(labels)]:
            outcome, latency = run_queries(system, [clip], policy=policies[label])
            runs[label][0].update(outcome)
            runs[label][1].extend(latency)
    return {"runs": runs, "build": build}


def run_disk(args, weights_path, library, clips, work) -> dict:
    """A real scan of the library (catalog and indexes per audio second), and the batch
    of `simlib identify` against `audfprint match`."""
    home, disk = scanned_home(weights_path, library.paths, work / "scan")
    chosen = clips[:: max(1, len(clips) // args.batch_clips)][: args.batch_clips]
    afp = work / "afp-0.pklz"
    if afp.exists():
        disk["batch"] = batch_times(home, afp, chosen, library.paths)
    return disk


GOALS = (
    ("clean_mp3", 5.0, 99.0),
    ("babble_5db", 5.0, 95.0),
    ("babble_0db", 5.0, 90.0),
    ("babble_0db", 3.0, 75.0),
    ("phone_room", 10.0, 90.0),
    ("phone_room", 5.0, 80.0),
    ("speed_2pct", 3.0, 95.0),
)
"""Issue #19's goals: (condition, clip length, top-1 % at least)."""


def report(args, library, clips, models, results, builds, latencies, scale, disk, seconds):
    names = list(results)
    main = names[0]
    audio_s = sum(seconds[p] for p in library.paths)
    width = max(12, *(len(n) + 2 for n in names))
    print(f"\nlibrary {len(library.paths)} tracks ({audio_s / 3600:.1f} h) of "
          f"{args.side.upper()} packages, "
          f"not in library {len(library.outside)} tracks; seed {args.seed}; top-1 % = right "
          f"track, offset within {OFFSET_TOLERANCE_S} s, or a place with the same audio "
          f"(simlib: confidence >= "
          f"{Policy(Calibration((0, 0), (0, 0, 0))).min_confidence})")  # fmt: skip
    for name, model in models.items():
        calibration = builds[name]["calibration"]
        print(f"{name}: version {model.version} (telephone band {model.phone_version}), "
              f"dim {model.dim}, calibration used "
              f"{calibration.margin} / {calibration.with_source}"
              + (f"; settings changed: {args.set}" if args.set else ""))  # fmt: skip
    header = f"{'condition':<17}{'len':>4}{'n':>4}" + "".join(f"{n:>{width}}" for n in names)
    print(header + "\n" + "-" * len(header))
    cells = [(c, n) for c in args.conditions for n in LENGTHS_S]
    cells += [] if args.no_seen else list(SEEN_CELLS)
    top1 = {}
    for condition, length_s in cells:
        cell = [c for c in clips if c.condition == condition and c.length_s == length_s]
        line = f"{condition:<17}{length_s:>4g}{len(cell):>4}"
        for n in names:
            top1[n, condition, length_s] = [results[n][c.path].correct for c in cell]
            line += f"{pct(top1[n, condition, length_s]):>{width}}"
        print(line)
    outside = [c for c in clips if c.condition == "not_in_library"]
    duplicates = builds.get("duplicates", {})
    distinct = [c for c in outside if c.source not in duplicates]
    for label, group in (("false positives", outside), ("FP, distinct", distinct)):
        line = f"{label:<21}{len(group):>4}"
        for n in names:
            line += f"{pct([results[n][c.path].matched for c in group]):>{width}}"
        print(line)
    print("-" * len(header))
    five = [i for i, c in enumerate(clips) if c.length_s == 5.0]
    for label, q in (("query p50 ms (5 s)", 50), ("query p95 ms (5 s)", 95)):
        line = f"{label:<25}"
        for n in names:
            line += f"{1000 * np.percentile([latencies[n][i] for i in five], q):>{width}.1f}"
        print(line)
    line = f"{'index bytes / audio s':<25}"
    for n in names:
        line += f"{builds[n]['bytes'] / audio_s:>{width}.0f}"
    print(line + "   (simlib: the index files this run built)")
    line = f"{'right elsewhere (clips)':<25}"
    for n in names:
        line += f"{sum(o.elsewhere for o in results[n].values()):>{width}}"
    print(line + "   (same audio at another place: `same_audio`)")
    report_families(names, results, clips)
    simlib_names = [n for n in names if n in models]
    report_paired(paired_outcomes(args, simlib_names, results, clips), clips)
    for clip in distinct:
        for n in names:
            if results[n][clip.path].matched:
                print(f"false positive {n}: {clip.path.name} from {clip.source.name} -> "
                      f"{library.paths[results[n][clip.path].track].name}")  # fmt: skip
    for path, track in duplicates.items():
        print(f"not in library, but audfprint2 finds the whole track in it: {path.name} "
              f"= {library.paths[track].name}")  # fmt: skip
    for n in names:
        if n in models:
            pr_curve(n, results[n], clips, distinct)
    extras = report_scale_disk(args, scale, disk, audio_s)
    if args.side == "test" and set(args.conditions) == set(CONDITIONS):  # TEST's goals
        report_goals(names, main, top1, results, distinct, extras)


def report_families(names: list[str], results: dict, clips: list[Clip]) -> None:
    """Top-1 per degradation source (each "kind:source" word of the clips), all lengths."""
    width = max(12, *(len(n) + 2 for n in names))
    print("\nper source family (all lengths), top-1 % (n)")
    for condition in CONDITIONS:
        words = sorted({w for c in clips if c.condition == condition for w in c.sources.split()})
        for word in words:
            cell = [c for c in clips if c.condition == condition and word in c.sources.split()]
            line = f"{condition:<12}{word[:32]:<33}{len(cell):>4}"
            for n in names:
                line += f"{pct([results[n][c.path].correct for c in cell]):>{width}}"
            print(line)


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven between
    `wins` and `losses` if either model were as likely to be the one right."""
    n, low = wins + losses, min(wins, losses)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(low + 1)) / 2**n)


def discordant(first: dict, other: dict, keys) -> tuple[int, int]:
    """Of `keys`, how many are right (True) only in `first`, and how many only in `other`."""
    return (
        sum(first[k] and not other[k] for k in keys),
        sum(other[k] and not first[k] for k in keys),
    )


def report_paired(correct: dict[str, dict[str, bool]], clips: list[Clip]) -> None:
    """Each system of `correct` ({system: {clip file name: right}}) against the first on
    the clips both answered, per condition (all lengths): clips only one of the two gets
    right, and whether that split is beyond chance. A cell of 40 clips moves by a few
    clips between two equal models; this says which differences are more than that."""
    first, *others = correct
    if not others:
        return
    print(f"\npaired against {first} (all lengths): clips right only with it / only with "
          f"the other, sign-test p")  # fmt: skip
    for other in others:
        for condition in CONDITIONS:
            names = [c.path.name for c in clips if c.condition == condition]
            both = [n for n in names if n in correct[first] and n in correct[other]]
            if not both:
                continue
            wins, losses = discordant(correct[first], correct[other], both)
            print(f"  {other:<32}{condition:<12}{len(both):>5}{wins:>6} /{losses:>4}"
                  f"   p {sign_test_p(wins, losses):.3f}")  # fmt: skip


def paired_outcomes(args, names: list[str], results: dict, clips: list[Clip]) -> dict:
    """{system: {clip file name: right}} of this run's simlib models (written to
    `--outcomes`), then those of an earlier run on the same clips (`--paired-with`)."""
    correct = {n: {c.path.name: results[n][c.path].correct for c in clips} for n in names}
    if args.outcomes:
        args.outcomes.write_text(json.dumps(correct))
    if args.paired_with:
        earlier = json.loads(args.paired_with.read_text())
        correct |= {f"{n} (earlier run)": v for n, v in earlier.items()}
    return correct


def report_scale_disk(args, scale: dict, disk: dict | None, audio_s: float) -> dict:
    """Print the scale run, the real scan's bytes and the batch; return the goal figures."""
    figures: dict = {}
    if scale:
        print(f"\nwith {args.scale_tracks} synthetic tracks beside the library "
              f"({scale['build']['items']} segments), 5 s clips, warm:")  # fmt: skip
        first: dict | None = None
        for label, (outcomes, latency) in scale["runs"].items():
            right = {path: o.correct for path, o in outcomes.items()}
            ok = [r for path, r in right.items() if not path.name.startswith("out-")]
            fp = [o.matched for path, o in outcomes.items() if path.name.startswith("out-")]
            p50 = 1000 * np.percentile(latency, 50)
            print(f"  {label}: top-1 {100 * np.mean(ok):.1f} % (n {len(ok)}), false positives "
                  f"{100 * np.mean(fp):.1f} % (n {len(fp)}), query p50 / p95 {p50:.1f} / "
                  f"{1000 * np.percentile(latency, 95):.1f} ms")  # fmt: skip
            if first is None:
                first, figures["p50_ms"] = right, p50
                continue
            wins, losses = discordant(first, right, right)
            print(f"    clips right only under the first / only under this: {wins} / {losses}, "
                  f"sign-test p {sign_test_p(wins, losses):.3f}")  # fmt: skip
    if disk:
        sizes = disk["sizes"]
        print(f"\nreal scan of the library ({disk['scan_s']:.0f} s, 2 workers), bytes per "
              f"second of audio:")  # fmt: skip
        for part, size in sizes.items():
            print(f"  {part:<28}{size / audio_s:8.1f}")
        total = sizes["catalog"] + sum(v for k, v in sizes.items() if k.endswith(" index"))
        figures["disk_bps"] = total / audio_s
        print(f"  {'catalog + indexes':<28}{total / audio_s:8.1f}")
        batch = disk.get("batch")
        if batch:
            print(f"\nbatch of {batch['answers']} clips in one command: `simlib identify` "
                  f"{batch['simlib_ms']:.1f} ms per clip (top-1 {batch['simlib_right']} of "
                  f"{batch['in_library']} in library), `audfprint match` (default settings) "
                  f"{batch['audfprint_ms']:.1f} ms per clip")  # fmt: skip
            figures["batch"] = (batch["simlib_ms"], batch["audfprint_ms"])
    return figures


def report_goals(names, main, top1, results, distinct, figures) -> None:
    """Issue #19's goals for the first simlib model, met or missed and by how much."""
    print(f"\ngoals ({main})")
    for condition, length_s, goal in GOALS:
        value = 100 * np.mean(top1[main, condition, length_s])
        print(f"  {condition} {length_s:g} s >= {goal:g}: {value:.1f} "
              f"({'met' if value >= goal else f'missed by {goal - value:.1f}'})")  # fmt: skip
    fp = 100 * np.mean([results[main][c.path].matched for c in distinct])
    print(f"  false positives <= 1 %: {fp:.1f} ({'met' if fp <= 1 else 'missed'})")
    behind = [
        f"{c} {n:g} s vs {ref}"
        for (name, c, n), values in top1.items()
        if name == main and not c.startswith("seen")
        for ref in names
        if ref.startswith("audfprint") and np.mean(top1[ref, c, n]) >= np.mean(values)
    ]
    print(f"  ahead of audfprint2 default and dense in every cell: "
          f"{'met' if not behind else 'missed: not ahead in ' + ', '.join(behind)}")  # fmt: skip
    if "disk_bps" in figures:
        d = figures["disk_bps"]
        print(f"  disk <= 500 B/s: {d:.0f} ({'met' if d <= 500 else 'missed'})")
    if "p50_ms" in figures:
        p = figures["p50_ms"]
        print(
            f"  warm query p50 <= 50 ms at 10k tracks: {p:.1f} ({'met' if p <= 50 else 'missed'})"
        )
    if "batch" in figures:
        s, a = figures["batch"]
        print(f"  batch per clip no slower than audfprint: {s:.1f} vs {a:.1f} ms "
              f"({'met' if s <= a else 'missed'})")  # fmt: skip


if __name__ == "__main__":
    main()
