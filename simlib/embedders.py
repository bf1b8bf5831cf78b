"""The analysis stages a scan runs after the features, with the weights in use.

Weights trained locally (`simlib train ...`, saved as `$SIMLIB_HOME/models/<name>.pt`)
take the place of the weights shipped in the package.

The coordinating process of a scan or a watcher imports this module to name the
stages' loader for its workers, but never loads a model: the model modules (and
torch, about 500 MB per process) are imported by the loaders, in the workers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simlib.config import SHIPPED_WEIGHTS_DIR
from simlib.pipeline import Embedder
from simlib.types import Segments

if TYPE_CHECKING:
    from simlib.fingerprint import FingerprintModel
    from simlib.similarity import SimilarityModel

FINGERPRINT = "fingerprint"
SIMILARITY = "similarity"
LOCAL_MODELS_DIR = "models"


def local_weights(home: Path, name: str) -> Path:
    """Where `simlib train NAME` saves weights for this home."""
    return home / LOCAL_MODELS_DIR / f"{name}.pt"


def weights_in_use(home: Path, name: str) -> Path:
    """Locally trained weights if there are any, else the shipped ones."""
    local = local_weights(home, name)
    if local.is_file():
        return local
    return SHIPPED_WEIGHTS_DIR / f"{name}.pt"


class FingerprintStage:
    """Fingerprint segments every `db_hop_s`, stored as float16, indexed for `identify`."""

    name = FINGERPRINT
    kind = "segments"

    def __init__(self, model: FingerprintModel) -> None:
        self.model = model
        self.version = model.version
        self.index_params = {
            "dim": model.dim,
            "metric": str(model.settings.get("metric", "angular")),
            "n_trees": model.n_trees,
        }

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
    """Models stay loaded per process (e.g. a DJ asking on every song) until their file
    changes, which the modification time in the key tells."""
    return model_class.load(path)


def load_fingerprint_model(home: Path) -> FingerprintModel:
    from simlib.fingerprint import FingerprintModel

    path = weights_in_use(home, FINGERPRINT)
    return _load(FingerprintModel, path, path.stat().st_mtime_ns)


def load_similarity_model(home: Path) -> SimilarityModel:
    from simlib.similarity import SimilarityModel

    path = weights_in_use(home, SIMILARITY)
    return _load(SimilarityModel, path, path.stat().st_mtime_ns)


def load_embedders(home: Path) -> list[Embedder]:
    """The embedders of this simlib, loaded once per process."""
    return [
        FingerprintStage(load_fingerprint_model(home)),
        SimilarityStage(load_similarity_model(home)),
    ]
