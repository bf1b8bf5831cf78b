"""The fingerprint CNN: a ~1 s log-mel patch -> an L2-normalised embedding."""

from __future__ import annotations

import torch
from torch import nn

from simlib.audio.features import N_MELS

LEVEL_SCALE = 5.0
"""Log-mel patches are shifted to zero mean (gain invariance) and divided by this."""


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class FingerprintEncoder(nn.Module):
    """(batch, frames, N_MELS) log-mel -> (batch, dim) unit vectors.

    Five stride-2 conv blocks (about 9 M multiply-adds for a 100-frame patch), then a
    two-layer projection head. An all-silent patch maps to a finite unit vector.
    """

    def __init__(self, dim: int = 64, frames: int = 100, width: int = 16) -> None:
        super().__init__()
        self.config = {"dim": dim, "frames": frames, "width": width}
        chans = [1, width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.convs = nn.Sequential(
            *(_block(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
        )
        t, f = frames, N_MELS
        for _ in range(5):
            t, f = (t + 1) // 2, (f + 1) // 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(chans[-1] * t * f, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, dim),
        )

    def project(self, mel: torch.Tensor) -> torch.Tensor:
        """The embedding before L2 normalisation."""
        x = mel - mel.mean(dim=(-1, -2), keepdim=True)
        return self.head(self.convs((x / LEVEL_SCALE).unsqueeze(1)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.project(mel), dim=-1, eps=1e-6)

    def reduce_dim(self, mel: torch.Tensor, dim: int) -> None:
        """Fold a PCA of the outputs on `mel` (a sample of clean patches) into the last layer,
        keeping the `dim` strongest centred directions."""
        with torch.inference_mode():
            z = torch.cat([self.eval().project(m) for m in mel.split(512)]).double()
            mean = z.mean(dim=0)
            basis = torch.linalg.svd(z - mean, full_matrices=False)[2][:dim]
        last = self.head[-1]
        folded = nn.Linear(last.in_features, dim)
        with torch.no_grad():
            folded.weight.copy_(basis.float() @ last.weight)
            folded.bias.copy_(basis.float() @ (last.bias - mean.float()))
        self.head[-1] = folded
        self.config = {**self.config, "dim": dim}
