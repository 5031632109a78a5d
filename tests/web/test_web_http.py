"""The web interface through the ASGI test client: every page and its JSON twin, CSV
downloads, filters, sorting, pagination and the token on monitoring-list writes."""

from __future__ import annotations

import csv
import io

import pytest

TOKEN = "test-token-123"  # as in conftest.py

PAGES = ["/", "/images", "/sources", "/etav", "/candidates", "/cone?ra=150&dec=30&radius=0.5",
         "/monitors", "/api", "/live"]


@pytest.fixture
def ids(client) -> dict[str, int]:
    """An image, a source and a candidate's source of the run."""
    image = client.get("/images.json").json()["rows"][0]["image_id"]
    cand = client.get("/candidates.json").json()["rows"][0]
    return {"image": image, "source": cand["source_id"]}


def test_every_page_has_html_and_json_twin(client, ids):
    pages = PAGES + [f"/images/{ids['image']}", f"/sources/{ids['source']}"]
    for page in pages:
        html = client.get(page)
        assert html.status_code == 200, page
        assert html.headers["content-type"].startswith("text/html"), page
        assert "cdn" not in html.text.lower() and "https://" not in html.text, page
        path, _, query = page.partition("?")
        suffix = ("/index" if path == "/" else path) + ".json" + (f"?{query}" if query else "")
        for twin in (suffix, page + ("&" if query else "?") + "format=json"):
            answer = client.get(twin)
            assert answer.status_code == 200, twin
            assert answer.headers["content-type"] == "application/json", twin
            assert isinstance(answer.json(), dict), twin


def test_overview_counts(client):
    data = client.get("/index.json").json()
    assert data["images"]["total"] == 12 and data["images"]["accepted"] == 12
    assert data["sources"] > 10 and sum(data["candidates"].values()) > 0
    assert {b["band"] for b in data["bands"]} == {0, 1}
    assert len(data["recent_images"]) == 12


def test_images_sorted_and_paginated_on_the_server(client):
    first = client.get("/images.json?per_page=5&sort=rms&order=asc").json()
    assert first["total"] == 12 and first["pages"] == 3 and len(first["rows"]) == 5
    rms = [r["rms"] for r in first["rows"]]
    assert rms == sorted(rms)
    third = client.get("/images.json?per_page=5&page=3&sort=rms&order=asc").json()
    assert len(third["rows"]) == 2 and third["rows"][0]["rms"] >= rms[-1]
    band1 = client.get("/images.json?band=1").json()
    assert band1["total"] == 6 and {r["band"] for r in band1["rows"]} == {1}
    assert client.get("/images.json?sort=nonsense").json()["sort"] == "time"  # whitelisted


def test_image_page_and_thumbnail(client, ids):
    data = client.get(f"/images/{ids['image']}.json").json()
    assert data["image"]["accepted"] is True and data["image"]["rms"] > 0
    assert data["measurements"]["total"] == len(data["measurements"]["rows"]) > 0
    png = client.get(f"/images/{ids['image']}/thumbnail.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/images/999999").status_code == 404
    assert client.get("/images/999999/thumbnail.png").status_code == 404


def test_sources_filters_and_sorting(client):
    every = client.get("/sources.json?per_page=500").json()
    assert every["total"] == len(every["rows"]) > 0
    by_eta = client.get("/sources.json?sort=eta_int&order=desc&per_page=500").json()["rows"]
    etas = [r["eta_int"] for r in by_eta if r["eta_int"] is not None]
    assert etas == sorted(etas, reverse=True)
    cut = sorted(r["mean_int_flux"] for r in every["rows"])[len(every["rows"]) // 2]
    bright = client.get(f"/sources.json?flux_min={cut}&per_page=500").json()["rows"]
    assert bright and all(r["mean_int_flux"] >= cut for r in bright)
    assert len(bright) < len(every["rows"])
    eta_v = client.get("/sources.json?eta_min=1&v_min=0.05&band=0").json()["rows"]
    assert all(r["eta_int"] >= 1 and r["v_int"] >= 0.05 and r["band"] == 0 for r in eta_v)
    assert all(r["n"] >= 6 for r in client.get("/sources.json?n_min=6").json()["rows"])
    one = every["rows"][0]
    near = client.get(f"/sources.json?ra={one['ra']}&dec={one['dec']}&radius=0.001"
                      "&sort=source_id").json()["rows"]
    assert one["source_id"] in {r["source_id"] for r in near}
    assert all(r["distance_deg"] <= 0.001 for r in near)
    assert client.get("/sources.json?flux_min=nan").status_code == 422


def test_source_page_lightcurve_and_cutouts(client, ids):
    sid = ids["source"]
    data = client.get(f"/sources/{sid}.json").json()
    assert data["source"]["source_id"] == sid and data["source"]["bands"]
    points = data["lightcurve"]
    assert {p["kind"] for p in points} <= {"blind", "forced", "monitor", "bin"}
    assert all(p["int_flux_err"] is None or p["int_flux_err"] > 0 for p in points)
    assert data["resolutions"] == [120.0]  # the fixture compacted old points
    assert any(p["kind"] == "bin" for p in points)
    rebinned = client.get(f"/sources/{sid}/lightcurve.json?resolution=600").json()["points"]
    assert {p["resolution_s"] for p in rebinned} <= {0.0, 600.0}
    lc_csv = client.get(f"/sources/{sid}/lightcurve.csv")
    assert lc_csv.headers["content-type"].startswith("text/csv")
    assert "resolution_s" in lc_csv.text.splitlines()[0]
    html = client.get(f"/sources/{sid}").text
    assert 'id="resolution"' in html and "plot-lightcurve" in html
    for cut in data["cutouts"]:
        png = client.get(cut["url"])
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get("/sources/424242").status_code == 404


def test_etav_data(client):
    data = client.get("/etav.json?band=0").json()
    n = len(data["source_id"])
    assert n > 0 and all(len(data[k]) == n for k in ("eta", "v", "band", "n"))
    assert set(data["band"]) == {0} and min(data["eta"]) > 0
    assert client.get("/etav.csv").text.startswith("source_id,band,eta,v,n")


def test_etav_derived_thresholds_in_the_json_twin(client):
    import numpy as np

    from trapline.pipeline.thresholds import fit_log_gaussian

    run = client.get("/etav.json").json()
    assert run["use"] == "run"
    assert (run["eta_threshold"], run["v_threshold"]) == (
        run["run_thresholds"]["eta_threshold"], run["run_thresholds"]["v_threshold"])
    fit = run["derived"]
    enough = np.array(run["n"]) >= run["run_thresholds"]["min_points"]
    assert fit["n_sources"] == enough.sum() > 3
    for key, col in (("log_eta", "eta"), ("log_v", "v")):
        mu, sigma = fit_log_gaussian(np.array(run[col])[enough])
        assert (fit[key]["mu"], fit[key]["sigma"]) == pytest.approx((mu, sigma), rel=1e-12)
    assert fit["eta_threshold"] == pytest.approx(
        10 ** (fit["log_eta"]["mu"] + 2 * fit["log_eta"]["sigma"]), rel=1e-12)
    three = client.get("/etav.json?use=derived&n_sigma=3").json()
    assert three["use"] == "derived" and three["derived"]["n_sigma"] == 3
    assert three["eta_threshold"] == pytest.approx(
        10 ** (fit["log_eta"]["mu"] + 3 * fit["log_eta"]["sigma"]), rel=1e-12)
    assert three["v_threshold"] == pytest.approx(
        10 ** (fit["log_v"]["mu"] + 3 * fit["log_v"]["sigma"]), rel=1e-12)
    assert three["run_thresholds"] == run["run_thresholds"]
    # a typed threshold still wins over either default
    assert client.get("/etav.json?use=derived&eta=7").json()["eta_threshold"] == 7
    assert client.get("/etav.json?use=fitted").status_code == 422


def test_candidates_newest_first(client):
    rows = client.get("/candidates.json?per_page=500").json()["rows"]
    times = [r["time_mjd"] for r in rows]
    assert times == sorted(times, reverse=True)
    kinds = {r["kind"] for r in client.get("/candidates.json?kind=new").json()["rows"]}
    assert kinds <= {"new"}


def test_cone_search(client):
    src = client.get("/sources.json").json()["rows"][0]
    found = client.get(f"/cone.json?ra={src['ra']}&dec={src['dec']}&radius=0.01").json()
    assert found["rows"][0]["source_id"] == src["source_id"]
    assert found["rows"][0]["distance_deg"] == pytest.approx(0, abs=1e-9)
    assert client.get("/cone.json?ra=0&dec=-80&radius=0.01").json()["total"] == 0


@pytest.mark.parametrize("table", ["images", "sources", "candidates"])
def test_csv_and_json_downloads(client, table):
    page = client.get(f"/{table}.csv")
    assert page.status_code == 200 and "attachment" in page.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(page.text)))
    assert len(rows) == len(client.get(f"/{table}.json").json()["rows"])
    whole = client.get(f"/download/{table}.csv")
    assert whole.status_code == 200
    full = list(csv.DictReader(io.StringIO(whole.text)))
    as_json = client.get(f"/download/{table}.json").json()
    assert len(full) == len(as_json) > 0
    assert client.get("/download/secrets.csv").status_code == 404


def test_openapi_description(client):
    spec = client.get("/openapi.json").json()
    for path in ("/", "/images", "/sources", "/sources/{source_id}", "/etav", "/candidates",
                 "/cone", "/monitors", "/monitors/{monitor_id}", "/download/{table}"):
        assert path in spec["paths"], path


def test_monitor_writes_need_the_token(client):
    entry = {"name": "GRB test", "ra": 150.1, "dec": 30.05}
    assert client.post("/monitors", json=entry).status_code == 401
    bad = client.post("/monitors", json=entry, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    ok = client.post("/monitors", json=entry, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 201
    mid = ok.json()["monitor_id"]
    assert mid in {m["monitor_id"] for m in client.get("/monitors.json").json()["rows"]}
    invalid = client.post("/monitors", json={"name": "", "ra": 400, "dec": 0},
                          headers={"X-Trapline-Token": TOKEN})
    assert invalid.status_code == 422
    assert client.delete(f"/monitors/{mid}").status_code == 401
    assert client.delete(f"/monitors/{mid}", headers={"X-Trapline-Token": TOKEN}).status_code == 200
    assert client.delete(f"/monitors/{mid}", headers={"X-Trapline-Token": TOKEN}).status_code == 404
    assert client.get("/monitors.json").json()["total"] == 0


def test_monitor_form_flow(client):
    no = client.post("/monitors", data={"name": "a", "ra": "150", "dec": "30"},
                     follow_redirects=False)
    assert no.status_code == 303 and "error=" in no.headers["location"]
    yes = client.post("/monitors", data={"name": "a", "ra": "150", "dec": "30", "token": TOKEN})
    assert yes.status_code == 200 and "added a as monitor" in yes.text
    mid = client.get("/monitors.json").json()["rows"][-1]["monitor_id"]
    gone = client.post(f"/monitors/{mid}/delete", data={"token": TOKEN})
    assert f"removed monitor {mid}" in gone.text


def test_writes_refused_without_a_configured_token(web_run, monkeypatch):
    from fastapi.testclient import TestClient

    from trapline.web import create_app

    monkeypatch.delenv("TRAPLINE_TOKEN", raising=False)
    with TestClient(create_app(web_run)) as client:
        answer = client.post("/monitors", json={"name": "x", "ra": 1, "dec": 1},
                             headers={"Authorization": "Bearer anything"})
        assert answer.status_code == 403
        assert "read only" in client.get("/monitors").text.lower()
    monkeypatch.setenv("TRAPLINE_TOKEN", "from-env")
    with TestClient(create_app(web_run)) as client:
        assert client.app.state.settings.token == "from-env"


def test_serve_command_is_wired(web_run):
    """``trapline serve`` serves the stored run over HTTP, read only without a token."""
    import json
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    import trapline
    from trapline.cli import build_parser

    defaults = build_parser().parse_args(["serve"])
    assert defaults.host == "127.0.0.1" and defaults.port == 8000
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(trapline.__file__).resolve().parents[1])}
    env.pop("TRAPLINE_TOKEN", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "trapline.cli", "serve", "--db", web_run, "--port", str(port),
         "--log-level", "warning"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/images.json",
                                            timeout=5) as response:
                    images = json.load(response)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert len(images["rows"]) == 12  # 6 epochs x 2 bands
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert err.splitlines()[0] == f"trapline serve: http://127.0.0.1:{port}/ (read only (no token))"
