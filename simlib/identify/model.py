"""The fingerprint model: weights + settings -> one unit vector per ~1 s segment of audio."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from simlib import weights
from simlib.audio.features import FRAME_RATE_HZ, LOG_FLOOR, N_MELS
from simlib.identify.encoder import FingerprintEncoder
from simlib.types import Segments

SILENCE_MARGIN = 2.0
"""A segment whose loudest mel bin is within this (natural log units) of the floor is
digital silence and gets no vector."""
BATCH = 256
VECTOR_SETTINGS = ("segment_s", "db_hop_s")
"""The settings stored vectors depend on (with the weights): a change means re-analysis."""


def vectors_version(config: dict, settings: dict, encoder: FingerprintEncoder) -> str:
    """12 hex digits over the architecture, the weights and VECTOR_SETTINGS: what a
    library's stored vectors depend on. Query settings can change without re-analysing."""
    digest = hashlib.blake2b(digest_size=6)
    vector_settings = [settings[k] for k in VECTOR_SETTINGS]
    digest.update(json.dumps([config, vector_settings], sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch intra-op threads, then restore the count before."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FingerprintModel:
    """The fingerprint encoder with the settings stored beside it: segment length and hops,
    the index's tree count, and the identification policy's calibrations and counts."""

    def __init__(self, encoder: FingerprintEncoder, settings: dict, version: str) -> None:
        self.encoder = encoder.eval()
        self.settings = settings
        self.version = version
        """Short hash of what the stored vectors depend on (`vectors_version`)."""

    @classmethod
    def load(cls, path: Path | None = None) -> FingerprintModel:
        """The model in weights file `path` (default: the shipped one)."""
        blob = weights.read(path or weights.shipped_path("fingerprint"), "fingerprint")
        encoder = FingerprintEncoder(**blob["config"])
        encoder.load_state_dict(blob["state_dict"])
        settings = dict(blob["settings"])
        return cls(encoder, settings, vectors_version(blob["config"], settings, encoder))

    def with_settings(self, **changes: float) -> FingerprintModel:
        """The same encoder with some settings changed (a benchmark's variants)."""
        settings = {**self.settings, **changes}
        return FingerprintModel(self.encoder, settings, self.version)

    @property
    def dim(self) -> int:
        return int(self.encoder.config["dim"])

    @property
    def db_hop_s(self) -> float:
        """Seconds between segments of indexed tracks."""
        return float(self.settings["db_hop_s"])

    @property
    def query_hop_s(self) -> float:
        """Seconds between segments of a query clip."""
        return float(self.settings["query_hop_s"])

    @property
    def n_trees(self) -> int:
        """Annoy trees to build the segment index with."""
        return int(self.settings["n_trees"])

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
