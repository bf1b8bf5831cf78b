"""Track embeddings for "find similar tracks": the model in use, on ONNX Runtime.

A track is summarised by `n_crops` fixed-length log-mel crops chosen deterministically
(spread over the track, avoiding silent stretches). The model (an ensemble of encoders
trained alike from different seeds, `simlib.similar.encoder.Ensemble`) maps a track's
crops to one vector: each member's normalised mean of its crop vectors, side by side,
so that the cosine of two tracks is the mean of the members' cosines; then, if the model
has a timbre part, each mel band's mean and spread over time averaged over the crops, in
their own units (the index standardises them on the library, `simlib.similar.index`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simlib import weights
from simlib.audio.features import FRAME_RATE_HZ, LOG_FLOOR, N_MELS

CROP_FRAMES = 4 * FRAME_RATE_HZ
"""Length of one crop: 4 s of log-mel frames."""

N_CROPS = 8
"""Crops per track embedding."""

SILENCE_LEVEL = float(np.log(LOG_FLOOR)) + 1.0
"""A frame whose loudest mel band is below this natural-log power is silent."""

_HOP_FRAMES = FRAME_RATE_HZ // 2
"""Candidate crop starts lie on a 0.5 s grid."""


def crop_starts(n_frames: int, loud: np.ndarray, n_crops: int, crop_frames: int) -> np.ndarray:
    """First frame of each of `n_crops` crops of a track of `n_frames` frames (int64, sorted).

    `loud` is a bool per frame (True = not silent). Candidate starts lie on a
    0.5 s grid; those whose crop is at least as loud as 90 % of the loudest
    candidate's are kept, and `n_crops` of them are taken evenly spaced.
    Deterministic; a track shorter than a crop gives all zeros.
    """
    last = n_frames - crop_frames
    if last <= 0:
        return np.zeros(n_crops, dtype=np.int64)
    candidates = np.unique(np.append(np.arange(0, last + 1, _HOP_FRAMES), last))
    cumulative = np.concatenate([[0], np.cumsum(loud, dtype=np.int64)])
    loudness = cumulative[candidates + crop_frames] - cumulative[candidates]
    kept = candidates[loudness >= 0.9 * loudness.max()]
    picks = np.round(np.linspace(0, kept.size - 1, n_crops)).astype(np.int64)
    return kept[picks]


def crops(mel: np.ndarray, n_crops: int = N_CROPS, crop_frames: int = CROP_FRAMES) -> np.ndarray:
    """(n_crops, crop_frames, N_MELS) float32 crops of a (frames, N_MELS) track log-mel.

    A track shorter than a crop is repeated to fill it; an empty one becomes silence.
    """
    mel = np.asarray(mel, dtype=np.float32).reshape(-1, N_MELS)
    if mel.shape[0] == 0:
        return np.full((n_crops, crop_frames, N_MELS), np.log(LOG_FLOOR), dtype=np.float32)
    if mel.shape[0] < crop_frames:
        mel = np.resize(mel, (crop_frames, N_MELS))  # np.resize repeats the frames cyclically
    loud = mel.max(axis=1) > SILENCE_LEVEL
    starts = crop_starts(mel.shape[0], loud, n_crops, crop_frames)
    return np.stack([mel[s : s + crop_frames] for s in starts])


class SimilarityModel:
    """The similarity model in a weights file, with the crops it was trained on."""

    def __init__(self, runtime: weights.Runtime) -> None:
        self.session = runtime.session
        self.version = runtime.version
        """Short hash of the weights: embeddings of different versions don't compare."""
        self.n_crops = int(runtime.settings["n_crops"])
        self.crop_frames = int(runtime.settings["crop_frames"])
        self.dim = int(runtime.settings["dim"])
        self.ranking: dict | list | None = runtime.settings.get("ranking")
        """The parts of a track vector, how the index weighs them and the album scatter it
        whitens by (`simlib.similar.index.Ranking.from_settings`); None: one embedding."""

    @classmethod
    def load(cls, path: str | Path | None = None) -> SimilarityModel:
        """The model in ONNX file `path` (default: the shipped one)."""
        return cls(weights.load(Path(path or weights.shipped_path("similarity")), "similarity"))

    def embed(self, mel: np.ndarray) -> np.ndarray:
        """(frames, N_MELS) whole-track log-mel -> (dim,) float32 track vector."""
        return self.embed_many([mel])[0]

    def embed_many(self, mels: list[np.ndarray]) -> np.ndarray:
        """Whole-track log-mels -> (len(mels), dim) float32 track vectors, one batched pass."""
        if not mels:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = np.stack([crops(m, self.n_crops, self.crop_frames) for m in mels])
        return self.session.run(None, {"crops": batch})[0]
