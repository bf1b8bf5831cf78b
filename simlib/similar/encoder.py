"""The similarity network: a small CNN mapping one log-mel crop to a unit vector.

Input (batch, frames, N_MELS) natural-log mel power as `simlib.audio.features` makes
it; output (batch, dim) L2-normalised. Both siamese branches share this module;
a track embedding is the normalised mean of its crop embeddings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from simlib.audio.features import N_MELS


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of `SimilarityEncoder`; stored with the weights."""

    n_mels: int = N_MELS
    time_pool: int = 2
    """Frames averaged before the convolutions (2: 50 frames/s, halves the cost)."""
    channels: tuple[int, ...] = (16, 32, 64, 128)
    hidden: int = 256
    dim: int = 128

    def as_dict(self) -> dict:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> EncoderConfig:
        return cls(**{**data, "channels": tuple(data["channels"])})


class SimilarityEncoder(nn.Module):
    """Time pooling, conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pool), mean+std over time.

    The head also sees the mean and std over time of each normalised input band,
    a direct timbre summary the convolutional features add to.
    """

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or EncoderConfig()
        c = self.config
        self.input_norm = nn.BatchNorm1d(c.n_mels)
        blocks: list[nn.Module] = []
        previous = 1
        for width in c.channels:
            blocks += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.blocks = nn.Sequential(*blocks)
        bands = c.n_mels // 2 ** len(c.channels)
        self.project = nn.Sequential(
            nn.Conv1d(previous * bands, c.hidden, 1, bias=False),
            nn.BatchNorm1d(c.hidden),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(2 * c.hidden + 2 * c.n_mels, c.dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(batch, frames >= 16 * time_pool, n_mels) log-mel -> (batch, dim) unit vectors."""
        x = self.input_norm(mel.transpose(1, 2))  # (B, mels, frames)
        x = F.avg_pool1d(x, self.config.time_pool)
        bands = _mean_std(x)
        x = self.blocks(x.unsqueeze(1))  # (B, channels, mels', frames')
        x = self.project(x.flatten(1, 2))  # (B, hidden, frames')
        features = torch.cat([_mean_std(x), bands], dim=1)
        return F.normalize(self.head(features), dim=1, eps=1e-6)


def _mean_std(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T) -> (B, 2C) mean and std over T; the eps keeps silent input's gradient finite."""
    return torch.cat([x.mean(dim=2), (x.var(dim=2, unbiased=False) + 1e-5).sqrt()], dim=1)


class Ensemble(nn.Module):
    """Members (encoders trained alike from different seeds) as one model: (tracks, crops,
    frames, n_mels) log-mel crops -> (tracks, dim) track vectors. Each member's vector of a
    track is the normalised mean of its crop vectors; the members' vectors sit side by
    side, divided by the square root of their number, so that the cosine of two tracks is
    the mean of the members' cosines. With a `timbre_share`, each mel band's mean and std
    over time (averaged over the crops, in log-mel units) follow: the index standardises
    them on the library and gives them that share of a score (`simlib.similar.index`)."""

    def __init__(self, members: list[SimilarityEncoder], timbre_share: float = 0.0) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.timbre_share = timbre_share
        self.n_mels = members[0].config.n_mels

    @property
    def ranking(self) -> list:
        """The index's parts of this model's vectors (`Ranking.from_settings`)."""
        embedding = [sum(m.config.dim for m in self.members), 1.0 - self.timbre_share, False]
        timbre = [2 * self.n_mels, self.timbre_share, True]
        return [embedding, timbre] if self.timbre_share > 0 else [embedding]

    @property
    def dim(self) -> int:
        return sum(size for size, _, _ in self.ranking)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        n_crops = crops.shape[1]
        flat = crops.reshape(-1, crops.shape[2], crops.shape[3])
        scale = len(self.members) ** -0.5
        vectors = [
            scale
            * F.normalize(m(flat).reshape(-1, n_crops, m.config.dim).mean(dim=1), dim=1, eps=1e-6)
            for m in self.members
        ]
        if self.timbre_share > 0:
            bands = _mean_std(flat.transpose(1, 2)).reshape(-1, n_crops, 2 * self.n_mels)
            vectors.append(bands.mean(dim=1))
        return torch.cat(vectors, dim=1)
