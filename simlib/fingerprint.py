"""Turn log-mel features into fingerprint segments with the shipped (or a given) CNN."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from simlib.config import SHIPPED_WEIGHTS_DIR
from simlib.features import FRAME_RATE_HZ, LOG_FLOOR, N_MELS
from simlib.matching import Calibration
from simlib.models.fingerprint_encoder import FingerprintEncoder
from simlib.types import Segments

DEFAULT_WEIGHTS = SHIPPED_WEIGHTS_DIR / "fingerprint.pt"
SILENCE_MARGIN = 2.0
"""A segment whose loudest mel bin is within this (natural log units) of the floor is
digital silence and gets no vector."""
BATCH = 256


def default_settings() -> dict:
    """Settings stored with the weights next to the architecture config."""
    return {
        "segment_s": 1.0,
        "db_hop_s": 0.5,
        "query_hop_s": 0.2,
        "calibration": [17.385, 0.27],
        "source_calibration": [9.125, 0.346, -4.426],
        "neighbours": 50,
        "search_k": 10_000,
        "n_trees": 5,
    }


def vectors_version(config: dict, settings: dict, encoder: FingerprintEncoder) -> str:
    """12 hex digits over the architecture, the weights, the segment length and the
    database hop: what a library's stored vectors depend on. Matching settings
    (calibrations, query hop, k, search_k, trees) can change without re-analysing."""
    digest = hashlib.blake2b(digest_size=6)
    vector_settings = [settings["segment_s"], settings["db_hop_s"]]
    digest.update(json.dumps([config, vector_settings], sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FingerprintModel:
    """The fingerprint encoder with its hop settings and confidence calibration."""

    def __init__(self, encoder: FingerprintEncoder, settings: dict, version: str) -> None:
        self.encoder = encoder.eval()
        self.settings = settings
        self._version = version

    @classmethod
    def load(cls, weights_path: Path | str | None = None) -> FingerprintModel:
        """Load a checkpoint {"config", "settings", "state_dict"} (torch weights_only)."""
        path = Path(weights_path or DEFAULT_WEIGHTS)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        encoder = FingerprintEncoder(**blob["config"])
        encoder.load_state_dict(blob["state_dict"])
        settings = {**default_settings(), **blob.get("settings", {})}
        return cls(encoder, settings, vectors_version(blob["config"], settings, encoder))

    @property
    def version(self) -> str:
        """Short hash of what the stored vectors depend on (`vectors_version`); vectors are
        only comparable within one."""
        return self._version

    @property
    def dim(self) -> int:
        return int(self.encoder.config["dim"])

    @property
    def segment_s(self) -> float:
        return float(self.settings["segment_s"])

    @property
    def db_hop_s(self) -> float:
        """Seconds between segments of indexed tracks."""
        return float(self.settings["db_hop_s"])

    @property
    def query_hop_s(self) -> float:
        """Seconds between segments of a query clip."""
        return float(self.settings["query_hop_s"])

    @property
    def neighbours(self) -> int:
        """Nearest database segments to fetch per query segment (k of the index search)."""
        return int(self.settings["neighbours"])

    @property
    def search_k(self) -> int:
        """Annoy nodes to inspect per query segment; recall at 10,000 tracks needs ~10,000."""
        return int(self.settings["search_k"])

    @property
    def n_trees(self) -> int:
        """Annoy trees to build the segment index with."""
        return int(self.settings["n_trees"])

    @property
    def calibration(self) -> Calibration:
        """How margins (and source checks) map to confidence."""
        slope, mid = self.settings["calibration"]
        w_margin, w_source, bias = self.settings["source_calibration"]
        return Calibration(
            (float(slope), float(mid)), (float(w_margin), float(w_source), float(bias))
        )

    def embed(self, mel: np.ndarray, hop_s: float) -> Segments:
        """(frames, N_MELS) log-mel at FRAME_RATE_HZ -> one unit vector every `hop_s` seconds.

        Segment i covers frames [start, start + segment frames); a clip shorter than one
        segment but at least half of one is padded with silence, shorter ones give no
        segments; digitally silent segments are left out.
        """
        frames = int(self.encoder.config["frames"])
        mel = np.asarray(mel, dtype=np.float32).reshape(-1, N_MELS)
        if mel.shape[0] < frames // 2:
            return _empty(self.dim)
        if mel.shape[0] < frames:
            pad = np.full((frames - mel.shape[0], N_MELS), np.log(LOG_FLOOR), np.float32)
            mel = np.concatenate([mel, pad])
        step = max(1, int(round(hop_s * FRAME_RATE_HZ)))
        starts = np.arange(0, mel.shape[0] - frames + 1, step)
        windows = np.lib.stride_tricks.sliding_window_view(mel, frames, axis=0)[starts]
        loud = windows.max(axis=(1, 2)) > np.log(LOG_FLOOR) + SILENCE_MARGIN
        starts, windows = starts[loud], windows[loud]
        out = np.zeros((starts.size, self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, starts.size, BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(windows[i : i + BATCH]))
                out[i : i + BATCH] = self.encoder(batch.transpose(1, 2)).numpy()
        return Segments(start_s=(starts / FRAME_RATE_HZ).astype(np.float32), vectors=out)


def _empty(dim: int) -> Segments:
    return Segments(start_s=np.zeros(0, np.float32), vectors=np.zeros((0, dim), np.float32))


def encode_vectors(segments: Segments) -> bytes:
    """Segment vectors as float16 bytes, row-major (2 * dim bytes per segment)."""
    return np.ascontiguousarray(segments.vectors, dtype="<f2").tobytes()


def decode_vectors(blob: bytes, n: int) -> np.ndarray:
    """Inverse of `encode_vectors`: (n, dim) float32 from `n` segments' bytes."""
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.frombuffer(blob, dtype="<f2").reshape(n, -1).astype(np.float32)
