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
VIEW_SHAPE = ("frames", "dim", "segment_s", "db_hop_s")
"""What the telephone band's network must share with the main one: the views' segments
line up and a clip's are searched in both."""
BATCH = 64
"""Segments embedded per call: bounds the input (1.6 MB) and the network's temporaries."""


class FingerprintModel:
    """The fingerprint model with the settings stored beside it: the segment length and
    hops, and the identification policy's calibrations; and the network of the library's
    telephone-band view (`weights.FINGERPRINT_PHONE`, else the same network)."""

    def __init__(self, runtime: weights.Runtime, phone: weights.Runtime | None = None) -> None:
        self.runtime = runtime
        self.phone = phone or runtime
        self.settings = runtime.settings
        self.version = runtime.version
        """Short hash of what stored vectors depend on (weights, segment length, database
        hop): vectors compare only within one version."""
        self.dim = int(runtime.settings["dim"])
        shape = {k: self.phone.settings[k] for k in VIEW_SHAPE}
        if shape != {k: self.settings[k] for k in VIEW_SHAPE}:
            raise ValueError(f"the telephone band's network has other segments: {shape}")

    @classmethod
    def load(cls, path: Path | None = None) -> FingerprintModel:
        """The model in ONNX file `path` (default: the shipped one), with the telephone
        band's network beside it if there is one."""
        path = Path(path or weights.shipped_path("fingerprint"))
        name = weights.FINGERPRINT_PHONE.name
        phone_path = weights.beside(path, name)
        phone = weights.load(phone_path, name) if phone_path.is_file() else None
        return cls(weights.load(path, weights.FINGERPRINT.name), phone)

    def with_settings(self, **changes: float) -> FingerprintModel:
        """The same networks with some settings changed (a benchmark's variants)."""
        runtime = replace(self.runtime, settings={**self.settings, **changes})
        return FingerprintModel(runtime, None if self.one_network else self.phone)

    @property
    def one_network(self) -> bool:
        """One network serves both views (no telephone band's network beside the weights)."""
        return self.phone is self.runtime

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
        return f"{self.phone.version}-phone{PHONE_VIEW_REVISION}"

    def embed_phone_band(self, mel: np.ndarray, hop_s: float) -> Segments:
        """The telephone-band view of a track: its frames as a telephone band would have
        left them, through the view's network: what a clip through a phone is nearest to."""
        return _embed(self.phone, phone_band(mel), hop_s)

    def embed_for_phone_view(self, mel: np.ndarray, hop_s: float, full: Segments) -> Segments:
        """A clip's segments to search the telephone-band view with: `full`, the clip's
        `embed`, when one network serves both views."""
        return full if self.one_network else _embed(self.phone, mel, hop_s)

    def embed(self, mel: np.ndarray, hop_s: float) -> Segments:
        """(frames, N_MELS) log-mel at FRAME_RATE_HZ -> one unit vector every `hop_s` seconds.

        Segment i covers frames [start, start + segment frames); a clip shorter than one
        segment but at least half of one is padded with silence, shorter ones give no
        segments; digitally silent segments are left out.
        """
        return _embed(self.runtime, mel, hop_s)


def _embed(runtime: weights.Runtime, mel: np.ndarray, hop_s: float) -> Segments:
    """`FingerprintModel.embed` through the network of `runtime`."""
    frames, dim = int(runtime.settings["frames"]), int(runtime.settings["dim"])
    mel = np.asarray(mel, dtype=np.float32).reshape(-1, N_MELS)
    if mel.shape[0] < frames // 2:
        return _empty(dim)
    if mel.shape[0] < frames:
        pad = np.full((frames - mel.shape[0], N_MELS), np.log(LOG_FLOOR), np.float32)
        mel = np.concatenate([mel, pad])
    step = max(1, int(round(hop_s * FRAME_RATE_HZ)))
    starts = np.arange(0, mel.shape[0] - frames + 1, step)
    loudest = np.lib.stride_tricks.sliding_window_view(mel.max(axis=1), frames)[starts]
    starts = starts[loudest.max(axis=1) > np.log(LOG_FLOOR) + SILENCE_MARGIN]
    windows = np.lib.stride_tricks.sliding_window_view(mel, frames, axis=0)
    out = np.zeros((starts.size, dim), dtype=np.float32)
    for i in range(0, starts.size, BATCH):  # only a batch of windows is ever copied
        batch = np.ascontiguousarray(windows[starts[i : i + BATCH]].transpose(0, 2, 1))
        out[i : i + BATCH] = runtime.session.run(None, {"mel": batch})[0]
    return Segments(start_s=(starts / FRAME_RATE_HZ).astype(np.float32), vectors=out)


def _empty(dim: int) -> Segments:
    return Segments(start_s=np.zeros(0, np.float32), vectors=np.zeros((0, dim), np.float32))
