"""What the web interface shows of trustworthy candidates: the precovery points of a new
source as their own kind, an image's calibration and its vetoed or rejected new
detections, and one-to-many splits as a relation on both sources' pages."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_storage import make_result

from trapline.records import Forks
from trapline.storage import Store

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A stored run with new sources, not compacted (every precovery point raw)."""
    from fastapi.testclient import TestClient

    from trapline.pipeline.config import PipelineConfig
    from trapline.run import run_files
    from trapline.simulate import SimulationConfig, write_series
    from trapline.web import create_app

    folder = tmp_path_factory.mktemp("trust")
    sim = SimulationConfig(seed=11, epochs=6, bands=2, size=256, n_steady=15, n_variable=2,
                           n_transient=3, n_fading=0, transient_start_epoch=3,
                           transient_snr=(20, 60))
    series = write_series(sim, folder / "series")
    url = f"sqlite:///{folder / 'run.sqlite'}"
    config = PipelineConfig()
    config.run.workers = 1
    run_files([str(series.out_dir)], url, config)
    with TestClient(create_app(url, None, use_env_token=False)) as client:
        yield client


def _new_candidate(client) -> dict:
    candidates = client.get("/candidates.json").json()
    rows = candidates["rows"] if isinstance(candidates, dict) else candidates
    new = [c for c in rows if c["kind"] == "new"]
    assert new, "the web run has a new source"
    return new[0]


def test_a_new_source_page_shows_its_precovery_points(client):
    c = _new_candidate(client)
    page = client.get(f"/sources/{c['source_id']}.json").json()
    points = page["lightcurve"]
    first = min(p["time_mjd"] for p in points if p["kind"] == "blind")
    before = [p for p in points if p["time_mjd"] < first]
    assert before and {p["kind"] for p in before} == {"precovery"}
    (shown,) = [x for x in page["source"]["candidates"] if x["kind"] == "new"]
    assert shown["n_precovery"] == len([p for p in before if p["band"] == shown["band"]])
    assert shown["rise_sigma"] == pytest.approx(shown["significance"])
    html = client.get(f"/sources/{c['source_id']}").text
    assert "precovery flux" in html and "before detection" in html


def test_an_image_page_shows_its_calibration_and_candidates(client):
    c = _new_candidate(client)
    page = client.get(f"/images/{c['image_id']}.json").json()
    image = page["image"]
    assert image["flux_scale"] == pytest.approx(1.0, abs=0.05)
    assert image["n_flux_calibrators"] >= 3
    assert any(x["source_id"] == c["source_id"] and x["kind"] == "new"
               for x in page["candidates"])
    html = client.get(f"/images/{c['image_id']}").text
    assert 'id="calibration"' in html and "reference sources" in html
    assert 'id="image-candidates"' in html


def test_forks_are_shown_on_both_sources(tmp_path):
    """A one-to-many split stored as a relation appears on the parent's and the new
    lightcurve's pages (and in the forks export)."""
    from fastapi.testclient import TestClient

    from trapline.web import create_app

    url = f"sqlite:///{tmp_path / 'forks.sqlite'}"
    with Store(url) as store:
        store.upgrade()
        store.write(make_result("a", [1, 2, 3], time_mjd=60000.5))
        second = make_result("b", [1, 4], time_mjd=60000.6, seed=1)
        store.write(replace(second, forks=Forks(source_id=np.array([4]),
                                                parent_id=np.array([1]))))
    with TestClient(create_app(url, None, use_env_token=False)) as client:
        child = client.get("/sources/4.json").json()["source"]
        assert child["forked_from"]["parent_id"] == 1
        parent = client.get("/sources/1.json").json()["source"]
        assert [f["source_id"] for f in parent["forks"]] == [4]
        assert 'id="forked-from"' in client.get("/sources/4").text
        assert 'href="/sources/4"' in client.get("/sources/1").text
        forks = client.get("/download/forks.json").json()
        rows = forks["rows"] if isinstance(forks, dict) else forks
        assert [(r["source_id"], r["parent_id"]) for r in rows] == [(4, 1)]


def test_a_new_source_keeps_stamps_that_outlive_its_images(client, tmp_path):
    """The candidate keeps cutouts of its detection and earlier images in the database:
    served as pictures by the source page without any image file."""
    c = _new_candidate(client)
    page = client.get(f"/sources/{c['source_id']}.json").json()
    stamps = page["stamps"]
    labels = [st["label"] for st in stamps]
    assert labels.count("detection") == 1 and 1 <= labels.count("before") <= 2
    detection = next(st for st in stamps if st["label"] == "detection")
    assert detection["time_mjd"] == pytest.approx(c["time_mjd"])
    png = client.get(detection["url"])
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'id="stamps"' in client.get(f"/sources/{c['source_id']}").text
    assert client.get(f"/sources/{c['source_id']}/stamp/999999.png").status_code == 404
