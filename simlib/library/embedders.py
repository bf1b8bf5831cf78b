"""The registry of analysis stages a scan runs after the features, with the weights in use.

Weights trained locally (`simlib.weights.local_path`) take the place of the shipped ones.
The coordinating process of a scan or a watcher imports this module to name the stages'
loader for its workers, but never loads a model: the model modules are imported by the
loaders, in the workers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simlib import weights
from simlib.library.pipeline import Embedder
from simlib.types import Segments

if TYPE_CHECKING:
    from simlib.identify.model import FingerprintModel
    from simlib.similar.model import SimilarityModel

FINGERPRINT = weights.FINGERPRINT.name
SIMILARITY = weights.SIMILARITY.name


class FingerprintStage:
    """Fingerprint segments every `db_hop_s`, stored as float16, indexed for `identify`."""

    name = FINGERPRINT
    kind = "segments"

    def __init__(self, model: FingerprintModel) -> None:
        self.model = model
        self.version = model.version
        self.index_params = {"dim": model.dim, "n_trees": model.n_trees}

    def embed(self, mel: np.ndarray) -> Segments:
        segments = self.model.embed(mel, self.model.db_hop_s)
        return Segments(segments.start_s, segments.vectors.astype(np.float16))


class SimilarityStage:
    """One similarity vector per track, indexed for `similar`."""

    name = SIMILARITY
    kind = "track"
    index_params: dict = {}

    def __init__(self, model: SimilarityModel) -> None:
        self.model = model
        self.version = model.version

    def embed(self, mel: np.ndarray) -> np.ndarray:
        return self.model.embed(mel)


@lru_cache(maxsize=4)
def _load(model_class: type, path: Path, _mtime_ns: int) -> FingerprintModel | SimilarityModel:
    """Models stay loaded per process (a DJ asks on every song) until their file changes,
    which the modification time in the key tells."""
    return model_class.load(path)


def load_fingerprint_model(home: Path) -> FingerprintModel:
    from simlib.identify.model import FingerprintModel

    path = weights.path_in_use(home, FINGERPRINT)
    return _load(FingerprintModel, path, path.stat().st_mtime_ns)


def load_similarity_model(home: Path) -> SimilarityModel:
    from simlib.similar.model import SimilarityModel

    path = weights.path_in_use(home, SIMILARITY)
    return _load(SimilarityModel, path, path.stat().st_mtime_ns)


def load_embedders(home: Path) -> list[Embedder]:
    """The embedders of this simlib, loaded once per process."""
    return [
        FingerprintStage(load_fingerprint_model(home)),
        SimilarityStage(load_similarity_model(home)),
    ]
