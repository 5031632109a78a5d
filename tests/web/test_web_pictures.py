"""Vetting pictures: labelled cutouts (first detection, peak, newest), image paths
that survive serving from another folder, and bounded thumbnails of large images."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("PIL", reason="Pillow draws the pictures")


def _client(url, **kw):
    from fastapi.testclient import TestClient

    from trapline.web import create_app

    return TestClient(create_app(url, use_env_token=False, **kw))


def test_cutouts_show_first_detection_peak_and_newest(client):
    cands = client.get("/candidates.json?kind=new&per_page=500").json()["rows"]
    assert cands
    for source_id in {c["source_id"] for c in cands}:
        data = client.get(f"/sources/{source_id}.json?per_page=500").json()
        rows = data["measurements"]["rows"]
        blind = sorted((r for r in rows if r["kind"] == "blind"), key=lambda r: r["time"])
        peak = max(rows, key=lambda r: r["peak_flux"])
        labelled = {label: c["image_id"] for c in data["cutouts"] for label in c["labels"]}
        assert labelled["first detection"] == blind[0]["image_id"]
        assert labelled["peak"] == peak["image_id"]
        newest = [c for c in data["cutouts"] if "newest" in c["labels"]]
        assert len(newest) == min(4, len(rows))
        assert len({c["image_id"] for c in data["cutouts"]}) == len(data["cutouts"])
        for c in data["cutouts"]:
            response = client.get(c["url"])
            assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
        page = client.get(f"/sources/{source_id}").text
        assert 'class="cutout-label">first detection' in page


def test_find_images_returns_absolute_paths(web_run, tmp_path, monkeypatch):
    from trapline.pipeline.inputs import find_images

    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.fits").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    for given in ("imgs", "imgs/a.fits", "imgs/*.fits"):
        assert find_images([given]) == [str(folder / "a.fits")], given


def test_relative_paths_of_older_databases_resolve_under_image_root(web_run, tmp_path):
    copy = tmp_path / "old.sqlite"
    shutil.copy(web_run.removeprefix("sqlite:///"), copy)
    with sqlite3.connect(copy) as db:
        (path,) = db.execute("select path from image where image_id=1").fetchone()
        root = os.path.dirname(os.path.dirname(path))  # the folder the run started in
        db.execute("update image set path=substr(path, ?)", (len(root) + 2,))
        (relative,) = db.execute("select path from image where image_id=1").fetchone()
    assert not os.path.isabs(relative)
    other = tmp_path / "elsewhere"
    other.mkdir()
    cwd = os.getcwd()
    os.chdir(other)  # serving from another folder
    try:
        with _client(str(copy)) as c:
            assert c.get("/images/1/thumbnail.png").status_code == 404
        with _client(str(copy), image_root=root) as c:
            response = c.get("/images/1/thumbnail.png")
            assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """An 8000x8000 float32 FITS image (256 MB) with a WCS and a beam."""
    from astropy.io import fits

    path = tmp_path_factory.mktemp("big") / "big.fits"
    data = np.zeros((8000, 8000), dtype=np.float32)
    data[::7, ::5] = 1.0  # some structure for the stretch
    header = fits.Header({"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CRVAL1": 150.0,
                          "CRVAL2": 30.0, "CRPIX1": 4000.0, "CRPIX2": 4000.0,
                          "CDELT1": -1e-4, "CDELT2": 1e-4, "BMAJ": 5e-4, "BMIN": 4e-4,
                          "BPA": 0.0})
    fits.writeto(path, data, header)
    del data
    return path


@pytest.fixture
def big_run(web_run, big_image, tmp_path):
    copy = tmp_path / "big.sqlite"
    shutil.copy(web_run.removeprefix("sqlite:///"), copy)
    with sqlite3.connect(copy) as db:
        db.execute("update image set path=? where image_id=1", (str(big_image),))
    return str(copy)


def _peak_mb(fn) -> tuple[float, float]:
    """Peak traced Python memory (MB) and wall time (s) of ``fn()``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20, time.perf_counter() - start
    finally:
        tracemalloc.stop()


def test_thumbnail_of_a_large_image_is_bounded(big_run):
    from trapline.web import pictures

    pictures._cache.items.clear()
    with _client(big_run) as c:
        def one():
            response = c.get("/images/1/thumbnail.png?size=512")
            assert response.status_code == 200 and response.content[:4] == b"\x89PNG"

        single, seconds = _peak_mb(one)
        print(f"thumbnail of 8000x8000: peak {single:.1f} MB, {seconds:.2f} s")
        assert single < 64 and seconds < 5, (single, seconds)  # the image is 256 MB
        pictures._cache.items.clear()

        def eight():
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: one(), range(8)))

        parallel, seconds = _peak_mb(eight)
        print(f"8 in parallel: peak {parallel:.1f} MB, {seconds:.2f} s")
        assert parallel < 2.5 * single + 16 and seconds < 15, (single, parallel, seconds)
        cutout = c.get("/sources/1/cutout/1.png")
        assert cutout.status_code in (200, 404)  # the source may lie off this image


def test_too_many_renders_answer_503(big_run, monkeypatch):
    from trapline.web import pictures

    monkeypatch.setattr(pictures, "RENDER_WAIT_S", 0.2)
    held = [pictures._renders.acquire(timeout=5) for _ in range(pictures.RENDERS)]
    try:
        with _client(big_run) as c:
            response = c.get("/images/1/thumbnail.png")
            assert response.status_code == 503 and response.headers["retry-after"] == "2"
    finally:
        for ok in held:
            if ok:
                pictures._renders.release()
