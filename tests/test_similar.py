"""`simlib similar`: JSON shape, self-exclusion, filters, outside files, blend, bad input."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from simlib import api, audio, example_library
from simlib.catalog import Catalog, read_tags
from simlib.cli import app
from simlib.similar.index import Ranking, ranked_scores
from simlib.similar.model import SimilarityModel

runner = CliRunner()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, example_lib):
    home = tmp_path_factory.mktemp("similar-home")
    assert api.scan([example_lib], home=home, workers=1).analysed == 24
    return home


def test_json_shape_and_the_query_is_never_its_own_result(indexed, example_lib):
    queries = sorted(example_lib.rglob("*.mp3"))[:2]
    result = runner.invoke(
        app, ["similar", *map(str, queries), "-n", "5", "--json", "--home", str(indexed)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == [str(q) for q in queries]
    for line, query in zip(lines, queries, strict=True):
        assert len(line["results"]) == 5
        assert str(query) not in {r["path"] for r in line["results"]}
        assert set(line["results"][0]) == {"path", "title", "artist", "album", "score"}
        scores = [r["score"] for r in line["results"]]
        assert scores == sorted(scores, reverse=True)


def test_scores_are_the_library_standardised_ranking_of_every_other_track(indexed):
    """The index ranks as the exact computation does, and answers with every other
    track, none twice."""
    model = SimilarityModel.load()
    assert Ranking.from_settings(model.ranking, model.dim).standardises
    catalog = Catalog(indexed)
    ids, vectors = catalog.vectors("similarity")
    query = catalog.tracks([int(ids[0])])[int(ids[0])].path
    catalog.close()
    exact = dict(zip(ids.tolist(), ranked_scores(vectors, model.ranking)[0].tolist(), strict=True))
    [found] = api.similar([query], home=indexed, n=len(ids))
    assert sorted(r.track.id for r in found.results) == sorted(ids.tolist()[1:])
    for result in found.results:
        assert result.score == pytest.approx(exact[result.track.id], abs=1e-4)


def test_a_track_analysed_after_the_build_ranks_as_the_build_ranked_it(indexed, tmp_path):
    """Until the next build, a track analysed since is expanded by its nearest indexed
    tracks as a query is. Four tracks, each against the 23 others' queries: expanded, 68
    of the 92 ranks stayed as the build had them; compared unexpanded, 33."""
    catalog = Catalog(indexed)
    ids, _ = catalog.vectors("similarity")
    paths = [catalog.tracks([int(i)])[int(i)].path for i in ids]
    catalog.close()
    kept = 0
    for n, target in enumerate(paths[::6]):
        home = tmp_path / f"home{n}"
        shutil.copytree(indexed, home)
        others = [p for p in paths if p != target]

        def ranks(home=home, target=target, others=others) -> list[int]:
            results = api.similar(others, home=home, n=len(paths))
            return [[r.track.path for r in found.results].index(target) for found in results]

        before = ranks()
        catalog = Catalog(home)
        with catalog.db:
            catalog._bump_analysis(catalog.track_by_path(target).id)  # as a re-analysis does
        catalog.close()
        kept += sum(a == b for a, b in zip(before, ranks(), strict=True))
    assert kept >= 50


def test_exclusion_flags(indexed, example_lib):
    query = sorted(example_lib.rglob("*.flac"))[0]
    tags = read_tags(query)
    [by_artist] = api.similar([query], home=indexed, n=20, exclude_artist=True)
    assert len(by_artist.results) == 20  # 24 tracks - 4 of this artist
    assert all(r.track.tags.artist != tags.artist for r in by_artist.results)
    [by_album] = api.similar([query], home=indexed, n=30, exclude_album=True)
    assert len(by_album.results) == 22
    assert all(r.track.tags.album != tags.album for r in by_album.results)


def test_a_file_outside_the_library_is_embedded_on_the_fly(indexed, example_lib, tmp_path):
    source = sorted(example_lib.rglob("*.ogg"))[0]
    outside = tmp_path / "outside.ogg"
    shutil.copy2(source, outside)
    [inside] = api.similar([source], home=indexed, n=5)
    [copy] = api.similar([outside], home=indexed, n=5)
    assert [r.track.path for r in copy.results] == [r.track.path for r in inside.results]
    assert str(source) not in {r.track.path for r in copy.results}  # same audio: excluded


def test_a_reencoded_copy_finds_its_original_first(indexed, example_lib, tmp_path):
    """Other audio bytes, same music: the original is the most similar track of all."""
    for source in sorted(example_lib.rglob("*.flac"))[:3]:
        copy = tmp_path / f"{source.stem}.mp3"
        example_library.encode(copy, audio.decode(source), audio.ANALYSIS_RATE_HZ)
        [result] = api.similar([copy], home=indexed, n=3)
        assert result.results[0].track.path == str(source)


def test_blend_gives_one_list_without_any_seed(indexed, example_lib):
    seeds = sorted(example_lib.rglob("*.m4a"))[:3]
    [blended] = api.similar(seeds, home=indexed, n=10, blend=True)
    assert len(blended.results) == 10
    assert not {str(s) for s in seeds} & {r.track.path for r in blended.results}


def test_a_blend_of_two_artists_finds_tracks_of_each(indexed, example_lib):
    """Each seed is expanded by its own nearest tracks before the mean, so the expansion
    does not pull a blend towards one seed's neighbourhood."""
    by_artist = {}
    for path in sorted(example_lib.rglob("*.*")):
        by_artist.setdefault(read_tags(path).artist, path)
    seeds = [by_artist[a] for a in sorted(a for a in by_artist if a)[:2]]
    [blended] = api.similar(seeds, home=indexed, n=6, blend=True)
    artists = {r.track.tags.artist for r in blended.results}
    assert {read_tags(s).artist for s in seeds} <= artists


def test_bad_input_gets_an_error_and_the_others_are_answered(indexed, example_lib, tmp_path):
    text = tmp_path / "bad.mp3"
    text.write_text("not audio")
    good = sorted(example_lib.rglob("*.wav"))[0]
    results = api.similar([text, good], home=indexed, n=3)
    assert results[0].error and results[0].results == ()
    assert results[1].error is None and len(results[1].results) == 3
