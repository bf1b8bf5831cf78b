"""The identification benchmark's judge of right answers (`benchmarks/identify.py`): the
clip's own offset, or a place whose clean audio is the clip's (a loop, a second file)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RATE = 16_000


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "identify.py"
    spec = importlib.util.spec_from_file_location("identify_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defined
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> list[Path]:
    """A loop A B A' C (6 s each: A' repeats A exactly, C is A varied, correlation 0.8 with
    it), and a second file of the same recording."""
    rng = np.random.default_rng(7)
    a, b, other = (0.2 * rng.standard_normal(6 * RATE) for _ in range(3))
    varied = 0.8 * a + 0.6 * other
    audio = np.concatenate([a, b, a, varied]).astype(np.float32)
    folder = tmp_path_factory.mktemp("judge")
    paths = [folder / "loop.wav", folder / "copy.wav"]
    for path in paths:
        sf.write(path, audio, RATE, subtype="FLOAT")
    return paths


def _clip(bench, source: Path, track: int):
    return bench.Clip(source, track, 0.5, "clean_mp3", 5.0, "", source)


def test_an_exact_repeat_or_a_copy_is_right_and_a_variation_is_not(bench, library) -> None:
    clip = _clip(bench, library[0], 0)
    for track, offset_s, right in [
        (0, 0.5, True),  # where it was cut
        (0, 1.7, True),  # within the offset tolerance
        (0, 12.5, True),  # the loop's exact repeat
        (1, 0.5, True),  # the same recording in another file
        (1, 12.4, True),
        (0, 6.5, False),  # other music
        (0, 18.5, False),  # the varied pass
        (0, 3.5, False),  # 3 s off, half of it other music
    ]:
        match = bench.Match(track, offset_s, 1.0, 1)
        assert bench.is_correct(clip, match, library) is right, (track, offset_s)
        assert bench.at_source(clip, match) is (track == 0 and abs(offset_s - 0.5) <= 1.5)


def test_a_clip_of_a_track_outside_the_library_is_never_right(bench, library) -> None:
    clip = _clip(bench, library[0], -1)
    assert not bench.is_correct(clip, bench.Match(0, 0.5, 1.0, 1), library)
    assert not bench.is_correct(_clip(bench, library[0], 0), None, library)


def test_paired_count_says_which_splits_are_beyond_chance(bench, capsys):
    """The sign test's p is the binomial tail of the discordant clips, both sides."""
    assert bench.sign_test_p(35, 35) == 1.0 and bench.sign_test_p(0, 0) == 1.0
    assert bench.sign_test_p(3, 0) == pytest.approx(0.25)  # 2 * (1/2)^3
    assert bench.sign_test_p(27, 51) == pytest.approx(0.0090, abs=5e-4)
    assert bench.sign_test_p(24, 39) == bench.sign_test_p(39, 24) > 0.05
    clips = [
        bench.Clip(Path(f"c{i}.wav"), 0, 0.0, "phone_room", 5.0, "", Path("t.wav"))
        for i in range(4)
    ]
    correct = {
        "a": {"c0.wav": True, "c1.wav": True, "c2.wav": False, "c3.wav": True},
        "b (earlier run)": {"c0.wav": False, "c1.wav": True, "c2.wav": True},  # c3 unseen
    }
    bench.report_paired(correct, clips)
    line = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert line[-7:] == ["phone_room", "3", "1", "/", "1", "p", "1.000"]


def test_precision_recall_without_clips_of_unknown_tracks_says_so(bench, capsys):
    """`--conditions babble_0db` draws no clips outside the library: nothing to plot."""
    clip = bench.Clip(Path("c.wav"), 0, 0.0, "babble_0db", 5.0, "", Path("t.wav"))
    outcome = bench.Outcome(True, False, True, None, True, None, True, 0)
    bench.pr_curve("simlib", {clip.path: outcome}, [clip], [])
    assert "no clips of tracks outside the library" in capsys.readouterr().out


def test_precision_recall_follows_the_most_confident_alignment(bench, capsys):
    """A clip whose first-ranked alignment is wrong and weak, and whose answer (the most
    confident alignment) is right at 0.8, counts as recalled up to 0.8; an unknown clip
    whose answer reaches 0.4 is a false positive up to 0.4."""
    known = bench.Clip(Path("c.wav"), 0, 0.0, "phone_room", 5.0, "", Path("t.wav"))
    unknown = bench.Clip(Path("u.wav"), -1, 0.0, "phone_room", 5.0, "", Path("u0.wav"))
    weak, sure = bench.Best(1, 9.0, 0.1, 0.0, 0.2), bench.Best(0, 0.0, 0.05, 6.0, 0.8)
    stray = bench.Best(1, 0.0, 0.1, 0.0, 0.4)
    results = {
        known.path: bench.Outcome(True, False, True, weak, False, sure, True, 0),
        unknown.path: bench.Outcome(False, False, False, weak, False, stray, False, -1),
    }
    bench.pr_curve("simlib", results, [known, unknown], [unknown])
    rows = {r.split()[0]: r.split()[1:] for r in capsys.readouterr().out.splitlines()[2:]}
    assert rows["0.500"][:2] == ["0.0", "100.0"]  # FP %, recall % of every clip
    assert rows["0.300"][:2] == ["100.0", "100.0"]
    assert rows["0.900"][:2] == ["0.0", "0.0"]


def test_set_changes_only_settings_the_query_path_reads(bench):
    assert bench.changed_settings(["shortlist=10", "query_hop_s=0.1"]) == {
        "shortlist": 10,
        "query_hop_s": 0.1,
    }
    with pytest.raises(ValueError, match="not one of"):
        bench.changed_settings(["calibration=1"])  # fitted, not set
    with pytest.raises(ValueError, match="not KEY=NUMBER"):
        bench.changed_settings(["probes=many"])


def test_scale_against_changes_only_the_policy(bench):
    assert bench.changed_settings(["probes=16"], bench.POLICY_SETTINGS) == {"probes": 16}
    with pytest.raises(ValueError, match="not one of"):
        bench.changed_settings(["query_hop_s=0.1"], bench.POLICY_SETTINGS)  # the model's


def test_scale_report_compares_the_policies_clip_by_clip(bench, capsys):
    """The first policy's p50 is the goal's figure; the other's line counts the clips
    only one of the two gets right."""
    known = [Path(f"c{i}.wav") for i in range(3)]
    unknown = Path("out-0.wav")

    def run(right: list[bool], matched_unknown: bool, seconds: float):
        outcomes = {
            p: bench.Outcome(r, r, r, None, r, None, r, 0)
            for p, r in zip(known, right, strict=True)
        }
        outcomes[unknown] = bench.Outcome(
            False, False, matched_unknown, None, False, None, False, 1
        )
        return outcomes, [seconds] * 4

    scale = {
        "build": {"items": 10},
        "runs": {
            "a": run([True, True, False], False, 0.06),
            "b": run([True, False, True], True, 0.03),
        },
    }
    figures = bench.report_scale_disk(type("Args", (), {"scale_tracks": 5})(), scale, None, 1.0)
    out = capsys.readouterr().out
    assert figures["p50_ms"] == pytest.approx(60.0)
    assert "a: top-1 66.7 % (n 3), false positives 0.0 % (n 1), query p50 / p95 60.0" in out
    assert "b: top-1 66.7 % (n 3), false positives 100.0 % (n 1), query p50 / p95 30.0" in out
    assert "only under the first / only under this: 1 / 1, sign-test p 1.000" in out
