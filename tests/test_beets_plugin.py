"""The beets plugin: import analyses and tags items, `beet similar`, `beet identify`.

Every `beet` command is a real subprocess on a temporary library (BEETSDIR);
expectations come from the simlib API on the same home, whatever the weights.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

import simlib
from simlib import audio, example_library

pytest.importorskip("beets", reason="beets is not installed: pip install beets")

CONFIG = """\
directory: {root}/library
library: {root}/library.db
plugins: simlib
import:
    copy: yes
    write: no
    resume: no
simlib:
    home: {root}/simlib-home
    count: 3
"""


def beet(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `beet ARGS` with the library in `root` (SIMLIB_HOME unset: the config says)."""
    env = {k: v for k, v in os.environ.items() if k != "SIMLIB_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "beets", *args],
        capture_output=True,
        text=True,
        env={**env, "BEETSDIR": str(root)},
        timeout=300,
    )


@pytest.fixture(scope="module")
def beets_root(tmp_path_factory) -> Path:
    """A beets library with 24 generated tracks imported (as albums, no autotagging)."""
    assert importlib.util.find_spec("beetsplug.simlib"), "pip install -e plugin/beets"
    root = tmp_path_factory.mktemp("beets")
    (root / "config.yaml").write_text(CONFIG.format(root=root))
    source = root / "incoming"
    example_library.make_library(
        source, tracks_per_album=2, seconds=8.0, formats=("mp3", "flac", "ogg")
    )
    done = beet(root, "import", "-A", "-q", str(source))
    assert done.returncode == 0, done.stderr
    return root


def items(root: Path) -> list[dict[str, str]]:
    """Every item of the library: its path, simlib_id, and `beet ls` line."""
    done = beet(root, "ls", "-f", "$path\t$simlib_id\t$artist - $album - $title")
    assert done.returncode == 0, done.stderr
    return [
        dict(zip(("path", "id", "line"), row.split("\t"), strict=True))
        for row in done.stdout.splitlines()
    ]


def test_import_analyses_items_and_stores_their_simlib_id(beets_root):
    found = items(beets_root)
    assert len(found) == 24
    assert all(Path(i["path"]).is_relative_to(beets_root / "library") for i in found)
    catalog = simlib.open_catalog(beets_root / "simlib-home")
    try:
        for item in found:
            track = catalog.track_by_path(os.path.realpath(item["path"]))
            assert track is not None and item["id"] == str(track.id)
        assert [r["path"] for r in catalog.roots()] == [os.path.realpath(beets_root / "library")]
    finally:
        catalog.close()


def test_similar_lists_the_beets_items_simlib_ranks_first(beets_root):
    seed = items(beets_root)[7]
    done = beet(beets_root, "similar", "-n", "4", f"path:{seed['path']}")
    assert done.returncode == 0, done.stderr
    ranked = simlib.similar([os.path.realpath(seed["path"])], home=beets_root / "simlib-home", n=4)
    want = [seed["line"]]
    want += [
        f"  {r.score:.3f}  {r.track.tags.artist} - {r.track.tags.album} - {r.track.tags.title}"
        for r in ranked[0].results
    ]
    assert done.stdout.splitlines() == want

    default_count = beet(beets_root, "similar", f"path:{seed['path']}")
    assert len(default_count.stdout.splitlines()) == 1 + 3  # `count: 3` in the config
    assert "no items match" in beet(beets_root, "similar", "title:nothing-like-this").stderr
    assert "give a QUERY" in beet(beets_root, "similar").stderr


def test_identify_prints_the_matching_item_and_offset(beets_root, tmp_path):
    item = items(beets_root)[12]
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, audio.decode(item["path"], 2.0, 5.0), audio.ANALYSIS_RATE_HZ)
    done = beet(beets_root, "identify", str(clip))
    assert done.returncode == 0, done.stderr
    found = re.fullmatch(
        rf"{re.escape(str(clip))}: (.*)  at (-?[\d.]+) s, confidence ([\d.]+)", done.stdout.strip()
    )
    assert found, done.stdout
    assert found[1] == item["line"]
    assert abs(float(found[2]) - 2.0) < 0.6
    assert float(found[3]) >= 0.5
    assert beet(beets_root, "identify").returncode != 0


def test_scan_roots_never_nest_library_roots():
    from beetsplug.simlib import scan_roots

    paths = ["/music/A/1.mp3", "/beets/B/2.mp3", "/elsewhere/C/3.flac", "/music2/4.ogg"]
    roots = ["/music", "/mus"]
    assert scan_roots(paths, roots, "/beets") == ["/beets", "/elsewhere/C", "/music", "/music2"]


def test_an_import_in_place_registers_its_top_folder_once(tmp_path):
    """`copy: no` leaves the files where they are: the folder given to `beet import` becomes
    one simlib root, not one root per album folder."""
    (tmp_path / "config.yaml").write_text(
        CONFIG.format(root=tmp_path).replace("copy: yes", "copy: no")
    )
    source = tmp_path / "incoming"
    example_library.make_library(
        source, tracks_per_album=1, seconds=4.0, styles=example_library.default_styles()[:3]
    )
    done = beet(tmp_path, "import", "-A", "-q", str(source))
    assert done.returncode == 0, done.stderr
    catalog = simlib.open_catalog(tmp_path / "simlib-home")
    try:
        assert [r["path"] for r in catalog.roots()] == [os.path.realpath(source)]
        assert len(catalog.library()) == 3
    finally:
        catalog.close()
