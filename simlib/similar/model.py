"""Track embeddings for "find similar tracks": load the shipped model and embed log-mels.

A track is summarised by `n_crops` fixed-length log-mel crops chosen
deterministically (spread over the track, avoiding silent stretches); each crop
goes through `SimilarityEncoder` and the track's vector from that encoder is the
L2-normalised mean of its crop embeddings. A model may hold several encoders
trained alike from different seeds (an ensemble); the track embedding is their
vectors side by side, scaled to unit length, so its cosine with another track's
is the mean of the members' cosines. Higher is more similar.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from simlib import weights
from simlib.audio.features import FRAME_RATE_HZ, LOG_FLOOR, N_MELS
from simlib.similar.encoder import EncoderConfig, SimilarityEncoder

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
    """The shipped (or any saved) similarity encoders, in inference mode on the CPU."""

    def __init__(
        self, encoders: list[SimilarityEncoder], version: str, n_crops: int, crop_frames: int
    ):
        self.encoders = [e.eval() for e in encoders]
        self._version = version
        self.n_crops = n_crops
        self.crop_frames = crop_frames

    @classmethod
    def load(cls, path: str | Path | None = None) -> SimilarityModel:
        """The model in weights file `path` (default: the shipped one)."""
        path = Path(path) if path is not None else weights.shipped_path("similarity")
        saved = weights.read(path, "similarity")
        encoders = []
        for member in saved["members"]:
            encoder = SimilarityEncoder(EncoderConfig.from_dict(member["config"]))
            encoder.load_state_dict(member["state_dict"])
            encoders.append(encoder)
        version = hashlib.blake2b(path.read_bytes(), digest_size=6).hexdigest()
        return cls(encoders, version, int(saved["n_crops"]), int(saved["crop_frames"]))

    @property
    def version(self) -> str:
        """Short hash of the weights file: embeddings of different versions don't compare."""
        return self._version

    @property
    def dim(self) -> int:
        return sum(e.config.dim for e in self.encoders)

    def embed(self, mel: np.ndarray) -> np.ndarray:
        """(frames, N_MELS) whole-track log-mel -> (dim,) float32 unit vector."""
        return self.embed_many([mel])[0]

    def embed_many(self, mels: list[np.ndarray]) -> np.ndarray:
        """Whole-track log-mels -> (len(mels), dim) float32 unit vectors, one batched pass."""
        if not mels:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = torch.from_numpy(
            np.concatenate([crops(m, self.n_crops, self.crop_frames) for m in mels])
        )
        with torch.inference_mode():
            return ensemble_vectors(self.encoders, batch, len(mels)).numpy()


def save_weights(encoders: list[SimilarityEncoder], path: Path) -> None:
    """Write `encoders` (an ensemble if several) as `SimilarityModel.load` reads them."""
    members = [
        {
            "config": e.config.as_dict(),
            "state_dict": {k: v.detach().clone() for k, v in e.state_dict().items()},
        }
        for e in encoders
    ]
    blob = {"members": members, "n_crops": N_CROPS, "crop_frames": CROP_FRAMES}
    weights.write(path, "similarity", blob)


def track_vectors(crop_vectors: torch.Tensor) -> torch.Tensor:
    """(tracks, crops, dim) crop embeddings -> (tracks, dim) normalised mean per track."""
    return torch.nn.functional.normalize(crop_vectors.mean(dim=1), dim=1, eps=1e-6)


def ensemble_vectors(
    encoders: list[SimilarityEncoder], crop_batch: torch.Tensor, n_tracks: int
) -> torch.Tensor:
    """(n_tracks x crops, frames, N_MELS) crops, track after track -> (n_tracks, sum of the
    encoders' dims) unit vectors: each encoder's `track_vectors` side by side, scaled so
    that a cosine between two tracks is the mean of the encoders' cosines."""
    members = [track_vectors(e(crop_batch).view(n_tracks, -1, e.config.dim)) for e in encoders]
    return torch.cat(members, dim=1) / len(members) ** 0.5
