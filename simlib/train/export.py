"""Export trained PyTorch checkpoints to the ONNX files the runtime loads, with their
settings and version in the ONNX metadata (`simlib.weights`).

    python -m simlib.train.export fingerprint simlib/weights/fingerprint.pt
    python -m simlib.train.export fingerprint_phone simlib/weights/fingerprint_phone.pt
    python -m simlib.train.export similarity simlib/weights/similarity.pt \
        [--crops 32] [--timbre-share 0.4] [--scatter-ridge 0.1]

A similarity checkpoint's runtime settings (crops per track, timbre share, the album
scatter's ridge) train nothing; the options write them into the checkpoint before it is
exported. `--crops` and `--timbre-share` drop its album scatter, measured with the old
ones (`python -m simlib.train.similarity --init-weights CKPT --epochs 0` refits it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import onnx
import torch

from simlib import weights
from simlib.audio.features import N_MELS
from simlib.files import replace_atomically
from simlib.identify.encoder import FingerprintEncoder
from simlib.similar.encoder import EncoderConfig, Ensemble, SimilarityEncoder
from simlib.similar.model import N_CROPS

OPSET = 17
VECTOR_SETTINGS = ("segment_s", "db_hop_s")
"""The fingerprint settings stored vectors depend on, with the weights: a change means
re-analysis; the other settings (query hop, calibrations) can change without."""


def fingerprint_version(config: dict, settings: dict, encoder: FingerprintEncoder) -> str:
    """12 hex digits over the architecture, the weights and VECTOR_SETTINGS."""
    digest = hashlib.blake2b(digest_size=6)
    vector_settings = [settings[k] for k in VECTOR_SETTINGS]
    digest.update(json.dumps([config, vector_settings], sort_keys=True).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_fingerprint(checkpoint: Path) -> tuple[FingerprintEncoder, dict]:
    """The encoder of a fingerprint checkpoint, and the settings stored with it."""
    blob = weights.read(checkpoint, "fingerprint")
    encoder = FingerprintEncoder(**blob["config"])
    encoder.load_state_dict(blob["state_dict"])
    return encoder.eval(), dict(blob["settings"])


@dataclass(frozen=True)
class RuntimeSettings:
    """What a similarity checkpoint tells the runtime beyond its encoders (nothing in them
    trains)."""

    n_crops: int = N_CROPS
    """Crops per track embedding."""
    timbre_share: float = 0.0
    """Share of a score given to timbre statistics standardised on the library."""
    album_scatter: str = ""
    """The tracks' scatter around their album's mean in the space the two settings above
    rank in (`simlib.similar.index.pack_scatter`), fitted on tags; "" for none."""
    scatter_ridge: float = 0.1
    """Added to the album scatter, times its mean variance, before the index whitens by
    it: no direction is stretched more than a few times (chosen on VAL among 0.03-3,
    SIMILARITY_MODEL_CARD.md)."""
    neighbour_expansion: int = 3
    """Nearest library tracks each indexed track and each query are expanded by
    (`simlib.similar.index`): 3 ranked VAL's albums best among 2-5, indexed tracks alone
    and both (SIMILARITY_MODEL_CARD.md)."""

    @classmethod
    def of(cls, blob: dict) -> RuntimeSettings:
        """The settings a checkpoint (or `load_ensemble`'s settings) holds; a checkpoint
        from before a setting gets its default (no timbre part, no scatter)."""
        found = {f.name: blob[f.name] for f in fields(cls) if f.name in blob}
        return cls(**{**found, "n_crops": int(blob["n_crops"])})

    def ranking(self, parts: list) -> dict:
        """A model's ranking settings (`simlib.similar.index.Ranking.from_settings`)."""
        return {
            "parts": parts,
            "album_scatter": self.album_scatter,
            "scatter_ridge": self.scatter_ridge,
            "neighbour_expansion": self.neighbour_expansion,
        }


def load_ensemble(checkpoint: Path) -> tuple[list[SimilarityEncoder], dict]:
    """The encoders of a similarity checkpoint, and its settings (crop length and the
    `RuntimeSettings`)."""
    blob = weights.read(checkpoint, "similarity")
    members = []
    for member in blob["members"]:
        module = SimilarityEncoder(EncoderConfig.from_dict(member["config"]))
        module.load_state_dict(member["state_dict"])
        members.append(module.eval())
    return members, {**asdict(RuntimeSettings.of(blob)), "crop_frames": int(blob["crop_frames"])}


def set_similarity_runtime(checkpoint: Path, **settings: float | str) -> None:
    """Write `RuntimeSettings` fields into a similarity checkpoint (an unknown name is a
    TypeError). A new crop count or timbre share changes the space the album scatter was
    measured in: it is dropped unless given too."""
    blob = weights.read(checkpoint, weights.SIMILARITY.name)
    runtime = RuntimeSettings.of(blob)
    if {"n_crops", "timbre_share"} & settings.keys():
        runtime = replace(runtime, album_scatter="")
    runtime = replace(runtime, **settings)
    weights.write(checkpoint, weights.SIMILARITY.name, {**blob, **asdict(runtime)})


def export(name: str, checkpoint: Path, out: Path | None = None) -> Path:
    """Write the ONNX file of checkpoint `checkpoint` of model `name` (default: beside it,
    with the suffix .onnx), atomically; returns its path."""
    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else checkpoint.with_suffix(".onnx")
    if name in (weights.FINGERPRINT.name, weights.FINGERPRINT_PHONE.name):
        encoder, settings = load_fingerprint(checkpoint)
        version = fingerprint_version(encoder.config, settings, encoder)
        settings = {**settings, "frames": encoder.config["frames"], "dim": encoder.config["dim"]}
        module, example = encoder, torch.zeros(1, encoder.config["frames"], N_MELS)
        names = {"mel": {0: "segments"}, "vectors": {0: "segments"}}
    else:
        members, stored = load_ensemble(checkpoint)
        version = hashlib.blake2b(checkpoint.read_bytes(), digest_size=6).hexdigest()
        runtime = RuntimeSettings.of(stored)
        module = Ensemble(members, runtime.timbre_share).eval()
        settings = {
            "n_crops": runtime.n_crops,
            "crop_frames": stored["crop_frames"],
            "dim": module.dim,
            "ranking": runtime.ranking(module.ranking),
        }
        shape = (1, settings["n_crops"], settings["crop_frames"], members[0].config.n_mels)
        example = torch.zeros(shape)
        names = {"crops": {0: "tracks"}, "vectors": {0: "tracks"}}
    model = _to_onnx(module, example, names)
    entry = model.metadata_props.add()
    entry.key, entry.value = weights.METADATA_KEY, weights.metadata(name, version, settings)
    replace_atomically(out, lambda temporary: onnx.save(model, str(temporary)))
    return out


def _to_onnx(module: torch.nn.Module, example: torch.Tensor, axes: dict) -> onnx.ModelProto:
    """`module` traced on `example` (first input and output named by `axes`, with their
    dynamic axes)."""
    buffer = io.BytesIO()
    (input_name, output_name) = axes
    with torch.inference_mode(), warnings.catch_warnings():
        # the TorchScript exporter is deprecated, but needs nothing beyond torch and onnx
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return onnx.load_from_string(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(weights.TABLE))
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: beside the checkpoint")
    parser.add_argument("--crops", type=int, help="similarity: crops per track, written first")
    parser.add_argument("--timbre-share", type=float, help="similarity: written first")
    parser.add_argument("--scatter-ridge", type=float, help="similarity: written first")
    parser.add_argument("--neighbour-expansion", type=int, help="similarity: written first")
    args = parser.parse_args()
    runtime = {
        "n_crops": args.crops,
        "timbre_share": args.timbre_share,
        "scatter_ridge": args.scatter_ridge,
        "neighbour_expansion": args.neighbour_expansion,
    }
    runtime = {k: v for k, v in runtime.items() if v is not None}
    if runtime and args.name != weights.SIMILARITY.name:
        parser.error(
            "--crops, --timbre-share, --scatter-ridge and --neighbour-expansion are "
            "similarity settings"
        )
    if runtime:
        set_similarity_runtime(args.checkpoint, **runtime)
    print(export(args.name, args.checkpoint, args.out))


if __name__ == "__main__":
    main()
