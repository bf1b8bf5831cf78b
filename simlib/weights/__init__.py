"""The model weights simlib ships (this folder), the versioned table of them, and the one
place that finds and loads weight files.

Each model ships twice: an ONNX file the runtime loads with ONNX Runtime (no PyTorch
needed), with its settings and vector version in the file's metadata, and the PyTorch
checkpoint it was exported from, which training starts from (`pip install
'simlib[train]'`). Weights trained on a user's library (`simlib train NAME`) are saved
under `$SIMLIB_HOME/models/` and take the place of the shipped files for that home.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from simlib.files import replace_atomically

SHIPPED_DIR = Path(__file__).parent
LOCAL_DIR_NAME = "models"
METADATA_KEY = "simlib"
"""The ONNX metadata entry holding {"name", "layout", "version", "settings"} as JSON."""

Kind = Literal["runtime", "training"]


@dataclass(frozen=True)
class WeightsFile:
    """One model: its runtime and training files, and the layout version of both."""

    name: str
    runtime: str
    training: str
    layout: int
    """Version of what the files hold; a loader refuses a layout it does not know."""

    def file(self, kind: Kind) -> str:
        return self.runtime if kind == "runtime" else self.training


FINGERPRINT = WeightsFile("fingerprint", "fingerprint.onnx", "fingerprint.pt", layout=1)
"""ONNX: mel patches (batch, frames, mels) -> unit vectors (batch, dim); settings: segment
and hop lengths, the identification policy's calibrations. Checkpoint:
{"layout", "config", "settings", "state_dict"}."""
SIMILARITY = WeightsFile("similarity", "similarity.onnx", "similarity.pt", layout=1)
"""ONNX: crops (tracks, crops, frames, mels) -> track vectors (tracks, dim); settings: crop
count and length. Checkpoint: {"layout", "members": [{"config", "state_dict"}], "n_crops",
"crop_frames"}."""
FINGERPRINT_PHONE = WeightsFile(
    "fingerprint_phone", "fingerprint_phone.onnx", "fingerprint_phone.pt", layout=1
)
"""A second fingerprint network, of FINGERPRINT's layout, for the library's telephone-band
view: used by the fingerprint weights in the same folder (`beside`); weights without it
use their one network for both views."""
TABLE = {w.name: w for w in (FINGERPRINT, SIMILARITY, FINGERPRINT_PHONE)}


def shipped_path(name: str, kind: Kind = "runtime") -> Path:
    return SHIPPED_DIR / TABLE[name].file(kind)


def beside(path: Path, name: str, kind: Kind = "runtime") -> Path:
    """Where model `name`'s file would be in the folder of the weights file `path`."""
    return Path(path).parent / TABLE[name].file(kind)


def local_path(home: Path, name: str, kind: Kind = "runtime") -> Path:
    """Where `simlib train NAME` saves weights for this home."""
    return home / LOCAL_DIR_NAME / TABLE[name].file(kind)


def path_in_use(home: Path, name: str, kind: Kind = "runtime") -> Path:
    """Locally trained weights if there are any, else the shipped ones."""
    local = local_path(home, name, kind)
    return local if local.is_file() else shipped_path(name, kind)


@dataclass(frozen=True)
class Runtime:
    """A loaded ONNX model and what its metadata says."""

    session: object
    """An `onnxruntime.InferenceSession` on the CPU, one thread."""
    settings: dict
    version: str
    """Short hash of what the model's output depends on: outputs compare only within one."""


def load(path: Path, name: str) -> Runtime:
    """The ONNX model of `name` at `path`, on one CPU thread: a scan's worker processes are
    the parallelism, and a query's few segments are no faster on more."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False  # an arena keeps a long track's peak for good
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "{}"))
    if meta.get("name") != name or meta.get("layout") != TABLE[name].layout:
        raise ValueError(f"{path}: not {name} weights of layout {TABLE[name].layout}")
    return Runtime(session, meta["settings"], meta["version"])


def metadata(name: str, version: str, settings: dict) -> str:
    """The metadata entry an exporter writes into the ONNX file of `name`."""
    meta = {"name": name, "layout": TABLE[name].layout, "version": version}
    return json.dumps({**meta, "settings": settings}, sort_keys=True)


def read(path: Path, name: str) -> dict:
    """The dict stored in the training checkpoint `path` of model `name` (needs PyTorch; a
    file without a layout is the first layout)."""
    import torch

    blob = torch.load(path, map_location="cpu", weights_only=True)
    layout = blob.get("layout", 1)
    if layout != TABLE[name].layout:
        raise ValueError(f"{path}: weights layout {layout}, this simlib reads {TABLE[name].layout}")
    return blob


def write(path: Path, name: str, blob: dict) -> None:
    """Save `blob` as the training checkpoint of model `name` at `path`, atomically."""
    import torch

    payload = {**blob, "layout": TABLE[name].layout}
    replace_atomically(Path(path), lambda temporary: torch.save(payload, temporary))
