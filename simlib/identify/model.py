"""The fingerprint model, on ONNX Runtime: weights + settings -> one unit vector per ~1 s
segment of audio."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from simlib import weights
from simlib.audio.features import FRAME_RATE_HZ, LOG_FLOOR, N_MELS, phone_band
from simlib.types import Segments

SILENCE_MARGIN = 2.0
"""A segment whose loudest mel bin is within this (natural log units) of the floor is
digital silence and gets no vector."""
PHONE_VIEW = "phone_band"
"""The stored view of the fingerprints of each track's telephone band (`embed_phone_band`):
the catalog's and the index's name for it."""
PHONE_VIEW_REVISION = 1
"""Changes when `features.phone_band` would give other frames."""
BATCH = 64
"""Segments embedded per call: bounds the input (1.6 MB) and the network's temporaries."""


class FingerprintModel:
    """The fingerprint model with the settings stored beside it: the segment length and
    hops, and the identification policy's calibrations."""

    def __init__(self, runtime: weights.Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.version = runtime.version
        """Short hash of what stored vectors depend on (weights, segment length, database
        hop): vectors compare only within one version."""
        self.dim = int(runtime.settings["dim"])
        self.frames = int(self.settings["frames"])

    @classmethod
    def load(cls, path: Path | None = None) -> FingerprintModel:
        """The model in ONNX file `path` (default: the shipped one)."""
        return cls(weights.load(Path(path or weights.shipped_path("fingerprint")), "fingerprint"))

    def with_settings(self, **changes: float) -> FingerprintModel:
        """The same network with some settings changed (a benchmark's variants)."""
        return FingerprintModel(replace(self.runtime, settings={**self.settings, **changes}))

    @property
    def db_hop_s(self) -> float:
        """Seconds between segments of indexed tracks."""
        return float(self.settings["db_hop_s"])

    @property
    def query_hop_s(self) -> float:
        """Seconds between segments of a query clip."""
        return float(self.settings["query_hop_s"])

    @property
    def phone_version(self) -> str:
        """The version of the telephone band's vectors."""
        return f"{self.version}-phone{PHONE_VIEW_REVISION}"

    def embed_phone_band(self, mel: np.ndarray, hop_s: float) -> Segments:
        """`embed` of the frames as a telephone band would have left them: what a clip
        through a phone is nearest to."""
        return self.embed(phone_band(mel), hop_s)

    def embed(self, mel: np.ndarray, hop_s: float) -> Segments:
        """(frames, N_MELS) log-mel at FRAME_RATE_HZ -> one unit vector every `hop_s` seconds.

        Segment i covers frames [start, start + segment frames); a clip shorter than one
        segment but at least half of one is padded with silence, shorter ones give no
        segments; digitally silent segments are left out.
        """
        frames = self.frames
        mel = np.asarray(mel, dtype=np.float32).reshape(-1, N_MELS)
        if mel.shape[0] < frames // 2:
            return _empty(self.dim)
        if mel.shape[0] < frames:
            pad = np.full((frames - mel.shape[0], N_MELS), np.log(LOG_FLOOR), np.float32)
            mel = np.concatenate([mel, pad])
        step = max(1, int(round(hop_s * FRAME_RATE_HZ)))
        starts = np.arange(0, mel.shape[0] - frames + 1, step)
        loudest = np.lib.stride_tricks.sliding_window_view(mel.max(axis=1), frames)[starts]
        starts = starts[loudest.max(axis=1) > np.log(LOG_FLOOR) + SILENCE_MARGIN]
        windows = np.lib.stride_tricks.sliding_window_view(mel, frames, axis=0)
        out = np.zeros((starts.size, self.dim), dtype=np.float32)
        for i in range(0, starts.size, BATCH):  # only a batch of windows is ever copied
            batch = np.ascontiguousarray(windows[starts[i : i + BATCH]].transpose(0, 2, 1))
            out[i : i + BATCH] = self.runtime.session.run(None, {"mel": batch})[0]
        return Segments(start_s=(starts / FRAME_RATE_HZ).astype(np.float32), vectors=out)


def _empty(dim: int) -> Segments:
    return Segments(start_s=np.zeros(0, np.float32), vectors=np.zeros((0, dim), np.float32))
