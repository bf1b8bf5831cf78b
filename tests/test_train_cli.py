"""`simlib train`: seconds-long fine-tuning runs on a small library, then re-embedding."""

import json

import numpy as np
import soundfile
from typer.testing import CliRunner

from simlib import api
from simlib.cli import app
from simlib.train.export import load_ensemble
from simlib.weights import local_path as local_weights
from simlib.weights import shipped_path

runner = CliRunner()


def test_train_similarity_saves_local_weights_and_reembeds(home, library):
    api.scan([library], workers=1)
    before = api.open_catalog().index_info("similarity")["model_version"]
    result = runner.invoke(app, ["train", "similarity", "--minutes", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["steps"] > 0 and np.isfinite(metrics["train_loss"])
    assert local_weights(home, "similarity", "training").is_file()
    assert local_weights(home, "similarity").is_file()  # the ONNX export the runtime loads
    assert metrics["rescan"]["analysed"] == 24  # the whole library, with the new weights
    after = api.open_catalog().index_info("similarity")["model_version"]
    assert after != before
    [similar] = api.similar([next(library.rglob("*.flac"))], n=3)
    assert len(similar.results) == 3


def test_train_similarity_by_default_only_measures_the_album_scatter_of_your_tags(home, library):
    api.scan([library], workers=1)
    result = runner.invoke(app, ["train", "similarity", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == 0
    shipped = load_ensemble(shipped_path("similarity", "training"))
    tuned = load_ensemble(local_weights(home, "similarity", "training"))
    for before, after in zip(shipped[0], tuned[0], strict=True):
        for a, b in zip(before.state_dict().values(), after.state_dict().values(), strict=True):
            assert np.array_equal(a.numpy(), b.numpy())
    assert tuned[1]["album_scatter"] and tuned[1]["album_scatter"] != shipped[1]["album_scatter"]


def test_train_fingerprint_with_a_noise_folder(home, library, tmp_path):
    noise = tmp_path / "noise"
    rng = np.random.default_rng(0)
    for kind in ("speech", "ambient"):
        (noise / kind).mkdir(parents=True)
        for index in range(3):
            soundfile.write(noise / kind / f"{index}.wav", rng.standard_normal(16000) * 0.1, 16000)
    api.scan([library], workers=1)
    result = runner.invoke(
        app, ["train", "fingerprint", "--minutes", "0.05", "--noise", str(noise), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert local_weights(home, "fingerprint", "training").is_file()
    assert local_weights(home, "fingerprint").is_file()
    assert json.loads(result.stdout)["rescan"]["analysed"] == 24


def test_train_needs_a_library_and_a_known_model(home, library):
    result = runner.invoke(app, ["train", "similarity"])
    assert result.exit_code == 1 and "library is empty" in result.stderr
    api.scan([library], workers=1)
    result = runner.invoke(app, ["train", "tempo"])
    assert result.exit_code == 2 and "unknown model" in result.stderr  # a usage error
    no_time = ["train", "fingerprint", "--minutes", "0", "--noise", str(library)]
    result = runner.invoke(app, no_time)
    assert result.exit_code == 1 and "more than 0 minutes" in result.stderr
