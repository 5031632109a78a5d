"""The run's own configuration in the web interface, the notebook API and exports:
thresholds, version, processing times, significance, the lightcurve-bins table."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3

import pandas as pd
import pytest

import trapline
import trapline.api
from trapline.cli import main
from trapline.pipeline.config import VariabilitySection


def _db_file(url: str) -> str:
    return url.removeprefix("sqlite:///")


@pytest.fixture
def run_copy(web_run, tmp_path):
    """A copy of the web run's SQLite file (to change what is stored)."""
    path = tmp_path / "copy.sqlite"
    shutil.copy(_db_file(web_run), path)
    return path


def _set_config(path, change) -> None:
    with sqlite3.connect(path) as db:
        (text,) = db.execute("select value from pipeline_state where key='config'").fetchone()
        config = json.loads(text)
        change(config)
        db.execute("update pipeline_state set value=? where key='config'", (json.dumps(config),))


def _client(url):
    from fastapi.testclient import TestClient

    from trapline.web import create_app

    return TestClient(create_app(url, use_env_token=False))


def test_etav_and_notebook_flag_what_the_pipeline_flagged(client, web_run):
    """With the page's default thresholds every variable candidate is above them."""
    data = client.get("/etav.json").json()
    limits = VariabilitySection()
    assert (data["eta_threshold"], data["v_threshold"]) == (limits.eta_threshold,
                                                            limits.v_threshold)
    above = {(s, b) for s, b, e, v, n in zip(data["source_id"], data["band"], data["eta"],
                                              data["v"], data["n"], strict=True)
             if e > data["eta_threshold"] and v > data["v_threshold"]
             and n >= data["run_thresholds"]["min_points"]}
    flagged = {(r["source_id"], r["band"]) for r in client.get(
        "/candidates.json?kind=variable&per_page=500").json()["rows"]}
    assert flagged and flagged <= above
    with trapline.api.open(web_run) as run:
        assert {(int(s), int(b)) for s, b in zip(run.variables().source_id,
                                                  run.variables().band, strict=True)} == above
        assert run.thresholds()["from_run"] is True


def test_thresholds_come_from_the_stored_configuration(run_copy):
    def change(config):
        config["variability"].update(eta_threshold=2.5, v_threshold=0.07, min_points=3)

    _set_config(run_copy, change)
    with _client(str(run_copy)) as c:
        data = c.get("/etav.json").json()
        assert (data["eta_threshold"], data["v_threshold"]) == (2.5, 0.07)
        assert c.get("/etav.json?eta=5&v=0.2").json()["eta_threshold"] == 5
        page = c.get("/etav").text
        assert 'id="eta-threshold" type="number" step="any" min="0" value="2.5"' in page
        cands = c.get("/candidates.json").json()
        assert cands["thresholds"]["eta_threshold"] == 2.5
        assert "η &gt; 2.5 and V &gt; 0.07" in c.get("/candidates").text
    with trapline.api.open(str(run_copy)) as run:
        assert run.thresholds()["min_points"] == 3
        assert run.config().variability.v_threshold == 0.07
        chosen = run.variables()
        assert ((chosen.eta_int > 2.5) & (chosen.v_int > 0.07) & (chosen.n >= 3)).all()


def test_defaults_without_a_stored_configuration(run_copy):
    with sqlite3.connect(run_copy) as db:
        db.execute("delete from pipeline_state where key='config'")
    with _client(str(run_copy)) as c:
        data = c.get("/etav.json").json()
        assert data["run_thresholds"]["from_run"] is False
        assert data["eta_threshold"] == VariabilitySection().eta_threshold
        overview = c.get("/index.json").json()["run"]
        assert overview["config_stored"] is False
        assert "none stored with the run" in c.get("/").text


def test_overview_shows_configuration_version_and_processing(client):
    run = client.get("/index.json").json()["run"]
    assert run["version"] == trapline.__version__
    assert run["config_stored"] is True
    assert run["config"]["variability"]["eta_threshold"] == VariabilitySection().eta_threshold
    proc = run["processing"]
    images = client.get("/images.json?per_page=500").json()
    assert proc["images"] == images["total"] > 0
    assert proc["accepted"] == sum(r["accepted"] for r in images["rows"])
    assert proc["first_processed"] <= proc["last_processed"]
    page = client.get("/").text
    assert f'id="software-version">{trapline.__version__}<' in page
    assert proc["first_processed"] in page and 'id="run-config"' in page


def test_significance_is_explained_on_the_candidates_page(client):
    from trapline.storage.export import SIGNIFICANCE

    page = client.get("/candidates").text
    for kind in ("new", "variable"):  # each cell says what its number means
        assert f'title="{SIGNIFICANCE[kind]}">' in page, kind
    assert f'title="new: {SIGNIFICANCE["new"]}; variable: {SIGNIFICANCE["variable"]}"' in page
    assert client.get("/candidates.json").json()["significance"] == SIGNIFICANCE


def test_lightcurve_bins_are_exported(web_run, capsys, tmp_path):
    assert main(["export", "--db", web_run, "bins"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(frame) > 0
    assert list(frame.columns[:5]) == ["source_id", "band", "resolution_s", "bin_start", "time"]
    with sqlite3.connect(_db_file(web_run)) as db:
        n, swf, sw = db.execute("select count(*), sum(swf_int), sum(sw_int) from "
                                "lightcurve_bin").fetchone()
    assert len(frame) == n
    assert (frame.swf_int / frame.sw_int == frame.int_flux).all()
    with trapline.api.open(web_run) as run:
        assert len(run.bins()) == n
    out = tmp_path / "bins.parquet"
    assert main(["export", "--db", web_run, "bins", "-o", str(out)]) == 0
    assert pd.read_parquet(out).swf_int.sum() == pytest.approx(swf)


def test_every_export_table_downloads(client):
    from trapline.storage.export import EXPORTS

    assert "bins" in EXPORTS
    for table in EXPORTS:
        response = client.get(f"/download/{table}")
        assert response.status_code == 200, table
    assert client.get("/download/bins").text.startswith("source_id,band,resolution_s")
