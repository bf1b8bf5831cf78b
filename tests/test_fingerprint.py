"""Fingerprint model, segment index and trainer on synthetic audio (no corpus needed)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import music

from simlib import weights
from simlib.audio.features import above_band_db, log_mel, phone_band
from simlib.catalog.segments import PackedSegments
from simlib.identify.encoder import FingerprintEncoder
from simlib.identify.index import FingerprintIndex, build
from simlib.identify.model import FingerprintModel
from simlib.identify.policy import Calibration, Policy, decide
from simlib.identify.source_check import Evidence
from simlib.identify.verify import align
from simlib.identify.vote import Hits, candidates
from simlib.library.embedders import load_fingerprint_model, stages_key
from simlib.train import augment
from simlib.train.export import export
from simlib.train.fingerprint import (
    MODEL_SETTINGS,
    PairSampler,
    save_weights,
    train_fingerprint,
    update_settings,
)
from simlib.types import Segments

SR = 16_000
SETTINGS = {**MODEL_SETTINGS, "calibration": [10.0, 0.27], "source_calibration": [5, 0.3, -3.5]}


def saved(encoder: FingerprintEncoder, path: Path) -> FingerprintModel:
    """`encoder` saved as a checkpoint at `path`, exported, and loaded as the runtime does."""
    save_weights(encoder, path, SETTINGS)
    return FingerprintModel.load(export("fingerprint", path))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> FingerprintModel:
    torch.manual_seed(0)
    return saved(FingerprintEncoder(dim=32, width=8).eval(), tmp_path_factory.mktemp("w") / "fp.pt")


def test_load_reports_settings(model: FingerprintModel) -> None:
    assert model.dim == 32 and model.db_hop_s == 0.5 and model.settings["segment_s"] == 1.0
    assert len(model.version) == 12


def test_the_telephone_band_view_has_the_network_beside_the_weights(tmp_path) -> None:
    """The shipped weights embed the telephone-band view, a track's and a clip's, with
    their second network; weights alone in their folder (as `simlib train` saves them) use
    their one network for both views."""
    shipped = FingerprintModel.load()
    alone = tmp_path / weights.FINGERPRINT.runtime
    alone.write_bytes(weights.shipped_path(weights.FINGERPRINT.name).read_bytes())
    single = FingerprintModel.load(alone)
    name = weights.FINGERPRINT_PHONE.name
    phone = FingerprintModel(weights.load(weights.shipped_path(name), name))
    mel = log_mel(music(3.0))
    stored = shipped.embed_phone_band(mel, 0.5)
    np.testing.assert_array_equal(stored.vectors, phone.embed(phone_band(mel), 0.5).vectors)
    assert np.abs(stored.vectors - single.embed_phone_band(mel, 0.5).vectors).max() > 0.1
    clip = shipped.embed(mel, 0.2)
    np.testing.assert_array_equal(clip.vectors, single.embed(mel, 0.2).vectors)
    searched = shipped.embed_for_phone_view(mel, 0.2, clip)
    np.testing.assert_array_equal(searched.vectors, phone.embed(mel, 0.2).vectors)
    assert single.embed_for_phone_view(mel, 0.2, clip) is clip
    assert shipped.version == single.version and shipped.phone_version != single.phone_version
    assert shipped.with_settings(min_confidence=0.4).phone is shipped.phone


def test_a_network_put_beside_a_homes_weights_is_loaded(tmp_path) -> None:
    """A process keeps a home's model loaded, until a file it reads changes: a telephone
    band's network copied beside locally trained weights is used from then on, and the
    analysis stages' key (which spares loading models) changes with it."""
    local = weights.local_path(tmp_path, weights.FINGERPRINT.name)
    local.parent.mkdir()
    shutil.copy(weights.shipped_path(weights.FINGERPRINT.name), local)
    alone = load_fingerprint_model(tmp_path)
    assert alone.one_network and load_fingerprint_model(tmp_path) is alone
    key = stages_key(tmp_path)
    name = weights.FINGERPRINT_PHONE.name
    shutil.copy(weights.shipped_path(name), weights.beside(local, name))
    now = load_fingerprint_model(tmp_path)
    assert not now.one_network and now.phone_version != alone.phone_version
    assert stages_key(tmp_path) != key


def test_a_telephone_band_network_of_other_segments_is_refused() -> None:
    runtime = FingerprintModel.load().runtime
    other = replace(runtime, settings={**runtime.settings, "db_hop_s": 0.25})
    with pytest.raises(ValueError, match="telephone band"):
        FingerprintModel(runtime, other)


def test_update_settings_keeps_the_weights(tmp_path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "fp.pt"
    model = saved(FingerprintEncoder(dim=32, width=8).eval(), path)
    update_settings(path, calibration=[9.5, 0.3], source_calibration=[4.0, 0.5, -3.0])
    updated = FingerprintModel.load(path.with_suffix(".onnx"))
    policy = Policy.from_settings(updated.settings)
    assert policy.calibration == Calibration((9.5, 0.3), (4.0, 0.5, -3.0))
    assert updated.db_hop_s == 0.5
    assert updated.version == model.version  # a library need not be analysed again
    update_settings(path, db_hop_s=0.25)
    assert FingerprintModel.load(path.with_suffix(".onnx")).version != model.version
    audio = log_mel(music(2.0))
    same = updated.embed(audio, 0.5).vectors, model.embed(audio, 0.5).vectors
    np.testing.assert_array_equal(*same)


def test_embed_shapes_and_norms(model: FingerprintModel) -> None:
    segments = model.embed(log_mel(music(5.0)), hop_s=0.5)
    assert segments.vectors.shape == (9, 32) and segments.vectors.dtype == np.float32
    np.testing.assert_allclose(segments.start_s, np.arange(9) * 0.5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(segments.vectors, axis=1), 1.0, atol=1e-5)


def test_silence_and_short_input(model: FingerprintModel) -> None:
    silent = model.embed(log_mel(np.zeros(3 * SR, np.float32)), hop_s=0.5)
    assert len(silent) == 0 and silent.vectors.shape == (0, 32)
    quiet = model.embed(log_mel(music(3.0) * 1e-3), hop_s=0.5)
    assert np.isfinite(quiet.vectors).all()
    assert len(model.embed(log_mel(music(0.7)), hop_s=0.1)) == 1
    assert len(model.embed(log_mel(music(0.3)), hop_s=0.1)) == 0


def random_segments(n: int, dim: int, rng: np.random.Generator) -> Segments:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Segments(np.arange(n, dtype=np.float32) * 0.5, vectors)


def test_index_roundtrip_and_vote(tmp_path) -> None:
    rng = np.random.default_rng(0)
    tracks = {t: random_segments(60, 64, rng) for t in (10, 11, 12)}
    stats = build(tmp_path / "idx", tracks.items(), 64)
    assert stats.items == 180 and stats.tracks == 3 and stats.bytes > 0
    index = FingerprintIndex.open(tmp_path / "idx")
    query = Segments(tracks[11].start_s[20:30] - 10.0, tracks[11].vectors[20:30])
    hits = Hits.of(index.search(query.vectors, k=3, probes=1_000), query)
    assert hits.n_query == 10 and len(hits) == 30
    best = hits.similarity.reshape(10, 3).max(axis=1)
    np.testing.assert_allclose(best, 1.0, atol=1e-3)  # int8 vectors, as the catalog keeps them
    found = align(candidates(hits, 0.5), query, tracks.get, 0.5)
    policy = Policy.from_settings(SETTINGS)
    match = decide(tuple(Evidence(a, a.offset_s) for a in found), policy).matches[0]
    assert match.track_id == 11 and abs(match.offset_s - 10.0) < 0.05


def test_rebuild_swaps_atomically(tmp_path) -> None:
    rng = np.random.default_rng(1)
    first = build(tmp_path, [(1, random_segments(10, 16, rng))], 16)
    reader = FingerprintIndex.open(tmp_path)
    second = build(tmp_path, [(2, random_segments(10, 16, rng))], 16)
    third = build(tmp_path, [(3, random_segments(10, 16, rng))], 16)
    assert reader.build_id == first.build_id and set(reader.track_id) == {1}
    latest = FingerprintIndex.open(tmp_path)
    assert latest.build_id == third.build_id and set(latest.track_id) == {3}
    names = {p.name for p in tmp_path.iterdir() if p.is_dir()}
    assert names == {second.build_id, third.build_id}


def test_an_index_of_another_format_is_not_opened(tmp_path) -> None:
    (tmp_path / "CURRENT").write_text("20260101000000-0123abcd\n")
    (tmp_path / "20260101000000-0123abcd.ann").write_bytes(b"an earlier simlib's index")
    with pytest.raises(FileNotFoundError):
        FingerprintIndex.open(tmp_path)
    build(tmp_path, [(1, random_segments(10, 16, np.random.default_rng(3)))], 16)
    assert len(FingerprintIndex.open(tmp_path)) == 10
    assert not (tmp_path / "20260101000000-0123abcd.ann").exists()


def test_scanning_every_list_finds_the_exact_nearest(tmp_path) -> None:
    rng = np.random.default_rng(4)
    tracks = [(t, random_segments(300, 16, rng)) for t in range(4)]
    build(tmp_path, tracks, 16)
    index = FingerprintIndex.open(tmp_path)
    assert len(index.centroids) == round(1200**0.5)
    queries = random_segments(8, 16, rng).vectors
    found = index.search(queries, k=7, probes=len(index.centroids))
    stored = [PackedSegments.pack(s, 0.5).unpack() for _, s in tracks]  # as the catalog keeps
    every = np.concatenate([s.vectors for s in stored])
    exact = np.sort(queries @ every.T, axis=1)[:, ::-1][:, :7]
    got = np.stack([np.sort(found.score[found.query == q])[::-1] for q in range(8)])
    np.testing.assert_allclose(got, exact, atol=1e-3)
    scanned = index.search(queries, k=7, probes=2)
    assert len(scanned) == 8 * 7 and (scanned.score <= got.max(axis=1)[scanned.query] + 1e-6).all()
    for q in range(8):  # lists probed by several queries are scored for each of them
        alone = index.search(queries[q : q + 1], k=7, probes=2)
        mine = scanned.query == q
        pairs = zip(scanned.track_id[mine], scanned.at_s[mine], strict=True)
        assert set(zip(alone.track_id, alone.at_s, strict=True)) == set(pairs)
        np.testing.assert_allclose(np.sort(alone.score), np.sort(scanned.score[mine]), atol=1e-6)


def test_the_same_segments_build_the_same_index(tmp_path) -> None:
    rng = np.random.default_rng(2)
    tracks = [(t, random_segments(50, 16, rng)) for t in range(4)]
    first = build(tmp_path / "a", tracks, 16)
    second = build(tmp_path / "b", tracks, 16)
    for name in ("centroids", "offsets", "vectors", "track_id", "start_s"):
        files = [
            tmp_path / d / s.build_id / f"{name}.npy" for d, s in (("a", first), ("b", second))
        ]
        assert files[0].read_bytes() == files[1].read_bytes()


def test_empty_index(tmp_path, model: FingerprintModel) -> None:
    stats = build(tmp_path, [], 32)
    index = FingerprintIndex.open(tmp_path)
    assert stats.items == 0 and len(index) == 0
    query = model.embed(log_mel(music(3.0)), hop_s=0.5)
    hits = Hits.of(index.search(query.vectors, k=5, probes=1_000), query)
    assert len(hits) == 0 and candidates(hits, 0.5) == ()
    with pytest.raises(FileNotFoundError):
        FingerprintIndex.open(tmp_path / "missing")


@pytest.fixture
def noise_dir(tmp_path, monkeypatch) -> Path:
    """A folder of one speech and one ambient clip, and a one-tap room: a training bank
    that builds in no time."""
    monkeypatch.setattr(augment, "RIR_CACHE", tmp_path / "rirs.npy")
    monkeypatch.setattr(
        augment, "room_impulse_responses", lambda **_: np.eye(1, 400, dtype=np.float32)
    )
    for kind in ("speech", "ambient"):
        (tmp_path / "noise" / kind).mkdir(parents=True)
        sf.write(tmp_path / "noise" / kind / "a.wav", music(2.0, seed=9) * 0.5, SR)
    return tmp_path / "noise"


def test_training_smoke_lowers_loss(tmp_path, noise_dir) -> None:
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"t{i}.wav")
        sf.write(paths[-1], music(20.0, seed=i), SR)
    out = tmp_path / "fp.pt"
    settings = {"batch_size": 16, "dim": 16, "width": 4, "pca_dim": 8, "val_pairs": 32}
    settings["pca_segments"] = 64
    summary = train_fingerprint(paths, noise_dir, out, steps=40, **settings)
    assert summary["steps"] == 40 and summary["last_loss"] < summary["first_loss"]
    assert FingerprintModel.load(out.with_suffix(".onnx")).dim == 8
    assert weights.read(out.with_suffix(".full.pt"), "fingerprint")["config"]["dim"] == 16
    resumed = train_fingerprint(paths, noise_dir, out, steps=40, **settings)
    assert resumed["steps"] == 40 and FingerprintModel.load(out.with_suffix(".onnx")).dim == 8


def test_phone_pairs_pair_a_phone_clip_with_the_librarys_telephone_band(noise_dir) -> None:
    hiss = np.random.default_rng(1).standard_normal(30 * SR) * 0.05  # power above 4 kHz
    audio = (music(30.0, seed=3) * 0.5 + hiss).astype(np.float16)
    bounds = np.array([[0, audio.size]])
    noise = augment.NoiseBank.load(noise_dir, "train")
    rng = np.random.default_rng(0)
    wide_clean, _ = PairSampler(audio, bounds, noise).batch(4, rng)
    clean, view = PairSampler(audio, bounds, noise, phone_chance=1.0).batch(4, rng)
    assert all(above_band_db(m.numpy()) > -15 for m in wide_clean)
    # both sides narrow: the clean side as the library's phone view stores it
    assert all(above_band_db(m.numpy()) < -15 for m in clean)
    assert all(above_band_db(m.numpy()) < -15 for m in view)
