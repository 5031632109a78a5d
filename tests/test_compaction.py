"""Multi-resolution lightcurves: compaction of known series into time bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, insert, select

import trapline.api
from trapline.storage import Store, models
from trapline.storage.compaction import Tier, bin_start, compact, compact_pass
from trapline.storage.lightcurves import lightcurve, variability

T0 = 61000.0  # MJD of the first point
CADENCE_S = 2.0
N_POINTS = 3600  # two hours at 2 s
LADDER = [Tier(0, 600), Tier(60, 3600), Tier(600, 0)]


def fill(store: Store, n_sources: int = 2, bands: int = 2, seed: int = 0,
         candidates: list[tuple[int, float]] = ()) -> pd.DataFrame:
    """Images every CADENCE_S and one measurement per source and band in each; returns
    the measurements written (a known series)."""
    rng = np.random.default_rng(seed)
    times = T0 + np.arange(N_POINTS) * CADENCE_S / 86400
    with store.engine.begin() as conn:
        images = [dict(image_id=i + 1, image_key=f"k{i}", path=f"img{i}", time_mjd=t,
                       band=b, accepted=True, n_blind=0, n_forced=0, n_monitor=0,
                       processed_at=pd.Timestamp("2026-11-28", tz="UTC"))
                  for i, (t, b) in enumerate((t, b) for t in times for b in range(bands))]
        conn.execute(insert(models.Image), images)
        conn.execute(insert(models.Source), [
            dict(source_id=s + 1, ra=10.0 + s, dec=20.0, ra_err=1e-4, dec_err=1e-4,
                 first_time_mjd=T0, last_time_mjd=times[-1], n_blind=N_POINTS, n_forced=0,
                 is_monitor=False, healpix=0) for s in range(n_sources)])
        rows = []
        for img in images:
            for s in range(n_sources):
                flux = 1.0 + 0.3 * np.sin(img["time_mjd"] * 5000 + s) + rng.normal(0, 0.05)
                rows.append(dict(
                    source_id=s + 1, image_id=img["image_id"], time_mjd=img["time_mjd"],
                    band=img["band"], kind="blind" if rng.random() < 0.8 else "forced",
                    int_flux=flux, int_flux_err=0.05 + 0.01 * rng.random(),
                    peak_flux=flux * 0.9, peak_flux_err=0.04 + 0.01 * rng.random()))
        conn.execute(insert(models.Measurement), rows)
        for source_id, t in candidates:
            conn.execute(insert(models.Candidate).values(
                source_id=source_id, image_id=1, kind="new", level="likely", band=0,
                time_mjd=t, significance=10.0))
    return pd.DataFrame(rows)


@pytest.fixture
def filled(store):
    return store, fill(store)


def _count(store, model) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def test_compaction_gives_the_expected_bins(filled):
    store, points = filled
    now = points.time_mjd.max()
    passes = compact(store.engine, LADDER, batch_rows=5000, candidate_window_s=0)
    assert passes and all(p.did_work for p in passes)
    with store.engine.connect() as conn:
        bins = pd.read_sql(select(models.LightcurveBin), conn)
        raw = pd.read_sql(select(models.Measurement), conn)
    # Raw points younger than 600 s stay; nothing older.
    assert (raw.time_mjd >= now - 600 / 86400).all()
    assert len(raw) == (points.time_mjd >= now - 600 / 86400).sum()
    # 60 s bins hold what is between 600 s and 3600 s (+ one bin) old; 600 s bins the rest.
    fine, coarse = bins[bins.resolution_s == 60], bins[bins.resolution_s == 600]
    assert len(fine) and len(coarse)
    assert (fine.bin_start_mjd >= now - (3600 + 60) / 86400 - 1e-9).all()
    # Every point is in exactly one place: per 600 s window, the raw points, 60 s bins
    # and 600 s bin inside it add up to the points written there (a window straddling a
    # tier's cutoff is shared between tiers), sums included.
    assert raw.shape[0] + bins.n.sum() == len(points)
    raw_w = 1 / raw.int_flux_err**2
    for start in np.unique(bin_start(points.time_mjd, 600))[::3]:
        for source, band in ((1, 0), (2, 1)):
            def inside(frame, t, source=source, band=band, start=start):
                return ((frame.source_id == source) & (frame.band == band)
                        & (bin_start(t, 600) == start))

            sel = points[inside(points, points.time_mjd)]
            b = bins[inside(bins, bins.bin_start_mjd + 1e-9)]
            r = inside(raw, raw.time_mjd)
            assert b.n.sum() + r.sum() == len(sel)
            w = 1 / sel.int_flux_err**2
            assert b.sw_int.sum() + raw_w[r].sum() == pytest.approx(w.sum(), rel=1e-12)
            assert b.swf_int.sum() + (raw_w * raw.int_flux)[r].sum() == pytest.approx(
                (w * sel.int_flux).sum(), rel=1e-12)
            if len(b) and r.sum() == 0:
                assert b.min_peak.min() == pytest.approx(sel.peak_flux.min())
                assert b.n_forced.sum() == (sel.kind == "forced").sum()
    # Bin extents lie inside their bins.
    width = bins.resolution_s / 86400
    assert (bins.t_min_mjd >= bins.bin_start_mjd - 1e-9).all()
    assert (bins.t_max_mjd < bins.bin_start_mjd + width).all()


def test_eta_and_v_unchanged_by_compaction(filled):
    store, _ = filled
    with store.engine.connect() as conn:
        before = {(s, b): variability(conn, s, b) for s in (1, 2) for b in (0, 1)}
    compact(store.engine, LADDER, batch_rows=5000, candidate_window_s=0)
    assert _count(store, models.LightcurveBin) > 0
    with store.engine.connect() as conn:
        for key, expected in before.items():
            got = variability(conn, *key)
            for name, value in expected.items():
                assert got[name] == pytest.approx(value, rel=1e-9), (key, name)


def test_interrupted_compaction_resumes_without_loss(filled, monkeypatch):
    """A pass that fails half-way leaves nothing behind; the next passes finish the job
    with the same result as an uninterrupted run."""
    store, points = filled
    import trapline.storage.compaction as compaction

    real = compaction._write_bins
    calls = {"n": 0}

    def failing(conn, bins, resolution_s):
        calls["n"] += 1
        real(conn, bins, resolution_s)
        if calls["n"] == 3:
            raise RuntimeError("power cut")

    monkeypatch.setattr(compaction, "_write_bins", failing)
    with pytest.raises(RuntimeError):
        compact(store.engine, LADDER, batch_rows=1000, candidate_window_s=0)
    monkeypatch.setattr(compaction, "_write_bins", real)
    compact(store.engine, LADDER, batch_rows=1000, candidate_window_s=0)
    with store.engine.connect() as conn:
        bins = pd.read_sql(select(models.LightcurveBin), conn)
        raw = _count(store, models.Measurement)
    assert raw + bins.n.sum() == len(points)
    w = 1 / points.int_flux_err**2
    old = points.time_mjd < points.time_mjd.max() - 600 / 86400
    assert bins.sw_int.sum() == pytest.approx(w[old].sum(), rel=1e-12)
    # Running again finds nothing to do: idempotent.
    assert not compact_pass(store.engine, LADDER, batch_rows=1000).did_work


def test_candidate_windows_and_monitors_stay_raw(store):
    t_cand = T0 + 1000 * CADENCE_S / 86400
    points = fill(store, candidates=[(1, t_cand)])
    compact(store.engine, LADDER, batch_rows=5000, candidate_window_s=120)
    with store.engine.connect() as conn:
        raw = pd.read_sql(select(models.Measurement), conn)
    near = points[(points.source_id == 1)
                  & (np.abs(points.time_mjd - t_cand) * 86400 <= 120)]
    assert len(near) > 100
    assert set(near.image_id) <= set(raw[raw.source_id == 1].image_id)
    # The other source has no candidate: its points of that time are binned.
    other = raw[(raw.source_id == 2) & (np.abs(raw.time_mjd - t_cand) * 86400 <= 120)]
    assert len(other) == 0


def test_lightcurve_merges_tiers(filled):
    store, points = filled
    compact(store.engine, LADDER, batch_rows=5000, candidate_window_s=0)
    with store.engine.connect() as conn:
        lc = lightcurve(conn, 1, band=0)
        coarse = lightcurve(conn, 1, band=0, resolution_s=600)
    assert set(lc.resolution_s) == {0.0, 60.0, 600.0}
    assert lc.time_mjd.is_monotonic_increasing
    assert lc.n.sum() == ((points.source_id == 1) & (points.band == 0)).sum()
    assert (lc[lc.resolution_s > 0].kind == "bin").all()
    # Re-binned to 600 s: every point is a 600 s bin, nothing lost, weighted means right.
    assert set(coarse.resolution_s) == {600.0}
    assert coarse.n.sum() == lc.n.sum()
    sel = points[(points.source_id == 1) & (points.band == 0)]
    last = sel[bin_start(sel.time_mjd, 600) == bin_start(sel.time_mjd.max(), 600)]
    w = 1 / last.int_flux_err**2
    assert coarse.int_flux.iloc[-1] == pytest.approx((w * last.int_flux).sum() / w.sum())


def test_compact_command_and_api(tmp_path, capsys):
    from trapline.cli import main

    url = f"sqlite:///{tmp_path / 'lc.sqlite'}"
    with Store(url) as store:
        store.upgrade()
        fill(store, n_sources=1, bands=1)
    config = tmp_path / "ladder.toml"
    config.write_text("[lightcurves]\ntiers = [[0, 600], [60, 3600], [600, 0]]\n"
                      "candidate_window_s = 0\n")
    assert main(["compact", "--db", url, "--config", str(config)]) == 0
    assert "rows down-sampled" in capsys.readouterr().out
    run = trapline.api.open(url)
    lc = run.lightcurve(1)
    assert {0.0, 60.0, 600.0} == set(lc.resolution_s)
    assert run.lightcurve_variability(1, 0)["n"] == N_POINTS
    bad = tmp_path / "bad.toml"
    bad.write_text("[lightcurves]\ntiers = [[60, 600], [0, 0]]\n")
    assert main(["compact", "--db", url, "--config", str(bad)]) == 2


def test_rebinning_a_source_without_bins(store):
    """Nothing compacted yet: asked for a coarser resolution, the raw points are binned."""
    points = fill(store, n_sources=1, bands=1)
    with store.engine.connect() as conn:
        lc = lightcurve(conn, 1, resolution_s=600)
    assert set(lc.resolution_s) == {600.0} and lc.n.sum() == len(points)
