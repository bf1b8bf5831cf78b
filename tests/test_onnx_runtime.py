"""The runtime's ONNX models against the PyTorch checkpoints they were exported from, on
real decoded audio: the same vectors, and the same identify and similar answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from simlib import audio, weights
from simlib.audio.features import log_mel
from simlib.identify.index import FingerprintIndex, build
from simlib.identify.model import FingerprintModel
from simlib.identify.policy import Policy
from simlib.identify.query import ClipMatcher, StoredView
from simlib.similar.index import ranked_scores
from simlib.similar.model import SimilarityModel

torch = pytest.importorskip("torch")
export = pytest.importorskip("simlib.train.export")


class TorchSession:
    """Runs a PyTorch module where the runtime runs its ONNX session."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module.eval()

    def run(self, _outputs: object, feeds: dict) -> list[np.ndarray]:
        [array] = feeds.values()
        with torch.inference_mode():
            return [self.module(torch.from_numpy(array)).numpy()]


@pytest.fixture(scope="module")
def fingerprint_pair() -> tuple[FingerprintModel, FingerprintModel]:
    """The shipped fingerprint model on ONNX Runtime, and the same model on PyTorch."""
    onnx_model = FingerprintModel.load()
    encoder, _ = export.load_fingerprint(weights.shipped_path("fingerprint", "training"))
    torch_model = FingerprintModel(replace(onnx_model.runtime, session=TorchSession(encoder)))
    return onnx_model, torch_model


@pytest.fixture(scope="module")
def tracks(example_lib) -> list[Path]:
    return sorted(p for p in example_lib.rglob("*.*") if p.is_file())


@pytest.mark.parametrize("name", [weights.FINGERPRINT.name, weights.FINGERPRINT_PHONE.name])
def test_fingerprint_vectors_agree(name, tracks) -> None:
    """Both networks: the model's and its telephone-band view's."""
    runtime = weights.load(weights.shipped_path(name), name)
    encoder, _ = export.load_fingerprint(weights.shipped_path(name, "training"))
    onnx_model = FingerprintModel(runtime)
    torch_model = FingerprintModel(replace(runtime, session=TorchSession(encoder)))
    for path in tracks[::3]:
        mel = log_mel(audio.decode(path))
        ours, theirs = onnx_model.embed(mel, 0.5), torch_model.embed(mel, 0.5)
        np.testing.assert_array_equal(ours.start_s, theirs.start_s)
        assert (ours.vectors * theirs.vectors).sum(axis=1).min() >= 0.9999, path.name


def test_similarity_vectors_and_rankings_agree(tracks) -> None:
    onnx_model = SimilarityModel.load()
    members, settings = export.load_ensemble(weights.shipped_path("similarity", "training"))
    runtime = weights.load(weights.shipped_path("similarity"), "similarity")
    ensemble = export.Ensemble(members, settings["timbre_share"])
    torch_model = SimilarityModel(replace(runtime, session=TorchSession(ensemble)))
    mels = [log_mel(audio.decode(p)) for p in tracks[::2]]
    ours, theirs = onnx_model.embed_many(mels), torch_model.embed_many(mels)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    scores = [ranked_scores(v, onnx_model.ranking) for v in (ours, theirs)]
    ranked = [np.argsort(-s, axis=1, kind="stable")[:, :6] for s in scores]
    np.testing.assert_array_equal(*ranked)


def test_identify_answers_agree(fingerprint_pair, tracks, tmp_path) -> None:
    answers = []
    for k, model in enumerate(fingerprint_pair):
        segments = [model.embed(log_mel(audio.decode(p)), model.db_hop_s) for p in tracks]
        build(tmp_path / str(k), enumerate(segments), model.dim)
        matcher = ClipMatcher(
            model,
            StoredView(FingerprintIndex.open(tmp_path / str(k)), segments.__getitem__),
            tracks.__getitem__,
            Policy.from_settings(model.settings),
        )
        found = []
        for i, path in enumerate(tracks[::4]):
            clip = audio.decode(path, 1.0 + i % 3, 4.0)
            noisy = clip + np.random.default_rng(i).normal(0, 0.02, clip.size).astype(np.float32)
            matches = matcher.decide(noisy).matches
            found.append([(m.track_id, round(m.offset_s, 1)) for m in matches])
        answers.append(found)
    assert answers[0] == answers[1]
    assert all(found and found[0][0] == 4 * i for i, found in enumerate(answers[0]))
