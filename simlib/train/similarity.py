"""Train the similarity encoder on pairs mined from a library's tags (siamese, CPU).

`train_similarity` is what `simlib train similarity` runs on a user's library:
time- or epoch-bounded, resumable after Ctrl-C from a checkpoint next to the
output file, optionally fine-tuning the shipped weights, with a held-out
validation split whose metric is reported at the end. The module entry point
reproduces the shipped weights:

    python -m simlib.train.similarity --corpus ~/simlib-corpus \
        --extra ~/simlib-corpus-extra --out simlib/weights/similarity.pt

Every run ends by measuring how the library's tracks scatter around their album's mean
(`fit_album_scatter`), which the index whitens by; fine-tuning blends it with the scatter
of the weights it starts from. `--init-weights W --epochs 0` trains nothing and only
refits it (after `simlib.train.export` changed the crops or the timbre share).

Pairs come from the TRAIN packages of the corpus split (`simlib.train.corpus`: the
development corpus's TRAIN packages and the usable extra ones); each member keeps its
epoch that ranks the VAL packages best among themselves; TEST packages are never read.
See docs/training.md and the model card for the defaults and the run behind the file.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from simlib import weights as model_weights
from simlib.audio import DecodeError, decode
from simlib.audio.features import LOG_FLOOR, log_mel
from simlib.catalog import read_tags
from simlib.files import replace_atomically
from simlib.similar.encoder import EncoderConfig, Ensemble, SimilarityEncoder
from simlib.similar.index import (
    Ranking,
    album_scatter,
    library_ranked,
    pack_scatter,
    ranked_scores,
    unpack_scatter,
)
from simlib.similar.model import (
    CROP_FRAMES,
    N_CROPS,
    crops,
)
from simlib.train.corpus import describe, load_split
from simlib.train.export import RuntimeSettings, export, load_ensemble
from simlib.train.pairs import (
    SimilarityWeights,
    mine_pairs,
    normalise_tag,
    similarity_matrix,
)
from simlib.types import Tags

TRAIN_WINDOWS = 16
"""Non-silent windows kept per track for training; training crops are cut inside them."""
WINDOW_FRAMES = CROP_FRAMES + 200
"""A window is one crop plus 2 s of room to jitter the crop position."""
OWN_SCATTER_SHARE = 0.25
"""Share of a library's own album scatter when fine-tuning blends it with the one of the
weights it starts from: half of a library's albums are too few to stand alone (chosen on
VAL among 0.05-0.5, SIMILARITY_MODEL_CARD.md)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    margin: float = 1.0
    """Distance between unit vectors (0..2) a fully dissimilar negative is pushed beyond."""
    batch_pairs: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    gain_db: float = 6.0
    """Training crops get a random gain in +-gain_db."""
    freq_mask: int = 0
    """Up to this many adjacent mel bands of each training crop are masked (SpecAugment)."""
    time_mask: int = 0
    """Up to this many adjacent frames (10 ms) of each training crop are masked."""
    val_every: int = 2
    """Validate every this many epochs (and at the end)."""
    anchor: float = 0.0
    """Weight of the squared distance to the starting weights (L2-SP): fine-tuning on a few
    albums keeps what the starting weights know about the albums it never sees."""
    freeze_norm: bool = False
    """Batch-norm layers keep their running statistics (a small library's are noisy)."""


FINE_TUNING = TrainConfig(learning_rate=5e-4)
"""Fine-tuning's hyper-parameters (`init_weights`): smaller steps than training from scratch,
so that a few albums' pairs adjust the weights instead of replacing what they know."""


@dataclass
class TrainingUpdate:
    """What the progress callback receives, a few times per epoch."""

    member: int
    """Which encoder of `members` is training (0-based)."""
    members: int
    epoch: int
    step: int
    steps_per_epoch: int
    loss: float
    pairs_per_s: float
    eta_s: float
    val_tag_sim_at_10: float | None


@dataclass
class TrainMetrics:
    """Result of `train_similarity`; `val_*` are over the validation tracks' top-10 neighbours.

    tag_sim@10: mean tag similarity (0..1) of the 10 nearest tracks among all
    tracks; album_p@10: share of them on the same album; `*_random` is the
    expected value for a random ranking, for scale.
    """

    members: int
    """Encoders trained (an ensemble if more than one); the counts below are summed over them."""
    epochs: float
    """Epochs per member."""
    steps: int
    pairs_seen: int
    wall_s: float
    train_loss: float
    """Last running loss, mean over the members."""
    best_epochs: list[int]
    """The epoch each member's kept weights come from."""
    n_train: int
    n_val: int
    val_tag_sim_at_10: float
    val_tag_sim_random: float
    val_album_p_at_10: float
    val_album_p_random: float


@dataclass
class TrackData:
    """Training material of one track: float16 log-mel windows and the inference crops."""

    windows: np.ndarray
    """(TRAIN_WINDOWS, WINDOW_FRAMES, N_MELS)"""
    eval_crops: np.ndarray
    """(n_crops, CROP_FRAMES, N_MELS): what `SimilarityModel.embed` sees with n_crops crops."""


def track_data(path: Path, cache_dir: Path | None = None, n_crops: int = N_CROPS) -> TrackData:
    """Decode a track once and cut its training windows and `n_crops` inference crops
    (cached if asked)."""
    cache = None
    if cache_dir is not None:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{WINDOW_FRAMES}|{n_crops}"
        cache = cache_dir / (hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + ".npz")
        if cache.exists():
            with np.load(cache) as saved:
                return TrackData(saved["windows"], saved["eval_crops"])
    mel = log_mel(decode(path))
    data = TrackData(
        crops(mel, TRAIN_WINDOWS, WINDOW_FRAMES).astype(np.float16),
        crops(mel, n_crops, CROP_FRAMES).astype(np.float16),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, windows=data.windows, eval_crops=data.eval_crops)
    return data


def _val_mask(paths: list[str], tags: list[Tags | None], val_fraction: float) -> np.ndarray:
    """Validation tracks: tagged tracks of whole albums (a track without one by its path)
    chosen by a hash (the last tagged track's album if the hash chooses none), so that the
    best epoch is the one that serves albums the pairs never showed. Untagged tracks say
    nothing of a ranking: they validate only when no track is tagged (the last one, so
    that there is a ranking to report, though nothing trains)."""
    cut = round(val_fraction * 1000)
    keys = [_album_key(p, t) if t is not None else None for p, t in zip(paths, tags, strict=True)]
    chosen = {k for k in keys if k is not None and _hash_per_mille(k) < cut}
    tagged = [k for k in keys if k is not None]
    if not chosen and tagged:
        chosen = {tagged[-1]}
    mask = np.array([k is not None and k in chosen for k in keys], dtype=bool)
    if not mask.any() and len(keys) > 1:
        mask[-1] = True
    return mask


def _hash_per_mille(key: str) -> int:
    return int(hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), 16) % 1000


def _album_key(path: str, tags: Tags) -> str:
    return normalise_tag(tags.album) or path


def _random_crops(
    data: list[TrackData], indices: np.ndarray, rng: np.random.Generator, config: TrainConfig
) -> torch.Tensor:
    """One random training crop per index: random window, offset, gain and masks.

    A mask sets a random run of bands (or frames) to the crop's mean level.
    """
    out = np.empty((len(indices), CROP_FRAMES, data[0].windows.shape[2]), dtype=np.float32)
    for k, i in enumerate(indices):
        windows = data[i].windows
        w = rng.integers(windows.shape[0])
        offset = rng.integers(windows.shape[1] - CROP_FRAMES + 1)
        out[k] = windows[w, offset : offset + CROP_FRAMES]
    gain = rng.uniform(-config.gain_db, config.gain_db, size=(len(indices), 1, 1))
    out = np.maximum(out + (gain * math.log(10) / 10).astype(np.float32), math.log(LOG_FLOOR))
    for axis, most in ((2, config.freq_mask), (1, config.time_mask)):
        if most <= 0:
            continue
        widths = rng.integers(0, most + 1, size=len(indices))
        starts = rng.integers(0, out.shape[axis] - widths + 1)
        for k, (start, width) in enumerate(zip(starts, widths, strict=True)):
            along = out[k] if axis == 1 else out[k].T  # a view with `axis` first
            along[start : start + width] = out[k].mean()
    return torch.from_numpy(out)


def _batches(pairs: list, batch_pairs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle the epoch's positive pairs of two tracks into batches of rows (a, b), half
    `batch_pairs` rows per batch (each row gives 4 crops: 2 of a, 2 of b)."""
    rows = np.array([(p.a, p.b) for p in pairs if p.positive and p.a != p.b], dtype=np.int64)
    rows = rows.reshape(-1, 2)[rng.permutation(len(rows))]
    step = max(1, batch_pairs // 2)
    return [rows[k : k + step] for k in range(0, len(rows), step)]


def pair_loss(
    encoder: SimilarityEncoder,
    data: list[TrackData],
    rows: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
    sim: np.ndarray,
) -> torch.Tensor:
    """Loss of one batch of rows (a, b); `sim` is the training tag-similarity matrix (NaN:
    no label). Graded contrastive terms over all crop pairs of the batch (`_batch_loss`),
    averaged over the positives and over the negatives that violate their margin (online
    hard-negative mining)."""
    index = np.concatenate([rows[:, 0], rows[:, 0], rows[:, 1], rows[:, 1]])
    vectors = encoder(_random_crops(data, index, rng, config))
    return _batch_loss(vectors, index, sim, config.margin)


def _batch_loss(
    vectors: torch.Tensor, index: np.ndarray, sim: np.ndarray, margin: float, pool: int = 10
) -> torch.Tensor:
    """All-pairs graded contrastive loss of crops `vectors` of tracks `index`."""
    rows = np.nan_to_num(sim[index], nan=-1.0)
    others = rows.copy()
    others[np.arange(len(index)), index] = -1.0
    threshold = np.maximum(-np.sort(-others, axis=1)[:, pool - 1], 1e-6)
    pair_sim = np.nan_to_num(sim[np.ix_(index, index)], nan=0.0)
    same = index[:, None] == index[None, :]
    positive = same | (pair_sim >= threshold[:, None])
    np.fill_diagonal(positive, False)
    negative = ~(positive | same)
    d = (2 - 2 * vectors @ vectors.T).clamp(min=1e-9).sqrt()
    margins = torch.from_numpy(margin * (1 - pair_sim)).float()
    hinge = F.relu(margins - d).square() * torch.from_numpy(negative)
    positive_t = torch.from_numpy(positive)
    pull = (d.square() * positive_t).sum() / positive_t.sum().clamp(min=1)
    return pull + hinge.sum() / (hinge > 0).sum().clamp(min=1)


def embed_tracks(ensemble: Ensemble, data: list[TrackData], batch: int = 32) -> np.ndarray:
    """(tracks, dim) track vectors from the stored inference crops, as `ensemble` makes them."""
    out = []
    encoders = list(ensemble.members)
    for encoder in encoders:
        encoder.eval()
    with torch.inference_mode():
        for k in range(0, len(data), batch):
            chunk = np.stack([d.eval_crops for d in data[k : k + batch]]).astype(np.float32)
            out.append(ensemble(torch.from_numpy(chunk)))
    for encoder in encoders:
        encoder.train()
    return torch.cat(out).numpy()


def neighbour_quality(
    vectors: np.ndarray,
    queries: np.ndarray,
    sim: np.ndarray,
    albums: list[str | None],
    parts: list | None = None,
) -> tuple[float, float, float, float]:
    """(tag_sim@10, random tag_sim, album_p@10, random album_p) for `queries` vs all tracks,
    ranked as the track index ranks them with `parts` (`track_index.ranked_scores`)."""
    scores = ranked_scores(vectors, parts)[queries]
    scores[np.arange(len(queries)), queries] = -np.inf
    n = len(vectors)
    top = np.argsort(-scores, axis=1)[:, : min(10, n - 1)]  # never the query itself
    tag_sim, tag_random, album_p, album_random = [], [], [], []
    for row, q in enumerate(queries):
        others = np.delete(np.arange(n), q)
        tag_sim.append(np.nan_to_num(sim[q, top[row]]).mean())
        tag_random.append(np.nan_to_num(sim[q, others]).mean())
        same = np.array([albums[j] is not None and albums[j] == albums[q] for j in range(n)])
        album_p.append(same[top[row]].mean())
        album_random.append(same[others].mean())
    return tuple(
        float(np.mean(v)) if v else 0.0 for v in (tag_sim, tag_random, album_p, album_random)
    )


def fit_album_scatter(
    ensemble: Ensemble, vectors: np.ndarray, albums: list[str | None]
) -> np.ndarray | None:
    """The scatter of a library's tracks (`vectors`, as `ensemble` embeds them) around
    their album's mean, in the space its index ranks in before whitening; None without an
    album of two tagged tracks."""
    ranking = Ranking.from_settings(ensemble.ranking, ensemble.dim)
    return album_scatter(library_ranked(vectors, ranking), albums)


def with_album_scatter(
    runtime: RuntimeSettings, own: np.ndarray | None, share: float
) -> RuntimeSettings:
    """`runtime` with the album scatter `own`, given `share` of a blend with the one
    `runtime` holds (if any)."""
    if own is None:
        return runtime
    if runtime.album_scatter:
        own = (1 - share) * unpack_scatter(runtime.album_scatter) + share * own
    return replace(runtime, album_scatter=pack_scatter(own))


def save_weights(
    encoders: list[SimilarityEncoder], path: Path, runtime: RuntimeSettings | None = None
) -> None:
    """Write `encoders` (an ensemble if several) as a similarity checkpoint, with the
    settings the runtime embeds and ranks by."""
    members = [
        {
            "config": e.config.as_dict(),
            "state_dict": {k: v.detach().clone() for k, v in e.state_dict().items()},
        }
        for e in encoders
    ]
    blob = {"members": members, **asdict(runtime or RuntimeSettings()), "crop_frames": CROP_FRAMES}
    model_weights.write(path, model_weights.SIMILARITY.name, blob)


def checkpoint_path(out_path: Path) -> Path:
    """Where training state is kept between runs: next to the weights file."""
    return out_path.with_name(out_path.name + ".ckpt")


@dataclass
class _TrainingSet:
    """Decoded tracks with their labels, split into pair-giving and validation tracks."""

    data: list[TrackData]
    train_tags: list[Tags | None]
    """Tags of the tracks that give pairs (None for validation and untagged tracks)."""
    sim_train: np.ndarray
    """Tag similarity among pair-giving tracks (NaN elsewhere)."""
    sim_all: np.ndarray
    queries: np.ndarray
    """Indices of the validation tracks."""
    albums: list[str | None]
    apart: bool = False
    """Rank the validation tracks among themselves only (a library of unseen albums)."""
    timbre_share: float = 0.0
    """The runtime's: validation ranks as `simlib similar` will."""

    def quality(
        self, encoders: list[SimilarityEncoder], vectors: np.ndarray | None = None
    ) -> tuple[float, float, float, float]:
        """`neighbour_quality` of the validation tracks embedded by `encoders` with the
        runtime's timbre share (`vectors`: every track's, when already embedded so)."""
        ensemble = Ensemble(encoders, self.timbre_share)
        ranked = self.queries if self.apart else np.arange(len(self.data))
        if vectors is None:
            vectors = embed_tracks(ensemble, [self.data[i] for i in ranked])
        else:
            vectors = vectors[ranked]
        return neighbour_quality(
            vectors,
            np.searchsorted(ranked, self.queries),
            self.sim_all[np.ix_(ranked, ranked)],
            [self.albums[i] for i in ranked],
            ensemble.ranking,
        )


def member_path(out_path: Path, member: int, members: int) -> Path:
    """Where member `member` of an ensemble keeps its best weights (the output itself if alone)."""
    return out_path if members == 1 else out_path.with_name(f"{out_path.name}.member{member}")


def train_similarity(
    tracks: list[tuple[Path, Tags | None]],
    out_path: Path,
    *,
    minutes: float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    members: int = 1,
    val_fraction: float = 0.15,
    resume: bool = True,
    init_weights: Path | None = None,
    config: TrainConfig | None = None,
    weights: SimilarityWeights | None = None,
    architecture: EncoderConfig | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[TrainingUpdate], None] | None = None,
    val_tracks: list[tuple[Path, Tags | None]] | None = None,
    runtime: RuntimeSettings | None = None,
    own_scatter_share: float = OWN_SCATTER_SHARE,
) -> TrainMetrics:
    """Train (or fine-tune `init_weights`) and save the best-validating encoders to `out_path`.

    `members` encoders are trained one after the other, alike but for their seeds
    (seed, seed + 1, ...), and saved together as an ensemble; fine-tuning keeps
    the members of `init_weights`. Each member stops after its share of
    `minutes` of training wall time (summed over resumed runs) or `epochs`
    epochs, whichever comes first (at least one must be given). Tracks with no
    usable tags are embedded for validation but give no pairs; tracks that fail
    to decode are skipped. The tagged tracks of `val_fraction` of the albums
    (`_val_mask`) are held out of the pairs and pick each member's best epoch;
    `val_tracks`, when given and readable, take their place: they give no pairs and are
    ranked among themselves only, as a library of albums and artists the pairs never
    showed.
    `architecture` sizes new encoders. `runtime` is written with the weights (default:
    that of `init_weights`, else `RuntimeSettings()`), with the album scatter of the
    tracks (not `val_tracks`) measured by the best encoders; fine-tuning gives it
    `own_scatter_share` of a blend with the scatter of `init_weights`. Ctrl-C saves
    the checkpoint of the member in training (`checkpoint_path(member_path(...))`) and
    re-raises; the next call with `resume=True` continues from it.
    """
    if minutes is None and epochs is None:
        raise ValueError("give minutes or epochs")
    config = config or (FINE_TUNING if init_weights is not None else TrainConfig())
    starts, runtime = None, runtime or RuntimeSettings()
    if init_weights is not None:
        starts, settings = load_ensemble(init_weights)
        runtime = RuntimeSettings.of(settings)
    kept_paths, kept_tags, data, held = [], [], [], []
    given = [(p, t, False) for p, t in tracks] + [(p, t, True) for p, t in val_tracks or []]
    for path, tags, is_held in given:
        try:
            data.append(track_data(Path(path), cache_dir, runtime.n_crops))
        except (DecodeError, OSError):
            continue
        kept_paths.append(str(path))
        kept_tags.append(tags)
        held.append(is_held)
    is_val = np.array(held, dtype=bool)
    if not is_val.any():
        is_val = _val_mask(kept_paths, kept_tags, val_fraction)
    sim_all = similarity_matrix(kept_tags, weights)
    training_set = _TrainingSet(
        data=data,
        train_tags=[None if v else t for t, v in zip(kept_tags, is_val, strict=True)],
        sim_train=np.where(is_val[:, None] | is_val[None, :], np.nan, sim_all),
        sim_all=sim_all,
        queries=np.flatnonzero(is_val),
        albums=[normalise_tag(t.album) if t else None for t in kept_tags],
        apart=any(held),
        timbre_share=runtime.timbre_share,
    )
    count = len(starts) if starts else members
    states = []
    for member in range(count):
        torch.manual_seed(seed + member)
        encoder = starts[member] if starts else SimilarityEncoder(architecture or EncoderConfig())
        states.append(
            _train_member(
                encoder,
                training_set,
                member_path(out_path, member, count),
                _MemberRun(member, count, seed + member, config, resume, progress),
                budget_s=minutes * 60 / count if minutes is not None else math.inf,
                max_epochs=epochs if epochs is not None else 10**9,
            )
        )
    best = [load_ensemble(member_path(out_path, m, count))[0][0] for m in range(count)]
    ensemble = Ensemble(best, runtime.timbre_share)
    vectors = embed_tracks(ensemble, data)  # once, for the scatter and the figures
    library = np.flatnonzero(~np.array(held, dtype=bool))
    own = fit_album_scatter(ensemble, vectors[library], [training_set.albums[i] for i in library])
    share = own_scatter_share if starts is not None else 1.0
    save_weights(best, out_path, with_album_scatter(runtime, own, share))
    export(model_weights.SIMILARITY.name, out_path)
    tag_sim, tag_random, album_p, album_random = training_set.quality(best, vectors)
    return TrainMetrics(
        members=count,
        epochs=float(np.mean([st["epoch"] + st["step"] / st["steps_per_epoch"] for st in states])),
        steps=sum(st["steps"] for st in states),
        pairs_seen=sum(st["pairs"] for st in states),
        wall_s=sum(st["elapsed_s"] for st in states),
        train_loss=float(np.mean([st["loss"] for st in states])),
        best_epochs=[st["best_epoch"] for st in states],
        n_train=int(len(data) - len(training_set.queries)),
        n_val=int(len(training_set.queries)),
        val_tag_sim_at_10=tag_sim,
        val_tag_sim_random=tag_random,
        val_album_p_at_10=album_p,
        val_album_p_random=album_random,
    )


def _training_mode(encoder: SimilarityEncoder, config: TrainConfig) -> None:
    encoder.train()
    if config.freeze_norm:
        for module in encoder.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


@dataclass(frozen=True)
class _MemberRun:
    """Which member is trained, and how."""

    member: int
    members: int
    seed: int
    config: TrainConfig
    resume: bool
    progress: Callable[[TrainingUpdate], None] | None


def _train_member(
    encoder: SimilarityEncoder,
    training_set: _TrainingSet,
    out_path: Path,
    run: _MemberRun,
    budget_s: float,
    max_epochs: int,
) -> dict:
    """Train one encoder, keeping its best-validating weights in `out_path`; returns its state."""
    config, seed, progress = run.config, run.seed, run.progress
    sim_train = training_set.sim_train
    start = [p.detach().clone() for p in encoder.parameters()]
    optimizer = torch.optim.AdamW(
        encoder.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    state = {"epoch": 0, "step": 0, "elapsed_s": 0.0, "steps": 0, "pairs": 0, "best": -1.0}
    state.update({"best_epoch": -1, "loss": float("nan"), "val_at": -1, "steps_per_epoch": 1})
    if budget_s <= 0 or max_epochs <= 0:  # nothing trains: the start is kept unvalidated
        save_weights([encoder], out_path)
        return {**state, "best_epoch": 0}
    ckpt = checkpoint_path(out_path)
    if run.resume and ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        encoder.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state.update(saved["state"])

    def save_checkpoint() -> None:
        payload = {
            "model": encoder.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": state,
        }
        replace_atomically(ckpt, lambda temporary: torch.save(payload, temporary))

    def validate() -> float:
        value = training_set.quality([encoder])[0]
        if value > state["best"]:
            state["best"], state["best_epoch"] = value, state["epoch"]
            save_weights([encoder], out_path)
        state["val_at"] = state["steps"]
        return value

    if state["val_at"] < 0:  # the starting weights compete too: fine-tuning may only hurt
        validate()
    started = time.monotonic() - state["elapsed_s"]
    window_start, window_pairs, running = time.monotonic(), 0, []
    last_val: float | None = None
    try:
        while state["epoch"] < max_epochs and state["elapsed_s"] < budget_s:
            epoch = state["epoch"]
            rng = np.random.default_rng([seed, epoch])
            pairs = mine_pairs(training_set.train_tags, rng, similarity=sim_train)
            if not pairs:
                raise ValueError("no tagged tracks to mine pairs from")
            batches = _batches(pairs, config.batch_pairs, rng)
            state["steps_per_epoch"] = len(batches)
            while state["step"] < len(batches):
                step = state["step"]
                fraction = max(
                    state["elapsed_s"] / budget_s, (epoch + step / len(batches)) / max_epochs
                )
                for group in optimizer.param_groups:
                    group["lr"] = (
                        config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction)))
                    )
                step_rng = np.random.default_rng([seed, epoch, step])
                _training_mode(encoder, config)
                loss = pair_loss(
                    encoder, training_set.data, batches[step], config, step_rng, sim_train
                )
                if config.anchor > 0:
                    loss = loss + config.anchor * sum(
                        (p - p0).square().sum()
                        for p, p0 in zip(encoder.parameters(), start, strict=True)
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running = (running + [loss.item()])[-50:]
                state.update(step=step + 1, steps=state["steps"] + 1, loss=float(np.mean(running)))
                state["pairs"] += len(batches[step])
                window_pairs += len(batches[step])
                state["elapsed_s"] = time.monotonic() - started
                if progress and (step % 10 == 0 or step + 1 == len(batches)):
                    rate = window_pairs / max(1e-9, time.monotonic() - window_start)
                    left_steps = (max_epochs - epoch) * len(batches) - step - 1
                    eta = min(budget_s - state["elapsed_s"], left_steps * config.batch_pairs / rate)
                    eta += (run.members - run.member - 1) * (state["elapsed_s"] + eta)
                    progress(
                        TrainingUpdate(
                            run.member,
                            run.members,
                            epoch,
                            step + 1,
                            len(batches),
                            state["loss"],
                            rate,
                            eta,
                            last_val,
                        )  # fmt: skip
                    )
                if state["elapsed_s"] >= budget_s:
                    break
            if state["step"] >= len(batches):
                state.update(epoch=epoch + 1, step=0)
                if state["epoch"] % config.val_every == 0:
                    last_val = validate()
                save_checkpoint()
        if state["val_at"] != state["steps"]:
            validate()
        save_checkpoint()
    except KeyboardInterrupt:
        save_checkpoint()
        raise
    return state


def main(argv: list[str] | None = None) -> None:
    """Train on the TRAIN packages of the corpus split, select on VAL (the shipped weights)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--extra", type=Path, nargs="*", default=[], help="train-only corpora")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=150.0, help="for all members")
    parser.add_argument("--epochs", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=5, help="encoders in the ensemble")
    parser.add_argument("--lr", type=float, default=TrainConfig.learning_rate)
    parser.add_argument("--crops", type=int, default=N_CROPS, help="per track embedding")
    parser.add_argument(
        "--timbre-share", type=float, default=0.0, help="of a score, for timbre statistics"
    )
    parser.add_argument("--freq-mask", type=int, default=0, help="most mel bands masked")
    parser.add_argument("--time-mask", type=int, default=0, help="most frames masked")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/simlib/similarity")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument(
        "--init-weights",
        type=Path,
        help="start from this checkpoint (--epochs 0: refit the scatter)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    split = load_split(args.corpus, args.extra)
    print(describe(split), flush=True)
    tracks = [(t.path, read_tags(t.path)) for t in split["train"]]
    val_tracks = [(t.path, read_tags(t.path)) for t in split["val"]]

    def report(p: TrainingUpdate) -> None:
        val = "" if p.val_tag_sim_at_10 is None else f" val tag-sim@10 {p.val_tag_sim_at_10:.3f}"
        print(
            f"member {p.member + 1}/{p.members} epoch {p.epoch} step {p.step}/{p.steps_per_epoch}"
            f" loss {p.loss:.4f}"
            f" {p.pairs_per_s:.0f} pairs/s ETA {p.eta_s / 60:.1f} min{val}",
            flush=True,
        )

    metrics = train_similarity(
        tracks,
        args.out,
        minutes=args.minutes,
        epochs=args.epochs,
        seed=args.seed,
        members=args.members,
        resume=not args.no_resume,
        init_weights=args.init_weights,
        config=TrainConfig(
            learning_rate=args.lr, freq_mask=args.freq_mask, time_mask=args.time_mask
        ),
        cache_dir=args.cache,
        progress=report,
        val_tracks=val_tracks,
        runtime=RuntimeSettings(args.crops, args.timbre_share),
    )
    for key, value in asdict(metrics).items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
