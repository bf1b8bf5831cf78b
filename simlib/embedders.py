"""The analysis stages a scan runs after the features, with the weights in use.

Weights trained locally (`simlib train ...`, stored under `$SIMLIB_HOME/models`)
take the place of the weights shipped in the package.
"""

from __future__ import annotations

from pathlib import Path

from simlib.pipeline import Embedder


def load_embedders(home: Path) -> list[Embedder]:
    """The embedders of this simlib, loaded once per process."""
    return []
