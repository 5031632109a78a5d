"""One server for several runs (Trapline keeps one run per database): ``trapline serve
--db A --db B`` lists the runs at / and serves each under /runs/NAME/, every link and
script of a run's pages inside its own prefix."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from trapline.pipeline.config import PipelineConfig
    from trapline.run import run_files
    from trapline.simulate import SimulationConfig, write_series

    folder = tmp_path_factory.mktemp("runs")
    urls = {}
    for name, seed in (("north", 3), ("south", 4)):
        series = write_series(SimulationConfig(seed=seed, epochs=4, bands=1, size=128,
                                               n_steady=6, n_variable=1, n_transient=1,
                                               n_fading=0), folder / name)
        urls[name] = f"sqlite:///{folder / (name + '.sqlite')}"
        config = PipelineConfig()
        config.run.workers = 1
        run_files([str(series.out_dir)], urls[name], config)
    return urls


@pytest.fixture
def client(runs):
    from fastapi.testclient import TestClient

    from trapline.web import create_runs_app

    with TestClient(create_runs_app(runs)) as client:
        yield client


def test_the_index_lists_every_run(client, runs):
    listed = client.get("/?format=json").json()["runs"]
    assert [r["name"] for r in listed] == list(runs)
    html = client.get("/", headers={"accept": "text/html"}).text
    assert 'href="/runs/north/"' in html and 'href="/runs/south/"' in html


def test_each_run_is_served_under_its_own_prefix(client, runs):
    import trapline.api

    for name, url in runs.items():
        with trapline.api.open(url) as run:
            expected = sorted(run.sources().source_id.tolist())
        got = client.get(f"/runs/{name}/sources.json?per_page=500").json()
        rows = got["rows"] if isinstance(got, dict) else got
        assert sorted({r["source_id"] for r in rows}) == expected
        page = client.get(f"/runs/{name}/sources")
        assert page.status_code == 200
        links = re.findall(r'(?:href|src|action)="(/[^"]*)"', page.text)
        assert links and all(link.startswith(f"/runs/{name}/") for link in links), [
            link for link in links if not link.startswith(f"/runs/{name}/")]
        assert f'window.TRAPLINE_ROOT = "/runs/{name}"' in page.text
        assert client.get(f"/runs/{name}/static/trapline.js").status_code == 200


def test_serve_names_the_runs(runs, tmp_path):
    from trapline.commands.serve import run_names
    from trapline.errors import TraplineError

    named = run_names([f"a={runs['north']}", runs["south"]])
    assert named == {"a": runs["north"], "south": runs["south"]}
    with pytest.raises(TraplineError, match="two runs named"):
        run_names([runs["north"], runs["north"]])
