"""The model weights simlib ships (this folder), the versioned table of them, and the one
place that finds, reads and writes weight files.

Weights trained on a user's library (`simlib train NAME`) are saved as
`$SIMLIB_HOME/models/<name>.pt` and take the place of the shipped file for that home.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simlib.files import replace_atomically

SHIPPED_DIR = Path(__file__).parent
LOCAL_DIR_NAME = "models"


@dataclass(frozen=True)
class WeightsFile:
    """One shipped model: its file in this folder and the layout version of that file."""

    name: str
    file: str
    layout: int
    """Version of the dict stored in the file; a loader refuses a layout it does not know."""


FINGERPRINT = WeightsFile("fingerprint", "fingerprint.pt", layout=1)
"""{"layout", "config", "settings", "state_dict"}: one encoder with its search settings."""
SIMILARITY = WeightsFile("similarity", "similarity.pt", layout=1)
"""{"layout", "members": [{"config", "state_dict"}, ...], "n_crops", "crop_frames"}."""
TABLE = {w.name: w for w in (FINGERPRINT, SIMILARITY)}


def shipped_path(name: str) -> Path:
    return SHIPPED_DIR / TABLE[name].file


def local_path(home: Path, name: str) -> Path:
    """Where `simlib train NAME` saves weights for this home."""
    return home / LOCAL_DIR_NAME / TABLE[name].file


def path_in_use(home: Path, name: str) -> Path:
    """Locally trained weights if there are any, else the shipped ones."""
    local = local_path(home, name)
    return local if local.is_file() else shipped_path(name)


def read(path: Path, name: str) -> dict:
    """The dict stored in weights file `path` of model `name` (a file without a layout is
    the first layout)."""
    import torch  # only processes that run a model import it

    blob = torch.load(path, map_location="cpu", weights_only=True)
    layout = blob.get("layout", 1)
    if layout != TABLE[name].layout:
        raise ValueError(f"{path}: weights layout {layout}, this simlib reads {TABLE[name].layout}")
    return blob


def write(path: Path, name: str, blob: dict) -> None:
    """Save `blob` as weights of model `name` at `path`, atomically."""
    import torch

    payload = {**blob, "layout": TABLE[name].layout}
    replace_atomically(Path(path), lambda temporary: torch.save(payload, temporary))
