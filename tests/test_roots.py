"""`simlib roots`: the registered library folders, listed and forgotten; `status` names the
missing ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simlib import api
from simlib.cli import app

runner = CliRunner()


@pytest.fixture
def two_roots(home, tmp_path, example_lib) -> tuple[Path, Path]:
    """Two scanned library folders: four tracks (two albums) and two tracks (one album)."""
    albums = sorted(p for p in example_lib.glob("*/*") if p.is_dir())
    first, second = tmp_path / "first", tmp_path / "second"
    for album in albums[:2]:
        shutil.copytree(album, first / album.name)
    shutil.copytree(albums[2], second / albums[2].name)
    assert api.scan([first, second], workers=1).analysed == 6
    return first, second


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def test_roots_lists_folders_with_counts_and_presence(two_roots, tmp_path):
    first, second = two_roots
    listed = invoke("roots")
    assert listed.exit_code == 0
    assert listed.stdout.splitlines() == [f"{first}  4 tracks", f"{second}  2 tracks"]
    second.rename(tmp_path / "unmounted")
    rows = json.loads(invoke("roots", "--json").stdout)
    assert [(r["path"], r["tracks"], r["present"]) for r in rows] == [
        (str(first), 4, True),
        (str(second), 2, False),
    ]
    assert f"{second}  2 tracks  (missing)" in invoke("roots").stdout
    status = invoke("status")
    assert f"roots     {first}, {second} (missing)" in status.stdout
    assert json.loads(invoke("status", "--json").stdout)["missing_roots"] == [str(second)]


def test_roots_remove_forgets_the_tracks_everywhere(two_roots):
    first, second = two_roots
    dry = invoke("roots", "remove", str(second), "--dry-run")
    assert dry.exit_code == 0 and "2 tracks" in dry.stdout
    assert api.status()["tracks"] == 6 and len(api.roots()) == 2
    query = sorted(p for p in first.rglob("*") if p.is_file())[0]
    before = {r.track.path for r in api.similar([query], n=10)[0].results}
    assert any(p.startswith(str(second)) for p in before)

    done = invoke("roots", "remove", str(second))
    assert done.exit_code == 0 and "2 tracks" in done.stdout
    status = api.status()
    assert status["tracks"] == 4 and status["roots"] == [str(first)]
    assert all(index["fresh"] and index["tracks"] == 4 for index in status["indexes"])
    after = {r.track.path for r in api.similar([query], n=10)[0].results}
    assert len(after) == 3 and not any(p.startswith(str(second)) for p in after)
    assert invoke("roots", "remove", str(second)).exit_code == 1  # not registered any more


def test_scanning_a_renamed_folder_moves_its_tracks(two_roots, tmp_path):
    first, _second = two_roots
    ids = {t.path.replace(str(first), ""): t.id for t in api.open_catalog().library()}
    renamed = tmp_path / "first renamed"
    first.rename(renamed)
    result = invoke("scan", str(renamed), "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert (report["reused"], report["analysed"]) == (4, 0)
    moved = {t.path.replace(str(renamed), ""): t.id for t in api.open_catalog().library()}
    assert moved == ids and api.status()["tracks"] == 6
    again = invoke("scan", "-q")
    assert f"{first} (`simlib roots remove {first}` forgets it)" in again.stderr
