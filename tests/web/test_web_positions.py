"""Positions typed on the web: sexagesimal and J-names, shown beside degrees."""

from __future__ import annotations

import pytest

from trapline.positions import jname, sexagesimal

TOKEN = "test-token-123"  # as in conftest.py


@pytest.fixture
def first_source(client):
    return client.get("/sources.json?per_page=1").json()["rows"][0]


def test_cone_search_by_sexagesimal_and_jname(client, first_source):
    ra, dec = first_source["ra"], first_source["dec"]
    by_degrees = client.get(f"/cone.json?ra={ra}&dec={dec}&radius=0.05").json()
    assert by_degrees["rows"][0]["source_id"] == first_source["source_id"]
    ra_text, dec_text = sexagesimal(ra, dec, 4).split()
    for params in [{"ra": ra_text, "dec": dec_text}, {"pos": jname(ra, dec, 3)},
                   {"pos": sexagesimal(ra, dec, 4)}]:
        found = client.get("/cone.json", params={**params, "radius": 0.05}).json()
        assert [r["source_id"] for r in found["rows"]] == [
            r["source_id"] for r in by_degrees["rows"]], params
        assert found["position"] == sexagesimal(found["ra"], found["dec"])
    params = {"pos": jname(ra, dec, 3), "radius": 0.05}
    centre = client.get("/cone.json", params=params).json()["position"]
    page = client.get("/cone", params=params).text
    assert f'id="cone-sexagesimal">{centre}<' in page
    assert sexagesimal(ra, dec) in page  # each row's position beside its degrees


def test_sources_filter_and_source_page_show_sexagesimal(client, first_source):
    ra, dec = first_source["ra"], first_source["dec"]
    ra_text, dec_text = sexagesimal(ra, dec, 4).split()
    rows = client.get("/sources.json", params={"ra": ra_text, "dec": dec_text,
                                               "radius": 0.01}).json()["rows"]
    assert first_source["source_id"] in {r["source_id"] for r in rows}
    page = client.get(f"/sources/{first_source['source_id']}").text
    assert f'id="source-sexagesimal">{sexagesimal(ra, dec)}<' in page


def test_unreadable_position_is_422(client):
    response = client.get("/cone.json", params={"pos": "J99"})
    assert response.status_code == 422 and "J-name" in response.json()["detail"]
    assert client.get("/cone.json", params={"ra": "10:00:00"}).status_code == 422


def test_monitor_added_by_jname_and_sexagesimal(client):
    headers = {"X-Trapline-Token": TOKEN}
    made = client.post("/monitors", json={"name": "by name", "position": "J100006.0+301200"},
                       headers=headers)
    assert made.status_code == 201, made.text
    assert (made.json()["ra"], made.json()["dec"]) == pytest.approx((150.025, 30.2))
    parts = client.post("/monitors", json={"name": "by parts", "ra": "10:00:06",
                                           "dec": "-30:12:00"}, headers=headers)
    assert parts.status_code == 201
    assert (parts.json()["ra"], parts.json()["dec"]) == pytest.approx((150.025, -30.2))
    form = client.post("/monitors", data={"name": "form", "position": "10:00:06 +30:12:00",
                                          "token": TOKEN}, follow_redirects=False)
    assert form.status_code == 303 and "added" in form.headers["location"]
    bad = client.post("/monitors", json={"name": "bad", "position": "J99"}, headers=headers)
    assert bad.status_code == 422 and "J-name" in bad.text
    page = client.get("/monitors").text
    assert sexagesimal(150.025, -30.2) in page
    for entry in client.get("/monitors.json").json()["rows"]:
        if entry["name"] in ("by name", "by parts", "form"):
            client.delete(f"/monitors/{entry['monitor_id']}", headers=headers)
