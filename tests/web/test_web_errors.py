"""Errors answer with a valid body: an HTML page for a browser, JSON for API clients."""

from __future__ import annotations

import json

import pytest

TOKEN = "test-token-123"  # as in conftest.py
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["ra", "dec"])
def test_nan_or_infinity_in_a_json_body_is_422_with_json(client, field, value):
    body = {"name": "x", "ra": 10.0, "dec": 5.0}
    text = json.dumps(body).replace(f'"{field}": {body[field]}', f'"{field}": {value}')
    assert value in text
    response = client.post("/monitors", content=text, headers={
        "X-Trapline-Token": TOKEN, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert value in response.json()["detail"]  # says which constant is not JSON


def test_invalid_fields_are_422_with_json_without_the_input(client):
    response = client.post("/monitors", json={"name": "x", "ra": 400.0, "dec": 5.0},
                           headers={"X-Trapline-Token": TOKEN})
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["ra"] and "360" in detail["msg"]


def test_a_browser_gets_html_error_pages(client):
    for path, status in [("/sources/424242", 404), ("/no/such/page", 404),
                         ("/sources?flux_min=abc", 422), ("/images/999999", 404)]:
        response = client.get(path, headers=HTML)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html"), path
        assert 'id="error-heading">' in response.text and f"({status})" in response.text
    page = client.get("/sources?flux_min=abc", headers=HTML).text
    assert "flux_min" in page


def test_api_clients_get_json_errors(client):
    for path, headers in [("/sources/424242", {}), ("/sources/424242.json", HTML),
                          ("/sources/424242?format=json", HTML),
                          ("/sources.json?flux_min=abc", HTML)]:
        response = client.get(path, headers=headers)
        assert response.status_code in (404, 422), path
        assert response.headers["content-type"] == "application/json", path
        assert "detail" in response.json()
