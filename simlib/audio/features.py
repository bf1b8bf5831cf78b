"""Log-mel spectrogram features, the one representation every model reads.

Frames are 10 ms apart (100 per second) and frame k is centred on sample
k * HOP, so frame index / FRAME_RATE_HZ is the time in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import torch
import torchaudio

from simlib.audio.decode import ANALYSIS_RATE_HZ

N_FFT = 1024
HOP = 160
N_MELS = 64
F_MIN_HZ = 30.0
F_MAX_HZ = 8000.0
FRAME_RATE_HZ = ANALYSIS_RATE_HZ // HOP
LOG_FLOOR = 1e-5
"""Power floor before the log: silence maps to log(1e-5), about -11.5."""


@lru_cache(maxsize=1)
def _mel_transform() -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=ANALYSIS_RATE_HZ,
        n_fft=N_FFT,
        hop_length=HOP,
        f_min=F_MIN_HZ,
        f_max=F_MAX_HZ,
        n_mels=N_MELS,
        center=False,
        power=2.0,
    )


def log_mel_tensor(samples: torch.Tensor) -> torch.Tensor:
    """(..., n_samples) at ANALYSIS_RATE_HZ -> (..., frames, N_MELS), uncentred frames.

    Differentiable and batched; used by training code on augmented audio.
    """
    return torch.log(_mel_transform()(samples) + LOG_FLOOR).transpose(-1, -2)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Mono float32 samples -> (frames, N_MELS) float32, frame k centred on k * HOP."""
    return log_mel_stream([samples])


def log_mel_stream(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Log-mel of a stream of consecutive blocks, identical to the whole-signal result.

    Only the frames are kept in memory (25.6 kB per second), never the samples
    of more than one block.
    """
    half = N_FFT // 2
    carry = np.zeros(half, dtype=np.float32)  # centre the first frame on sample 0
    out: list[np.ndarray] = []
    seen = 0
    for block in blocks:
        seen += len(block)
        buf = np.concatenate([carry, np.asarray(block, dtype=np.float32)])
        n_frames = (buf.size - N_FFT) // HOP + 1 if buf.size >= N_FFT else 0
        if n_frames > 0:
            used = (n_frames - 1) * HOP + N_FFT
            out.append(log_mel_tensor(torch.from_numpy(buf[:used])).numpy())
            carry = buf[n_frames * HOP :]
        else:
            carry = buf
    tail = np.concatenate([carry, np.zeros(half, dtype=np.float32)])
    if seen and tail.size >= N_FFT:
        out.append(log_mel_tensor(torch.from_numpy(tail)).numpy())
    if not out:
        return np.zeros((0, N_MELS), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
