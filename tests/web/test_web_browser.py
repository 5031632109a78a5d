"""The web interface in a real browser: Playwright driving Debian's Chromium
(``/usr/bin/chromium``; never ``playwright install``). Screenshots go to
``tests/artifacts/web/`` (git-ignored) for review."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from trapline.positions import sexagesimal

TOKEN = "test-token-123"  # as in conftest.py
CHROMIUM = os.environ.get("TRAPLINE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "web"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A page that fails the test on JavaScript errors or requests leaving the host."""
    with checked_page(browser, live_server) as page:
        yield page


@contextlib.contextmanager
def checked_page(browser, live_server: str):
    """A page on ``live_server`` that fails on JavaScript errors or requests leaving it."""
    context = browser.new_context(viewport={"width": 1300, "height": 900},
                                  base_url=live_server)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda req: outside.append(req.url)
            if not req.url.startswith(live_server) and not req.url.startswith("data:") else None)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield page
    context.close()
    assert not outside, f"requests outside the server: {outside}"
    real = [e for e in errors if "404" not in e]  # 404s are checked by the HTTP tests
    assert not real, f"JavaScript errors: {real}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_every_page_opens(page):
    for path, heading in [("/", "Run overview"), ("/images", "Images"), ("/sources", "Sources"),
                          ("/etav", "η–V"), ("/candidates", "Transient candidates"),
                          ("/cone", "Cone search"), ("/monitors", "Monitoring list"),
                          ("/api", "JSON API")]:
        page.goto(path)
        sync_api.expect(page.locator("h1")).to_contain_text(heading)
        shot(page, "page" + path.replace("/", "_"))
    page.goto("/images")
    page.locator("#images tbody a").first.click()
    sync_api.expect(page.locator("h1")).to_contain_text("Image")
    sync_api.expect(page.locator("#thumbnail")).to_be_visible()
    page.wait_for_function("() => document.getElementById('thumbnail').naturalWidth > 0")
    shot(page, "image")


def test_main_flow_overview_candidate_source_lightcurve_etav(page):
    page.goto("/")
    page.wait_for_selector("#plot-images .main-svg")
    page.wait_for_selector("#plot-rms .main-svg")
    shot(page, "01_overview")
    page.click("header nav >> text=Candidates")
    sync_api.expect(page.locator("#candidates tbody tr").first).to_be_visible()
    shot(page, "02_candidates")
    link = page.locator("#candidates a.source-link").first
    source_id = link.inner_text()
    link.click()
    sync_api.expect(page.locator("h1")).to_contain_text(f"Source {source_id}")
    page.wait_for_selector("#plot-lightcurve .main-svg")
    assert page.locator("#plot-lightcurve .scatterlayer .trace").count() >= 2
    legend = page.locator("#plot-lightcurve .legendtext").all_text_contents()
    assert any("bin" in t for t in legend) and any("blind" in t for t in legend)
    shot(page, "03_source")
    page.select_option("#flux-kind", "peak")
    sync_api.expect(page.locator("#plot-lightcurve .ytitle")).to_contain_text("peak")
    page.select_option("#resolution", "120.0")
    page.wait_for_url(re.compile(r"resolution=120"))
    page.wait_for_selector("#plot-lightcurve .main-svg")
    shot(page, "04_lightcurve_binned")
    page.click("text=back to the η–V plane")
    page.wait_for_selector("#plot-etav .main-svg")
    sync_api.expect(page.locator("#etav-count")).to_contain_text("points")
    shot(page, "05_etav")


def test_etav_thresholds_and_click_through(page):
    page.goto("/etav")
    page.wait_for_selector("#plot-etav .main-svg")
    sync_api.expect(page.locator("#etav-count")).to_contain_text("above")
    page.fill("#eta-threshold", "1e-9")
    page.fill("#v-threshold", "1e-9")
    sync_api.expect(page.locator("#etav-count")).to_contain_text(re.compile(r", [1-9]\d* above"))
    n_all = page.locator("#etav-above tbody tr").count()
    page.fill("#eta-threshold", "1e12")
    sync_api.expect(page.locator("#etav-count")).to_contain_text(re.compile(r", 0 above"))
    assert n_all > 0 and page.locator("#etav-above tbody tr").count() == 0
    page.select_option("#etav-band", "1")
    sync_api.expect(page).to_have_url(re.compile(r"band=1"))
    page.fill("#eta-threshold", "1e-9")
    page.locator("#etav-above tbody a").first.click()
    sync_api.expect(page.locator("h1")).to_contain_text("Source")


def test_change_a_filter(page):
    page.goto("/sources")
    total = int(re.search(r"\((\d+) rows\)", page.locator(".pager").inner_text()).group(1))
    page.select_option("select[name=band]", "0")
    page.fill("input[name=n_min]", "6")
    page.click("#source-filters button[type=submit]")
    page.wait_for_url(re.compile(r"band=0"))
    rows = page.locator("#sources tbody tr")
    bands = {rows.nth(i).locator("td").nth(1).inner_text() for i in range(rows.count())}
    assert bands == {"0"}
    filtered = int(re.search(r"\((\d+) rows\)", page.locator(".pager").inner_text()).group(1))
    assert filtered < total
    page.click("#sources th >> text=η")
    page.wait_for_url(re.compile(r"sort=eta_int"))
    shot(page, "sources_filtered")


def test_monitoring_list_add_and_remove_with_and_without_token(page):
    page.goto("/monitors")
    form = page.locator("#add-monitor")
    form.locator("input[name=name]").fill("browser test")
    form.locator("input[name=ra]").fill("150.2")
    form.locator("input[name=dec]").fill("30.1")
    form.locator("button").click()
    sync_api.expect(page.locator("#flash")).to_contain_text("valid token")
    assert page.locator("#monitors td.name", has_text="browser test").count() == 0
    form = page.locator("#add-monitor")
    form.locator("input[name=name]").fill("browser test")
    form.locator("input[name=ra]").fill("150.2")
    form.locator("input[name=dec]").fill("30.1")
    form.locator("input[name=token]").fill(TOKEN)
    form.locator("button").click()
    sync_api.expect(page.locator("#flash")).to_contain_text("added browser test")
    row = page.locator("#monitors tr", has=page.locator("td.name", has_text="browser test"))
    sync_api.expect(row).to_have_count(1)
    shot(page, "monitors_added")
    row.locator("button").click()  # no token
    sync_api.expect(page.locator("#flash")).to_contain_text("valid token")
    row = page.locator("#monitors tr", has=page.locator("td.name", has_text="browser test"))
    row.locator("input[name=token]").fill(TOKEN)
    row.locator("button").click()
    sync_api.expect(page.locator("#flash")).to_contain_text("removed monitor")
    sync_api.expect(page.locator("#monitors td.name", has_text="browser test")).to_have_count(0)


def test_etav_histograms_with_fitted_gaussians_and_derived_thresholds(page):
    page.goto("/etav")
    page.wait_for_selector("#plot-etav .main-svg")
    # marginal histograms: log eta on top (x, y2), log V on the right (x2, y), each a
    # step histogram and its fitted Gaussian
    for subplot in ("xy2", "x2y"):
        traces = page.locator(f"#plot-etav .subplot.{subplot} .scatterlayer .trace")
        sync_api.expect(traces).to_have_count(2)
        assert page.locator(f"#plot-etav .subplot.{subplot} .scatterlayer path.js-line"
                            ).count() == 2
    sync_api.expect(page.locator("#etav-fit")).to_contain_text("log η")
    run_eta = float(page.input_value("#eta-threshold"))
    data = page.evaluate("() => fetch('/etav?format=json&use=derived&n_sigma=3')"
                         ".then((r) => r.json())")
    page.fill("#n-sigma", "3")
    page.select_option("#threshold-use", "derived")
    sync_api.expect(page.locator("#eta-threshold")).to_have_value(str(data["eta_threshold"]))
    assert float(page.input_value("#eta-threshold")) != run_eta
    sync_api.expect(page).to_have_url(re.compile(r"use=derived"))
    shot(page, "etav_derived")


def test_live_page_shows_a_new_candidate_without_reloading(browser, web_run, server, tmp_path):
    """The live page polls: a candidate written after it opened appears by itself."""
    from sqlalchemy import create_engine, func, insert, select

    from trapline.storage import models

    copy = tmp_path / "run.sqlite"  # this test writes: keep the shared run untouched
    shutil.copy(web_run.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    with server(url) as base, checked_page(browser, base) as page:
        page.goto("/")
        page.click("header nav >> text=Live")
        sync_api.expect(page.locator("h1")).to_contain_text("Live candidates")
        rows = page.locator("#live tbody tr[data-id]")
        before = rows.count()
        assert before > 0
        page.evaluate("() => { window.notReloaded = true; }")
        engine = create_engine(url)
        with engine.begin() as conn:
            C = models.Candidate
            newest = conn.execute(select(C).order_by(C.time_mjd.desc())).first()
            source = conn.execute(select(models.Source.source_id, models.Source.ra,
                                         models.Source.dec)
                                  .where(models.Source.source_id != newest.source_id)).first()
            new_id = conn.execute(select(func.max(C.candidate_id))).scalar() + 1
            conn.execute(insert(C).values(
                candidate_id=new_id, source_id=source.source_id, image_id=newest.image_id,
                kind="new", level="alert", band=newest.band,
                time_mjd=newest.time_mjd + 1.0 / 86400, significance=42.5,
                flux=0.1, limit=0.01))
        engine.dispose()
        written = time.monotonic()
        first = page.locator("#live tbody tr").first
        sync_api.expect(first).to_have_attribute("data-id", str(new_id), timeout=10_000)
        waited = time.monotonic() - written
        assert waited < 8.0
        assert page.evaluate("() => window.notReloaded") is True  # updated in place
        cells = first.locator("td").all_inner_texts()
        assert cells[0] == str(new_id) and cells[2] == "new" and cells[3] == "alert"
        assert cells[6] == "42.5"
        assert cells[9] == sexagesimal(source.ra, source.dec)
        assert "fresh" in (first.get_attribute("class") or "")
        assert rows.count() == before + 1
        first.locator("a.source-link").click()
        sync_api.expect(page.locator("h1")).to_contain_text(f"Source {source.source_id}")
        shot(page, "live")
