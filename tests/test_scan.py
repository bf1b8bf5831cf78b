"""Scanning: incremental work, retags, moves, copies, deletions, bad input, interruption."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import MeanMel

from simlib import api, example_library
from simlib.catalog import AddedSince, Catalog, current_build
from simlib.config import SimlibError
from simlib.library.pipeline import PEAKS
from simlib.library.sync import scan, walk
from simlib.similar.index import TrackIndex


@pytest.fixture
def catalog(home):
    cat = Catalog(home)
    yield cat
    cat.close()


def run_scan(catalog, library, embedder=None, **kwargs):
    embedder = embedder or MeanMel()
    return scan(catalog, [library], lambda: [embedder], **kwargs)


def ids_by_name(catalog):
    rows = catalog.db.execute("SELECT id, path FROM tracks WHERE status = 'ok'").fetchall()
    return {Path(path).name: track_id for track_id, path in rows}


def test_first_scan_analyses_everything_and_builds_the_index(catalog, library):
    report = run_scan(catalog, library)
    assert (report.files, report.analysed, report.failed) == (24, 24, 0)
    assert report.indexes == ["mean-mel"]
    assert 24 * 7.9 < report.audio_s < 24 * 8.1
    info = catalog.index_info("mean-mel")
    assert info["items"] == 24 and info["generation"] == catalog.generation
    index = TrackIndex(Path(info["path"]), info["dim"])
    ids, vectors = catalog.vectors("mean-mel")
    centred = vectors - vectors.mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    exact = centred @ centred[3]
    found = index.nearest(index.ranked(vectors[3:4])[0], 5)
    assert found.track_id.tolist() == ids[np.argsort(-exact)[:5]].tolist()
    assert np.allclose(found.score, np.sort(exact)[::-1][:5], atol=1e-4)


def test_rescan_does_no_work(catalog, library):
    run_scan(catalog, library)
    embedder = MeanMel()
    report = run_scan(catalog, library, embedder)
    assert (report.unchanged, report.analysed, embedder.calls) == (24, 0, 0)
    assert report.indexes == []  # nothing changed, the index is fresh


def test_new_model_version_reanalyses(catalog, library):
    run_scan(catalog, library)
    embedder = MeanMel()
    embedder.version = "2"
    report = run_scan(catalog, library, embedder)
    assert report.analysed == 24 and report.indexes == ["mean-mel"]


def test_a_new_version_of_one_model_redoes_that_stage_only(catalog, library):
    class Other(MeanMel):
        name = "other-mel"

    scan(catalog, [library], lambda: [MeanMel(), Other()])
    kept, bumped = MeanMel(), Other()
    bumped.version = "2"
    report = scan(catalog, [library], lambda: [kept, bumped])
    assert (report.analysed, kept.calls, bumped.calls) == (24, 0, 24)
    expected = {PEAKS.name: PEAKS.version, "mean-mel": "1", "other-mel": "2"}
    assert all(k.versions == expected for k in catalog.known_tracks(1).values())
    assert len(catalog.vectors("mean-mel")[0]) == 24  # the kept outputs are still there
    # only the new model's index is rebuilt; the kept one is noted as holding the catalog
    assert report.indexes == ["other-mel"]
    info = catalog.index_info("mean-mel")
    assert info["generation"] == catalog.generation
    build = current_build(catalog, "mean-mel", "1")
    assert AddedSince.embeddings(catalog, "mean-mel", build).track_id.size == 0


def test_a_track_index_of_an_earlier_simlib_is_rebuilt(catalog, library):
    run_scan(catalog, library)
    info = catalog.index_info("mean-mel")
    old = Path(info["path"]).with_suffix(".ann")  # where an Annoy-era simlib kept it
    old.write_bytes(b"\0" * 64)
    kept = [info[k] for k in ("model_version", "dim", "items", "tracks", "bytes", "generation")]
    catalog.record_index("mean-mel", old, *kept)
    assert run_scan(catalog, library).indexes == ["mean-mel"]
    assert catalog.index_info("mean-mel")["path"] == str(old.with_suffix(".npz"))
    assert not old.exists()


def test_retag_updates_tags_without_reanalysis(catalog, library):
    run_scan(catalog, library)
    path = next(library.rglob("*.flac"))
    before = ids_by_name(catalog)[path.name]
    example_library.tag(path, {"title": "New Title", "genre": ["Jazz"]})
    embedder = MeanMel()
    report = run_scan(catalog, library, embedder)
    assert (report.reused, report.analysed, embedder.calls) == (1, 0, 0)
    assert report.indexes == []  # the vectors did not change: neither did the index
    assert all(index["fresh"] for index in catalog.summary()["indexes"])
    track = catalog.track(before)
    assert track.tags.title == "New Title" and track.tags.genre == ("Jazz",)


def test_moved_and_renamed_files_keep_their_id_and_analysis(catalog, library):
    run_scan(catalog, library)
    ids = ids_by_name(catalog)
    album = next(p for p in library.rglob("*") if p.is_dir() and p.parent != library)
    moved_to = library / "Reorganised" / "Album moved"
    moved_to.parent.mkdir()
    shutil.move(album, moved_to)
    single = next(library.rglob("*.mp3"))
    single.rename(single.with_name("renamed.mp3"))
    embedder = MeanMel()
    report = run_scan(catalog, library, embedder)
    assert embedder.calls == 0 and report.removed == 0 and report.analysed == 0
    assert report.indexes == []
    after = ids_by_name(catalog)
    assert after["renamed.mp3"] == ids[single.name]
    for path in moved_to.iterdir():
        assert after[path.name] == ids[path.name]
        assert catalog.track(after[path.name]).path == str(path)
    assert len(after) == 24


def test_copies_reuse_the_analysis_and_deletions_are_forgotten(catalog, library):
    run_scan(catalog, library)
    original = next(library.rglob("*.m4a"))
    shutil.copy2(original, library / "copy.m4a")
    gone = next(library.rglob("*.ogg"))
    gone.unlink()
    embedder = MeanMel()
    report = run_scan(catalog, library, embedder)
    assert (report.reused, report.removed, embedder.calls) == (1, 1, 0)
    assert report.indexes == ["mean-mel"]  # a track more, a track fewer
    ids = ids_by_name(catalog)
    assert gone.name not in ids
    np.testing.assert_array_equal(
        catalog.vector(ids["copy.m4a"], "mean-mel"), catalog.vector(ids[original.name], "mean-mel")
    )


def test_bad_files_are_recorded_and_do_not_stop_the_scan(catalog, library, bad_files):
    report = run_scan(catalog, library)
    reasons = {Path(p).name: r for p, r in report.errors.items()}
    assert set(reasons) == {"empty.mp3", "notes.mp3", "corrupt.flac", "short.wav"}
    assert "empty" in reasons["empty.mp3"]
    assert "too short" in reasons["short.wav"]
    assert all("\n" not in r for r in reasons.values())
    assert report.analysed == 25  # the 24 tracks and the (playable) truncated mp3
    summary = catalog.summary()
    assert summary["failed"] == 4 and len(summary["failures"]) == 4
    # failures are not retried until the file changes
    again = run_scan(catalog, library)
    assert again.failed == 0 and again.unchanged == 29


def test_unicode_and_long_paths(catalog, library):
    deep = library / "Ünïcødé ☃ 音楽" / ("long folder name " * 12).strip() / ("x" * 200)
    deep.mkdir(parents=True)
    source = next(library.rglob("*.wav"))
    target = deep / "トラック — ünïcode.wav"
    shutil.copy2(source, target)
    example_library.tag(target, {"title": "Ünïcode ☃"})
    report = run_scan(catalog, library)
    assert report.failed == 0 and len(str(target)) > 400
    assert catalog.track_by_path(str(target)).tags.title == "Ünïcode ☃"


def test_symlinks_are_followed_only_when_asked_and_loops_end(catalog, library):
    (library / "loop").symlink_to(library, target_is_directory=True)
    (library / "a.mp3").symlink_to(library / "b.mp3")
    (library / "b.mp3").symlink_to(library / "a.mp3")
    assert len(list(walk(library, follow_symlinks=False))) == 24
    followed = list(walk(library, follow_symlinks=True))
    assert len(followed) == 26  # the loop folder is not entered twice; the looping links show
    report = run_scan(catalog, library, follow_symlinks=True)
    assert report.analysed == 24
    assert {Path(p).name for p in report.errors} == {"a.mp3", "b.mp3"}


def test_a_file_that_disappears_mid_scan_is_skipped(catalog, library):
    victim = sorted(library.rglob("*.opus"))[-1]

    def remove_victim(_calls):
        if victim.exists():
            victim.unlink()

    report = run_scan(catalog, library, MeanMel(on_call=remove_victim))
    assert report.failed == 0 and report.analysed == 23
    assert victim.name not in ids_by_name(catalog)


def test_interrupted_scan_keeps_finished_tracks_and_resumes(catalog, library):
    def interrupt(calls):
        if calls == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scan(catalog, library, MeanMel(on_call=interrupt))
    assert len(ids_by_name(catalog)) == 5
    embedder = MeanMel()
    report = run_scan(catalog, library, embedder)
    assert report.analysed == 19 and embedder.calls == 19 and report.unchanged == 5


def test_parallel_scan_matches_serial(tmp_path, library):
    serial = Catalog(tmp_path / "serial")
    parallel = Catalog(tmp_path / "parallel")
    run_scan(serial, library)
    report = scan(parallel, [library], _mean_mel_factory, workers=2)
    assert report.analysed == 24
    by_path = {}
    for catalog in (serial, parallel):
        ids, vectors = catalog.vectors("mean-mel")
        tracks = catalog.tracks(ids.tolist())
        by_path[catalog] = {tracks[i].path: v for i, v in zip(ids.tolist(), vectors, strict=True)}
    assert by_path[serial].keys() == by_path[parallel].keys() and len(by_path[serial]) == 24
    for path, vector in by_path[serial].items():
        np.testing.assert_allclose(vector, by_path[parallel][path], atol=1e-6)


def _mean_mel_factory():
    return [MeanMel()]


def test_rescan_of_registered_roots_and_missing_roots(home, library, tmp_path):
    api.scan([library], workers=1)
    moved = tmp_path / "unmounted"
    library.rename(moved)
    report = api.scan(workers=1)
    assert report.missing_roots == [str(library)] and report.removed == 0
    assert api.status()["tracks"] == 24
    moved.rename(library)


def test_scan_of_a_missing_folder_is_a_clear_error(home, tmp_path):
    with pytest.raises(SimlibError, match="not a folder"):
        api.scan([tmp_path / "nope"])
    with pytest.raises(SimlibError, match="no library folders"):
        api.scan()


def test_default_embedders_are_stored(home, library):
    report = api.scan([library], workers=1)
    assert report.analysed == 24
    assert os.path.exists(home / "catalog.db")


RESCAN_PROBE = """
import json, multiprocessing, sys, time
from simlib import api
started = time.monotonic()
report = api.scan([sys.argv[1]], workers=2)
print(json.dumps({
    "seconds": time.monotonic() - started,
    "unchanged": report.unchanged,
    "model runtime": "onnxruntime" in sys.modules or "torch" in sys.modules,
    "children": len(multiprocessing.active_children()),
}))
"""


def test_a_rescan_of_unchanged_files_starts_no_worker_and_loads_no_model(
    home, tmp_path, example_lib
):
    """Unchanged files cost a stat each: no worker process, no model, no index build."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "few"
    for album in sorted(p for p in example_lib.glob("*/*") if p.is_dir())[:2]:
        shutil.copytree(album, folder / album.name)
    assert api.scan([folder], workers=1).analysed == 4
    done = subprocess.run(
        [sys.executable, "-c", RESCAN_PROBE, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["unchanged"] == 4
    assert not probe["model runtime"] and probe["children"] == 0
    assert probe["seconds"] < 2.0  # was 4-6 s: starting workers to load the models


def test_a_renamed_library_folder_keeps_its_tracks(catalog, library, tmp_path):
    """Scanning a library's top folder under its new name moves the vanished root's tracks
    (same ids, no new analysis) instead of adding a second copy of each."""
    run_scan(catalog, library)
    ids = ids_by_name(catalog)
    renamed = tmp_path / "renamed library"
    library.rename(renamed)
    embedder = MeanMel()
    report = run_scan(catalog, renamed, embedder)
    assert (report.reused, report.analysed, embedder.calls) == (24, 0, 0)
    assert ids_by_name(catalog) == ids
    paths = [row[0] for row in catalog.db.execute("SELECT path FROM tracks")]
    assert len(paths) == 24 and all(p.startswith(str(renamed)) for p in paths)
    summary = catalog.summary()
    assert summary["missing_roots"] == [str(library)]
    rescan = scan(catalog, [], lambda: [MeanMel()])
    assert rescan.missing_roots == rescan.empty_missing_roots == [str(library)]
