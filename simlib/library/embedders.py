"""The registry of analysis stages a scan runs after the features, with the weights in use.

Weights trained locally (`simlib.weights.local_path`) take the place of the shipped ones.
The coordinating process of a scan or a watcher imports this module to name the stages'
loader for its workers, but never loads a model: the model modules are imported by the
loaders, in the workers (the fingerprint module, which loads nothing, is imported here for
the name of its phone view).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simlib import weights
from simlib.catalog import PackedSegments
from simlib.identify.model import PHONE_VIEW
from simlib.library.pipeline import Embedder

if TYPE_CHECKING:
    from simlib.identify.model import FingerprintModel
    from simlib.similar.model import SimilarityModel
    from simlib.types import Segments

FINGERPRINT = weights.FINGERPRINT.name
SIMILARITY = weights.SIMILARITY.name


class FingerprintStage:
    """Fingerprint segments every `db_hop_s`, packed for the catalog (int8, hop slots),
    indexed for `identify`."""

    name = FINGERPRINT
    kind = "segments"

    def __init__(self, model: FingerprintModel) -> None:
        self.model = model
        self.version = model.version
        self.index_params = {"dim": model.dim}

    def embed(self, mel: np.ndarray) -> PackedSegments:
        hop_s = self.model.db_hop_s
        return PackedSegments.pack(self._vectors(mel, hop_s), hop_s)

    def _vectors(self, mel: np.ndarray, hop_s: float) -> Segments:
        return self.model.embed(mel, hop_s)


class FingerprintPhoneStage(FingerprintStage):
    """The fingerprint of the track's telephone band (`FingerprintModel.embed_phone_band`),
    indexed for `identify`'s narrow-band second search: a clip through a phone is nearer
    its track's narrow band than its full band (benchmarks/identify.py, the phone across a
    room)."""

    name = PHONE_VIEW

    def __init__(self, model: FingerprintModel) -> None:
        super().__init__(model)
        self.version = model.phone_version

    def _vectors(self, mel: np.ndarray, hop_s: float) -> Segments:
        return self.model.embed_phone_band(mel, hop_s)


class SimilarityStage:
    """One similarity vector per track, indexed for `similar`."""

    name = SIMILARITY
    kind = "track"

    def __init__(self, model: SimilarityModel) -> None:
        self.model = model
        self.version = model.version
        self.index_params = {"ranking": model.ranking}

    def embed(self, mel: np.ndarray) -> np.ndarray:
        return self.model.embed(mel)


@lru_cache(maxsize=4)
def _load(model_class: type, path: Path, _files: tuple) -> FingerprintModel | SimilarityModel:
    """Models stay loaded per process (a DJ asks on every song) until a file they read
    changes, appears or goes, which `_files` (`files_state`) in the key tells."""
    return model_class.load(path)


def files_state(*paths: Path) -> tuple[tuple[int, int] | None, ...]:
    """Each file's size and modification time, None where there is no file."""
    stats = (p.stat() if p.is_file() else None for p in paths)
    return tuple((s.st_size, s.st_mtime_ns) if s else None for s in stats)


def model_files(home: Path) -> dict[str, tuple[Path, ...]]:
    """The files each model of this home reads, the weights in use first: the fingerprint
    model also reads the telephone band's network beside them, if there is one."""
    fingerprint = weights.path_in_use(home, FINGERPRINT)
    phone = weights.beside(fingerprint, weights.FINGERPRINT_PHONE.name)
    return {FINGERPRINT: (fingerprint, phone), SIMILARITY: (weights.path_in_use(home, SIMILARITY),)}


def load_fingerprint_model(home: Path) -> FingerprintModel:
    from simlib.identify.model import FingerprintModel

    files = model_files(home)[FINGERPRINT]
    return _load(FingerprintModel, files[0], files_state(*files))


def load_similarity_model(home: Path) -> SimilarityModel:
    from simlib.similar.model import SimilarityModel

    files = model_files(home)[SIMILARITY]
    return _load(SimilarityModel, files[0], files_state(*files))


def load_embedders(home: Path) -> list[Embedder]:
    """The embedders of this simlib, loaded once per process."""
    return [
        FingerprintStage(load_fingerprint_model(home)),
        FingerprintPhoneStage(load_fingerprint_model(home)),
        SimilarityStage(load_similarity_model(home)),
    ]


CODE_DIR = Path(__file__).resolve().parents[1]
"""The simlib package: its source files are part of what the stages' versions depend on."""


def stages_key(home: Path) -> str:
    """What the analysis stages (their versions, index parameters) depend on, learnt
    without loading a model: the weights files in use and simlib's code, by path, size
    and modification time. A scan with nothing to analyse reuses the stages noted under
    the same key instead of starting workers to load the models (seconds)."""
    files = [path for _, paths in sorted(model_files(home).items()) for path in paths]
    files += sorted(CODE_DIR.rglob("*.py"))
    digest = hashlib.blake2b(digest_size=12)
    for path, state in zip(files, files_state(*files), strict=True):
        digest.update(f"{path}\0{state}\n".encode())
    return digest.hexdigest()
