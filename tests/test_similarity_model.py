"""Similarity model: embedding contract, silence/short input, training smoke run and resume."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from simlib import weights
from simlib.audio import ANALYSIS_RATE_HZ
from simlib.audio.features import LOG_FLOOR, N_MELS, log_mel
from simlib.similar.encoder import EncoderConfig, SimilarityEncoder
from simlib.similar.index import ranked_scores
from simlib.similar.model import (
    CROP_FRAMES,
    N_CROPS,
    SimilarityModel,
    crop_starts,
    crops,
)
from simlib.train.export import RuntimeSettings, export, load_ensemble, set_similarity_runtime
from simlib.train.similarity import (
    TrainConfig,
    TrainingUpdate,
    checkpoint_path,
    save_weights,
    train_similarity,
)
from simlib.types import Tags

TINY = EncoderConfig(channels=(4, 8), hidden=16, dim=8)


def saved(encoders: list[SimilarityEncoder], path: Path) -> SimilarityModel:
    """`encoders` saved as a checkpoint at `path`, exported, and loaded as the runtime does."""
    save_weights(encoders, path)
    return SimilarityModel.load(export("similarity", path))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> SimilarityModel:
    torch.manual_seed(0)
    return saved([SimilarityEncoder(TINY)], tmp_path_factory.mktemp("weights") / "similarity.pt")


def _tone(seconds: float, freq_hz: float, seed: int) -> np.ndarray:
    """Harmonic tone plus a little noise, float32 at the analysis rate."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * ANALYSIS_RATE_HZ)) / ANALYSIS_RATE_HZ
    wobble = 1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t)
    tone = sum(np.sin(2 * np.pi * k * freq_hz * wobble * t) / k for k in range(1, 4))
    return (0.2 * tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(ANALYSIS_RATE_HZ)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def test_embed_is_unit_norm_and_deterministic(model: SimilarityModel) -> None:
    mel = log_mel(_tone(12.0, 220.0, 0))
    first = model.embed(mel)
    assert first.shape == (model.dim,) and first.dtype == np.float32
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(first, model.embed(mel))
    many = model.embed_many([mel, log_mel(_tone(8.0, 440.0, 1))])
    np.testing.assert_allclose(many[0], first, atol=1e-5)
    assert model.embed_many([]).shape == (0, model.dim)


@pytest.mark.parametrize("frames", [0, 1, 50, CROP_FRAMES - 1])
def test_silent_and_short_tracks_give_finite_unit_vectors(
    model: SimilarityModel, frames: int
) -> None:
    for mel in (np.full((frames, N_MELS), np.log(LOG_FLOOR), np.float32), log_mel(np.zeros(1000))):
        vector = model.embed(mel[:frames])
        assert np.isfinite(vector).all()
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_version_is_a_short_hash_of_the_file(model: SimilarityModel, tmp_path: Path) -> None:
    assert len(model.version) == 12
    assert saved([SimilarityEncoder(TINY)], tmp_path / "other.pt").version != model.version


def test_an_ensemble_scores_the_mean_of_its_members_cosines(tmp_path: Path) -> None:
    torch.manual_seed(3)
    members = [SimilarityEncoder(TINY), SimilarityEncoder(TINY)]
    pair = saved(members, tmp_path / "pair.pt")
    singles = [saved([e], tmp_path / f"single{k}.pt") for k, e in enumerate(members)]
    mels = [log_mel(_tone(9.0, f, k)) for k, f in enumerate((150.0, 300.0, 700.0))]
    joint = pair.embed_many(mels)
    assert pair.dim == 2 * TINY.dim and joint.shape == (3, 2 * TINY.dim)
    np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, atol=1e-5)
    each = [m.embed_many(mels) for m in singles]
    mean_cosine = np.mean([v @ v.T for v in each], axis=0)
    np.testing.assert_allclose(joint @ joint.T, mean_cosine, atol=1e-5)


def test_weights_of_another_layout_or_model_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    save_weights([SimilarityEncoder(TINY)], path)
    onnx_file = export("similarity", path)
    blob = torch.load(path, weights_only=True)
    torch.save({**blob, "layout": 99}, path)
    with pytest.raises(ValueError, match="layout 99"):
        load_ensemble(path)
    with pytest.raises(ValueError, match="not fingerprint weights"):
        weights.load(onnx_file, "fingerprint")


def test_crops_skip_silence_and_are_spread() -> None:
    loud = np.zeros(6000, dtype=bool)
    loud[1000:5000] = True
    starts = crop_starts(6000, loud, N_CROPS, CROP_FRAMES)
    assert starts.shape == (N_CROPS,) and np.all(np.diff(starts) > 0)
    assert starts.min() >= 1000 - 0.1 * CROP_FRAMES and starts.max() <= 5000 - 0.9 * CROP_FRAMES
    assert crops(np.zeros((10, N_MELS)), 3, 20).shape == (3, 20, N_MELS)


def test_shipped_weights_load_and_are_small() -> None:
    assert weights.shipped_path("similarity").stat().st_size <= 10 * 2**20
    shipped = SimilarityModel.load()
    assert np.isfinite(shipped.embed(log_mel(_tone(5.0, 330.0, 2)))).all()


@pytest.fixture(scope="module")
def tracks(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Tags | None]]:
    """12 tagged tracks on 3 albums of distinct timbre, and one untagged track."""
    root = tmp_path_factory.mktemp("audio")
    out: list[tuple[Path, Tags | None]] = []
    for k in range(13):
        album = k % 3
        path = root / f"{k:02d}.wav"
        _write_wav(path, _tone(6.0, (110.0, 440.0, 1500.0)[album] * (1 + 0.03 * k), k))
        out.append((path, Tags(album=f"album {album}", artist=f"a{album}") if k < 12 else None))
    return out


def _train(tracks, out: Path, epochs: int, progress=None, init=None):
    return train_similarity(
        tracks,
        out,
        epochs=epochs,
        seed=1,
        val_fraction=0.2,
        init_weights=init,
        config=TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=1),
        architecture=TINY,
        progress=progress,
    )


def test_training_lowers_the_loss(tracks, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    seen: list[TrainingUpdate] = []
    metrics = _train(tracks, tmp_path / "sim.pt", epochs=6, progress=seen.append)
    assert seen[-1].loss < seen[0].loss
    assert all(p.pairs_per_s > 0 and p.eta_s >= 0 for p in seen)
    assert metrics.n_train + metrics.n_val == 13 and metrics.n_val >= 1
    assert 0.0 <= metrics.val_album_p_at_10 <= 1.0
    assert SimilarityModel.load(tmp_path / "sim.onnx").dim == TINY.dim


def test_an_ensemble_trains_each_member_from_its_own_seed(tracks, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    seen: list[TrainingUpdate] = []
    pair = train_similarity(
        tracks,
        tmp_path / "pair.pt",
        epochs=1,
        seed=1,
        members=2,
        val_fraction=0.2,
        config=TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=1),
        architecture=TINY,
        progress=seen.append,
    )
    assert pair.members == 2 and len(pair.best_epochs) == 2
    assert {(p.member, p.members) for p in seen} == {(0, 2), (1, 2)}
    members, _ = load_ensemble(tmp_path / "pair.pt")
    assert len(members) == 2 and SimilarityModel.load(tmp_path / "pair.onnx").dim == 2 * TINY.dim
    first, second = (e.state_dict()["head.weight"] for e in members)
    assert not torch.equal(first, second)
    alone = train_similarity(
        tracks,
        tmp_path / "alone.pt",
        epochs=1,
        seed=1,
        val_fraction=0.2,
        config=TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=1),
        architecture=TINY,
    )
    assert alone.steps * 2 == pair.steps
    torch.testing.assert_close(
        load_ensemble(tmp_path / "alone.pt")[0][0].state_dict()["head.weight"], first
    )
    tuned = train_similarity(
        tracks, tmp_path / "tuned.pt", epochs=1, val_fraction=0.2, init_weights=tmp_path / "pair.pt"
    )
    assert tuned.members == 2 and len(load_ensemble(tmp_path / "tuned.pt")[0]) == 2


def test_training_resumes_after_interrupt(tracks, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    whole = _train(tracks, tmp_path / "whole.pt", epochs=2)

    def interrupt(p: TrainingUpdate) -> None:
        if p.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tracks, tmp_path / "cut.pt", epochs=2, progress=interrupt)
    assert (tmp_path / "cut.pt.ckpt").exists()
    resumed = _train(tracks, tmp_path / "cut.pt", epochs=2)
    assert resumed.steps == whole.steps and resumed.pairs_seen == whole.pairs_seen
    assert resumed.val_tag_sim_at_10 == pytest.approx(whole.val_tag_sim_at_10, abs=1e-6)


def test_fine_tuning_starts_from_the_given_weights(tracks, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    start = tmp_path / "start.pt"
    first = saved([SimilarityEncoder(EncoderConfig(channels=(4, 8), hidden=16, dim=6))], start)
    _train(tracks, tmp_path / "tuned.pt", epochs=1, init=start)
    tuned = SimilarityModel.load(tmp_path / "tuned.onnx")
    assert tuned.dim == 6 and tuned.version != first.version


def test_validation_tracks_give_no_pairs_and_are_ranked_among_themselves(
    tracks, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    metrics = train_similarity(
        tracks[:9],
        tmp_path / "sim.pt",
        epochs=1,
        seed=1,
        val_tracks=tracks[9:12],
        config=TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=1),
        architecture=TINY,
    )
    assert (metrics.n_train, metrics.n_val) == (9, 3)
    # one validation track per album: among themselves, none has an album-mate
    assert metrics.val_album_p_at_10 == 0.0 and metrics.val_album_p_random == 0.0


def test_anchoring_keeps_fine_tuned_weights_near_the_start(tracks, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    saved([SimilarityEncoder(TINY)], start)
    drift = {}
    for anchor in (0.0, 10.0):
        out = tmp_path / f"tuned{anchor}.pt"
        train_similarity(
            tracks,
            out,
            epochs=2,
            seed=1,
            val_fraction=0.2,
            init_weights=start,
            config=TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=2, anchor=anchor),
        )
        before = load_ensemble(start)[0][0].state_dict()
        last = torch.load(checkpoint_path(out), weights_only=True)["model"]  # trained, not chosen
        drift[anchor] = sum(
            (last[name] - before[name]).square().sum().item()
            for name, _ in SimilarityEncoder(TINY).named_parameters()
        )
    assert 0 < drift[10.0] < drift[0.0]


def test_fine_tuning_keeps_the_starting_weights_unless_held_out_albums_gain(
    tracks, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    saved([SimilarityEncoder(TINY)], start)
    metrics = train_similarity(
        tracks,
        tmp_path / "tuned.pt",
        epochs=2,
        seed=1,
        val_fraction=0.5,
        init_weights=start,
        config=TrainConfig(batch_pairs=16, learning_rate=0.0, weight_decay=0.0, val_every=1),
    )
    # no step moves the weights, so no epoch beats the start on the held-out albums
    assert metrics.best_epochs == [0] and metrics.steps > 0
    before, after = load_ensemble(start)[0][0], load_ensemble(tmp_path / "tuned.pt")[0][0]
    for a, b in zip(after.parameters(), before.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_timbre_statistics_are_a_part_the_index_standardises_with_its_share(
    tracks, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    runtime = RuntimeSettings(n_crops=4, timbre_share=0.25)
    train_similarity(
        tracks,
        tmp_path / "sim.pt",
        epochs=1,
        seed=1,
        val_fraction=0.2,
        config=TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=1),
        architecture=TINY,
        runtime=runtime,
    )
    model = SimilarityModel.load(tmp_path / "sim.onnx")
    assert (model.n_crops, model.dim) == (4, TINY.dim + 2 * N_MELS)
    parts = [[TINY.dim, 0.75, False], [2 * N_MELS, 0.25, True]]
    assert model.ranking["parts"] == parts and model.ranking["album_scatter"]
    mels = [log_mel(_tone(6.0 + k, f, k)) for k, f in enumerate((200.0, 900.0, 300.0, 2000.0))]
    vectors = model.embed_many(mels)
    bands = np.stack([crops(m, 4).transpose(0, 2, 1) for m in mels])  # (tracks, crops, mels, t)
    stats = np.concatenate([bands.mean(-1), np.sqrt(bands.var(-1) + 1e-5)], -1).mean(1)
    np.testing.assert_allclose(vectors[:, TINY.dim :], stats, rtol=1e-4, atol=1e-4)

    def cosines(v: np.ndarray) -> np.ndarray:
        unit = v / np.linalg.norm(v, axis=1, keepdims=True)
        return unit @ unit.T

    embedding, timbre = vectors[:, : TINY.dim], vectors[:, TINY.dim :]
    expected = 0.75 * cosines(embedding - embedding.mean(0)) + 0.25 * cosines(
        (timbre - timbre.mean(0)) / timbre.std(0)
    )
    unwhitened = {"parts": parts, "album_scatter": ""}
    np.testing.assert_allclose(ranked_scores(vectors, unwhitened), expected, atol=1e-5)
    tuned = train_similarity(
        tracks, tmp_path / "tuned.pt", epochs=1, val_fraction=0.2, init_weights=tmp_path / "sim.pt"
    )
    assert tuned.members == 1 and load_ensemble(tmp_path / "tuned.pt")[1]["timbre_share"] == 0.25
    assert SimilarityModel.load(tmp_path / "tuned.onnx").ranking["parts"] == parts
    set_similarity_runtime(tmp_path / "tuned.pt", n_crops=8, timbre_share=0.0)
    plain = SimilarityModel.load(export("similarity", tmp_path / "tuned.pt"))
    assert (plain.n_crops, plain.dim) == (8, TINY.dim)
    assert plain.ranking["parts"] == [[TINY.dim, 1.0, False]]
    assert plain.ranking["album_scatter"] == ""  # measured with the old settings: dropped


def _hand_ranked(vectors: np.ndarray) -> np.ndarray:
    """An embedding part centred and a statistics part standardised on the library, each
    unit length, times the square roots of 0.75 and 0.25: the space of the test below."""
    embedding, timbre = vectors[:, : TINY.dim], vectors[:, TINY.dim :]
    parts = [embedding - embedding.mean(0), (timbre - timbre.mean(0)) / timbre.std(0)]
    units = [part / np.linalg.norm(part, axis=1, keepdims=True) for part in parts]
    return np.concatenate([np.sqrt(0.75) * units[0], np.sqrt(0.25) * units[1]], axis=1)


def _hand_scatter(ranked: np.ndarray, albums: list[str | None]) -> np.ndarray:
    deviations = [
        ranked[i] - ranked[[j for j, b in enumerate(albums) if b == a]].mean(0)
        for i, a in enumerate(albums)
        if a and albums.count(a) > 1
    ]
    return sum(np.outer(d, d) for d in deviations) / len(deviations)


def test_training_measures_the_album_scatter_and_fine_tuning_blends_in_the_library_own(
    tracks, tmp_path: Path
) -> None:
    from simlib.similar.index import unpack_scatter
    from simlib.train.similarity import OWN_SCATTER_SHARE, track_data

    torch.set_num_threads(1)
    config = TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=1)
    runtime = RuntimeSettings(n_crops=4, timbre_share=0.25)
    train_similarity(
        tracks, tmp_path / "sim.pt", epochs=1, seed=1, val_fraction=0.2, config=config,
        architecture=TINY, runtime=runtime,
    )  # fmt: skip
    model = SimilarityModel.load(tmp_path / "sim.onnx")
    crops_of = np.stack([track_data(p, n_crops=4).eval_crops for p, _ in tracks])
    vectors = model.session.run(None, {"crops": crops_of.astype(np.float32)})[0]
    albums = [t.album.lower() if t else None for _, t in tracks]
    scatter = unpack_scatter(model.ranking["album_scatter"])
    np.testing.assert_allclose(scatter, _hand_scatter(_hand_ranked(vectors), albums), atol=1e-5)
    # a library with one album's tags only; no epoch, so the weights stay as they were
    own_tags = [(p, t if t and t.album == "album 1" else None) for p, t in tracks]
    train_similarity(own_tags, tmp_path / "tuned.pt", epochs=0, init_weights=tmp_path / "sim.pt")
    tuned = SimilarityModel.load(tmp_path / "tuned.onnx")
    own = _hand_scatter(_hand_ranked(vectors), [a if a == "album 1" else None for a in albums])
    expected = (1 - OWN_SCATTER_SHARE) * scatter + OWN_SCATTER_SHARE * own
    np.testing.assert_allclose(unpack_scatter(tuned.ranking["album_scatter"]), expected, atol=1e-5)


def test_whitening_by_the_album_scatter_ranks_album_mates_first() -> None:
    """Albums set apart by small offsets in four dimensions, their tracks spread widely in
    four others: the plain cosine mixes albums, the whitened one does not."""
    from simlib.similar.index import (
        Ranking,
        _whitener,
        album_scatter,
        library_ranked,
        pack_scatter,
        unpack_scatter,
    )

    rng = np.random.default_rng(0)
    albums = [f"album {k // 5}" for k in range(30)]
    offsets = rng.standard_normal((6, 4))
    vectors = np.concatenate(
        [
            np.repeat(offsets, 5, axis=0) + 0.05 * rng.standard_normal((30, 4)),
            1.5 * rng.standard_normal((30, 4)),
        ],
        axis=1,
    ).astype(np.float32)

    def album_precision(scores: np.ndarray) -> float:
        np.fill_diagonal(scores, -np.inf)
        top = np.argsort(-scores, axis=1)[:, :4]
        return float(np.mean([[albums[j] == albums[i] for j in row] for i, row in enumerate(top)]))

    parts = [[8, 1.0, False]]
    scatter = album_scatter(library_ranked(vectors, Ranking.plain(8)), albums)
    packed = pack_scatter(scatter)
    np.testing.assert_array_equal(unpack_scatter(packed), scatter.astype(np.float32))
    whitener = _whitener(packed, 0.1).astype(np.float64)
    ridge = 0.1 * np.trace(scatter) / 8
    np.testing.assert_allclose(
        whitener @ (unpack_scatter(packed) + ridge * np.eye(8)) @ whitener, np.eye(8), atol=1e-4
    )
    plain = album_precision(ranked_scores(vectors, {"parts": parts, "album_scatter": ""}))
    settings = {"parts": parts, "album_scatter": packed, "scatter_ridge": 0.1}
    whitened = album_precision(ranked_scores(vectors, settings))
    assert plain < 0.4 and whitened > 0.9


def test_indexed_tracks_and_queries_are_each_expanded_by_their_nearest(tmp_path) -> None:
    """`expanded` adds each vector's k nearest others weighted by their score (by hand
    here); a query adds its k nearest indexed tracks, as the index holds them, other than
    itself; a real index answers with exactly `ranked_scores`; on seeded albums the
    expansion ranks more album-mates first."""
    from simlib.similar.index import Ranking, TrackIndex, build, expanded, library_ranked

    rng = np.random.default_rng(2)
    albums = [k // 5 for k in range(30)]
    centres = np.repeat(rng.standard_normal((6, 16)), 5, axis=0)
    vectors = (centres + 1.3 * rng.standard_normal((30, 16))).astype(np.float32)
    settings = {"parts": [[16, 1.0, False]], "album_scatter": "", "neighbour_expansion": 3}
    ranked = library_ranked(vectors, Ranking.from_settings(settings, 16))

    def plus_three_nearest(row: np.ndarray, i: int, others: np.ndarray) -> np.ndarray:
        scores = [(float(row @ other), j) for j, other in enumerate(others) if j != i]
        total = row + sum(max(score, 0.0) * others[j] for score, j in sorted(scores)[-3:])
        return total / np.linalg.norm(total)

    indexed = np.array([plus_three_nearest(row, i, ranked) for i, row in enumerate(ranked)])
    np.testing.assert_allclose(expanded(ranked, 3), indexed, atol=1e-5)
    assert expanded(ranked, 0) is ranked
    queries = np.array([plus_three_nearest(row, i, indexed) for i, row in enumerate(ranked)])
    scores = ranked_scores(vectors, settings)
    np.testing.assert_allclose(scores, queries @ indexed.T, atol=1e-5)

    build(tmp_path / "i.npz", np.arange(1, 31), vectors, settings)
    index = TrackIndex(tmp_path / "i.npz", 16, settings)
    query = index.expanded_query(index.ranked(vectors[:1])[0], frozenset({1}))
    np.testing.assert_allclose(query, queries[0], atol=1e-4)
    found = index.nearest(query, 30)
    np.testing.assert_allclose(found.score, scores[0, found.track_id - 1], atol=1e-4)

    def album_precision(scores: np.ndarray) -> float:
        np.fill_diagonal(scores, -np.inf)
        top = np.argsort(-scores, axis=1)[:, :4]
        return float(np.mean([[albums[j] == albums[i] for j in row] for i, row in enumerate(top)]))

    plain = album_precision(ranked_scores(vectors, {**settings, "neighbour_expansion": 0}))
    assert album_precision(scores) >= plain + 0.05


def test_training_crops_mask_runs_of_bands_and_frames_at_the_mean_level() -> None:
    from simlib.train.similarity import TrackData, _random_crops

    rng = np.random.default_rng(0)
    windows = rng.uniform(-3.0, 3.0, (2, CROP_FRAMES + 30, N_MELS)).astype(np.float16)
    data = [TrackData(windows, np.zeros((N_CROPS, CROP_FRAMES, N_MELS), np.float16))]
    index = np.zeros(32, np.int64)
    bands = TrainConfig(gain_db=0.0, freq_mask=10)
    frames = TrainConfig(gain_db=0.0, time_mask=40)
    by_band = _random_crops(data, index, np.random.default_rng(1), bands).numpy()
    by_frame = _random_crops(data, index, np.random.default_rng(1), frames).numpy()
    masked_bands = [(np.ptp(crop, axis=0) == 0).sum() for crop in by_band]
    masked_frames = [(np.ptp(crop, axis=1) == 0).sum() for crop in by_frame]
    assert max(masked_bands) <= 10 and max(masked_frames) <= 40
    assert np.mean(masked_bands) > 2 and np.mean(masked_frames) > 8
    plain = _random_crops(data, np.zeros(4, np.int64), rng, TrainConfig(gain_db=0.0)).numpy()
    assert all((np.ptp(crop, axis=0) == 0).sum() == 0 for crop in plain)


def test_validation_holds_out_whole_tagged_albums(tracks, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    metrics = train_similarity(
        tracks,
        tmp_path / "sim.pt",
        epochs=1,
        seed=1,
        val_fraction=0.01,  # the hash picks no album: the last tagged track's album stands in
        config=TrainConfig(batch_pairs=16, learning_rate=5e-3, val_every=1),
        architecture=TINY,
    )
    # album 2 (4 tracks) validates; the other 9 are 8 pair-giving tracks and the untagged one,
    # which never validates
    assert (metrics.n_val, metrics.n_train) == (4, 9)
