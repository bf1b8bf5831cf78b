"""The SQLite catalog: schema, WAL, atomic writes, generations."""

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils

from simlib.catalog import Catalog, FileState, PackedSegments, TrackPeaks, store
from simlib.catalog.migrations import MIGRATIONS, SCHEMA_VERSION
from simlib.catalog.store import _array_blob
from simlib.config import SimlibError
from simlib.types import Segments, Tags

AUDIO = {
    "content_hash": "h1",
    "duration_s": 10.0,
    "sample_rate_hz": 44100,
    "channels": 2,
    "codec": "mp3",
    "container": "mp3",
}


PEAKS = TrackPeaks.of(np.array([5, 200, 7]), np.array([3, 0, 260]), n_frames=300)


def same_peaks(found: TrackPeaks | None) -> bool:
    return found is not None and all(
        np.array_equal(a, b)
        for a, b in zip(
            (found.counts, found.bins, found.places),
            (PEAKS.counts, PEAKS.bins, PEAKS.places),
            strict=True,
        )
    )


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog(tmp_path / "home")
    yield cat
    cat.close()


def write_one(catalog, path="/music/a.mp3", vector=(1.0, 0.0)):
    root = catalog.add_root(Path("/music"), False)
    outputs = {
        "sim": ("v1", np.asarray(vector, dtype=np.float32)),
        "fp": ("v2", PackedSegments.pack(Segments(np.arange(3) / 2, np.eye(3)), hop_s=0.5)),
        "peaks": ("v3", PEAKS),
    }
    return catalog.write_analysis(
        FileState(path, 100, 5), root, Tags(title="A", genre=("x",)), AUDIO, outputs
    )


def test_schema_version_and_wal(catalog):
    db = sqlite3.connect(catalog.path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reopened = Catalog(catalog.home)  # migrating an up-to-date catalog is a no-op
    assert reopened.generation == catalog.generation
    reopened.close()


def test_newer_schema_is_refused(catalog):
    catalog.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SimlibError, match="newer"):
        Catalog(catalog.home)


def test_write_and_read_back(catalog):
    track_id = write_one(catalog)
    track = catalog.track(track_id)
    assert track.tags.title == "A" and track.tags.genre == ("x",)
    ids, vectors = catalog.vectors("sim")
    assert ids.tolist() == [track_id] and vectors.tolist() == [[1.0, 0.0]]
    [(seg_id, segments)] = list(catalog.segments("fp"))
    assert seg_id == track_id and segments.vectors.dtype == np.float32
    np.testing.assert_array_equal(segments.vectors, np.eye(3))
    np.testing.assert_array_equal(segments.start_s, [0.0, 0.5, 1.0])
    one = catalog.track_segments(track_id, "fp")
    np.testing.assert_array_equal(one.vectors, segments.vectors)
    assert catalog.track_segments(track_id, "sim") is None
    assert catalog.track_segments(track_id + 1, "fp") is None
    assert same_peaks(catalog.track_peaks(track_id, "v3"))
    assert catalog.track_peaks(track_id, "v0") is None  # another version's are not used
    assert catalog.generation == 1


def test_indexes_read_rows_in_path_order_whatever_the_ids(catalog):
    """A scan's workers finish in any order, so two scans of one library number its tracks
    differently; the rows the indexes are built from come in path order all the same."""
    later = write_one(catalog, "/music/b.mp3", (0.0, 1.0))
    first = write_one(catalog, "/music/a.mp3")
    assert later < first
    assert [i for i, _ in catalog.segments("fp")] == [first, later]
    ids, vectors = catalog.vectors("sim")
    assert ids.tolist() == [first, later] and vectors.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_known_tracks_under_files_and_folders(catalog):
    paths = ["/music/a.mp3", "/music/al/1.mp3", "/music/al/2.mp3", "/music/album/3.mp3"]
    ids = {path: write_one(catalog, path) for path in paths}
    root = catalog.add_root(Path("/music"), False)
    everything = catalog.known_tracks(root)
    assert set(everything) == set(paths)
    assert everything["/music/al/1.mp3"].versions == {"sim": "v1", "fp": "v2", "peaks": "v3"}
    below = catalog.known_tracks(root, under=["/music/al", "/music/a.mp3", "/music/gone.mp3"])
    assert set(below) == {"/music/a.mp3", "/music/al/1.mp3", "/music/al/2.mp3"}  # not album/
    assert below["/music/al/2.mp3"] == everything["/music/al/2.mp3"]
    assert below["/music/a.mp3"].id == ids["/music/a.mp3"]
    assert catalog.known_tracks(root, under=[]) == {}


def test_failed_write_leaves_nothing_half_written(catalog, monkeypatch):
    write_one(catalog)
    generation = catalog.generation

    def boom(*_args):
        raise RuntimeError("killed mid-transaction")

    monkeypatch.setattr(catalog, "_put_outputs", boom)
    with pytest.raises(RuntimeError):
        write_one(catalog, path="/music/b.mp3")
    assert catalog.track_by_path("/music/b.mp3") is None
    assert catalog.generation == generation
    assert catalog.db.execute("SELECT COUNT(*) FROM tracks").fetchone()[0] == 1


def test_copy_and_delete(catalog):
    source = write_one(catalog)
    root = catalog.add_root(Path("/music"), False)
    copy = catalog.copy_analysis(
        source, FileState("/music/copy.mp3", 100, 6), root, Tags(title="C")
    )
    assert catalog.vector(copy, "sim").tolist() == [1.0, 0.0]
    assert len(list(catalog.segments("fp"))) == 2
    assert same_peaks(catalog.track_peaks(copy, "v3"))
    catalog.delete_tracks([source])
    assert catalog.track_peaks(source, "v3") is None
    assert catalog.track(source) is None and catalog.track(copy) is not None
    assert [i for i, _ in catalog.segments("fp")] == [copy]
    assert catalog.track_segments(source, "fp") is None


def test_deleting_many_tracks_takes_them_in_chunks(catalog, monkeypatch):
    """More ids than one query binds: every chunk's tracks and outputs go, no other's."""
    monkeypatch.setattr(store, "IDS_PER_QUERY", 2)
    ids = [write_one(catalog, path=f"/music/{i}.mp3") for i in range(6)]
    kept = ids.pop(3)
    assert catalog.delete_tracks(ids) == 5
    assert catalog.tracks(ids + [kept]).keys() == {kept}
    assert [i for i, _ in catalog.segments("fp")] == [kept]
    assert catalog.vectors("sim")[0].tolist() == [kept]
    assert all(catalog.track_peaks(i, "v3") is None for i in ids)
    assert same_peaks(catalog.track_peaks(kept, "v3"))


def test_error_rows_are_listed_in_the_summary(catalog):
    root = catalog.add_root(Path("/music"), False)
    catalog.write_error(FileState("/music/bad.mp3", 3, 1), root, Tags(), "no audio stream")
    summary = catalog.summary()
    assert summary["failed"] == 1 and summary["tracks"] == 0
    assert summary["failures"] == [{"path": "/music/bad.mp3", "error": "no audio stream"}]


def test_packed_segments_keep_cosines_and_take_dim_plus_two_bytes():
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((500, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    segments = Segments(np.arange(500) * 0.5, vectors.astype(np.float32))
    packed = PackedSegments.pack(segments, 0.5)
    slots, blob = packed.blobs()
    assert len(slots) + len(blob) == 500 * (32 + 2)
    back = PackedSegments.from_blobs(slots, blob, 500, 0.5).unpack()
    np.testing.assert_array_equal(back.start_s, segments.start_s)
    cosines = np.sum(back.vectors * vectors, axis=1)
    assert cosines.min() > 0.999  # what identification compares barely moves
    long = PackedSegments.pack(Segments(np.array([0.0, 40_000.0]), vectors[:2]), 0.5)
    assert long.slots.dtype == np.uint32
    assert PackedSegments.from_blobs(*long.blobs(), 2, 0.5).unpack().start_s[1] == 40_000.0


def test_schema_2_fingerprints_still_read_after_the_migration(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    db = sqlite_utils.Database(home / "catalog.db")
    for step in MIGRATIONS[:2]:
        step(db)
    db.execute("PRAGMA user_version = 2")
    db["tracks"].insert({"id": 1, "path": "/m/a.mp3", "status": "ok", "analysis_generation": 0})
    old = Segments(np.arange(3, dtype=np.float32) / 2, np.eye(3, dtype=np.float16))
    db["fingerprints"].insert(
        {"track_id": 1, "model": "fp", "version": "v1", "count": 3,
         "start_s": _array_blob(old.start_s), "vectors": _array_blob(old.vectors)}
    )  # fmt: skip
    db.close()
    catalog = Catalog(home)
    assert catalog.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    segments = catalog.track_segments(1, "fp")
    np.testing.assert_array_equal(segments.start_s, old.start_s)
    assert segments.vectors.dtype == np.float32 and np.array_equal(segments.vectors, np.eye(3))
    assert [i for i, _ in catalog.segments("fp")] == [1]
    write_one(catalog, "/m/b.mp3")
    assert len(list(catalog.segments("fp"))) == 2
    catalog.close()


def test_an_index_holds_the_catalog_until_its_own_model_s_outputs_change(catalog):
    track_id = write_one(catalog)
    root = catalog.add_root(Path("/music"), False)

    def record(name):
        catalog.record_index(name, Path("/x") / name, "v", 2, 1, 1, 10, catalog.generation)

    def current():
        return {n: catalog.holds_current(catalog.index_info(n)) for n in ("sim", "fp")}

    record("sim"), record("fp")
    catalog.update_file(track_id, FileState("/music/b.mp3", 100, 7), root, Tags(title="B"))
    assert current() == {"sim": True, "fp": True}  # a retag or a move changes no vector
    catalog.write_analysis(
        FileState("/music/b.mp3", 100, 8), root, Tags(), AUDIO, {"sim": ("v9", np.ones(2))}
    )
    assert current() == {"sim": False, "fp": True}  # one model's new version
    catalog.advance_index("fp")
    assert catalog.index_info("fp")["generation"] == catalog.generation
    record("sim")
    catalog.delete_tracks([track_id])
    assert current() == {"sim": False, "fp": False}


def test_an_index_of_a_catalog_from_before_changes_were_noted_is_current_once_rebuilt(catalog):
    track_id = write_one(catalog)
    catalog.db.execute("DELETE FROM meta WHERE key LIKE 'outputs_changed:%'")
    catalog.record_index("fp", Path("/x/fp"), "v", 3, 3, 1, 10, catalog.generation - 1)
    assert not catalog.holds_current(catalog.index_info("fp"))  # unknown: not trusted
    catalog.record_index("fp", Path("/x/fp"), "v", 3, 3, 1, 10, catalog.generation)
    root = catalog.add_root(Path("/music"), False)
    catalog.update_file(track_id, FileState("/music/b.mp3", 100, 7), root, Tags(title="B"))
    assert catalog.holds_current(catalog.index_info("fp"))
