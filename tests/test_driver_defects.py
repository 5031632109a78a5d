"""Defects of the old runner, each reproduced: a failing plug-in counted as a storage
error, non-finite errors poisoning the sky model, a dropped write double-counted on the
rerun, decisions forgotten on resume, and pool workers outliving a killed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import assert_same_run

import trapline.api
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.decide import SkyDecider
from trapline.pipeline.measure import measure
from trapline.records import BandStatistics, DepthUpdates, Flagged, SourceStates, StoredState
from trapline.run import Driver, run_files, sort_by_time
from trapline.simulate import SimulationConfig, write_series
from trapline.storage import Store

SIM = SimulationConfig(seed=4, epochs=8, bands=1, size=192, n_steady=12, n_variable=2,
                       n_transient=1, n_fading=1, variable_snr=(30, 200))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(SIM, tmp_path_factory.mktemp("series"))


def _config() -> PipelineConfig:
    config = PipelineConfig()
    config.run.workers = 1
    return config


def _paths(series) -> list[str]:
    return sort_by_time([str(p) for p in series.images])


class Failing:
    """A plug-in that fails on every image it gets."""

    name = "failing"
    channels = ("results",)

    def handle(self, record) -> None:
        raise RuntimeError("this plug-in always fails")

    def close(self) -> None:
        pass


def test_a_failing_plugin_is_not_a_storage_error(series, tmp_path):
    url = f"sqlite:///{tmp_path / 'run.sqlite'}"
    summary = run_files([str(series.out_dir)], url, _config(), plugins=[Failing()])
    assert summary.storage_errors == 0 and not summary.failed
    assert summary.plugin_errors == len(series.images)
    assert "images not stored" not in summary.report()
    assert "plug-in errors" in summary.report()
    with trapline.api.open(url) as run:
        assert len(run.images()) == len(series.images)


def _with_catalogue(m, **columns):
    """A measured image whose catalogue has some columns changed."""
    cat = m.extraction.sources
    return replace(m, extraction=replace(m.extraction, sources=replace(cat, **columns)))


def test_non_finite_position_errors_do_not_poison_the_sky(series, tmp_path):
    """An infinite or NaN position error becomes a large finite one at the boundary: the
    detection associates but does not move the source, and every later image works."""
    config = _config()
    measured = [measure(p, config) for p in _paths(series)]
    bad = measured[2]
    n = len(bad.extraction.sources)
    ra_err = bad.extraction.sources.ra_err_deg.copy()
    dec_err = bad.extraction.sources.dec_err_deg.copy()
    ra_err[: n // 2] = np.inf
    dec_err[: n // 3] = np.nan
    measured[2] = _with_catalogue(bad, ra_err_deg=ra_err, dec_err_deg=dec_err)
    decider = SkyDecider(config)
    for m in measured:
        (result,) = decider.decide([m])
        assert result.image.accepted
        assert np.isfinite(result.sources.ra).all() and np.isfinite(result.sources.dec).all()
        assert np.isfinite(result.sources.ra_err).all()
    clean = SkyDecider(config)
    for m in [measure(p, config) for p in _paths(series)]:
        clean.decide([m])
    # The same lightcurves: the poisoned detections still associated with their sources.
    assert clean.sky.n_blind_sources() == decider.sky.n_blind_sources()
    np.testing.assert_array_equal(clean.sky.sources.n_blind, decider.sky.sources.n_blind)


def test_points_with_infinite_flux_errors_carry_no_weight(series):
    """A point whose flux error is infinite is left out of n and every running sum."""
    config = _config()
    measured = [measure(p, config) for p in _paths(series)]
    decider = SkyDecider(config)
    decider.decide([measured[0]])
    second = measured[1]
    peak_err = second.extraction.sources.peak_err_jy.copy()
    peak_err[0] = np.inf
    (result,) = decider.decide([_with_catalogue(second, peak_err_jy=peak_err)])
    first_blind = result.measurements.source_id[0]
    stats = result.statistics
    row = int(np.flatnonzero(stats.source_id == first_blind)[0])
    others = stats.n[stats.source_id != first_blind]
    assert stats.n[row] == 1  # only the first image's point
    assert np.isfinite(stats.swf_int[row]) and np.isfinite(stats.sf2_peak[row])
    assert (others[np.isin(stats.source_id[stats.source_id != first_blind],
                           result.measurements.source_id)] >= 1).all()


def test_a_refused_write_stops_the_run_and_the_rerun_is_exact(series, tmp_path):
    """The in-memory state never runs ahead of the database: an image the database
    refuses stops the run at the last stored image; the rerun resumes exactly there and
    ends with the tables of an uninterrupted run."""
    paths = _paths(series)
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    run_files(paths, clean, _config())
    url = f"sqlite:///{tmp_path / 'refused.sqlite'}"
    with Store(url) as store:
        store.upgrade()
    engine = sa.create_engine(url)
    refused = Path(paths[4]).name
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON image "
            f"WHEN NEW.path LIKE '%{refused}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
    summary = run_files(paths, url, _config())
    assert summary.failed and summary.stopped and "run again to resume" in summary.stopped
    assert summary.accepted == 4
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    engine.dispose()
    again = run_files(paths, url, _config())
    assert not again.failed and again.skipped == 4 and again.accepted == len(paths) - 4
    assert_same_run(clean, url)


def test_resume_keeps_what_was_reported_variable():
    """Defect: after a restart the 'already reported variable' state was rebuilt from
    the current eta and V, so a source reported earlier could be reported again."""
    ids = np.array([1, 2], dtype=np.int64)
    sources = SourceStates(source_id=ids, ra=np.array([10.0, 10.1]), dec=np.array([5.0, 5.0]),
                           ra_err=np.full(2, 1e-4), dec_err=np.full(2, 1e-4),
                           first_time_mjd=np.zeros(2), last_time_mjd=np.zeros(2),
                           n_blind=np.full(2, 9), n_forced=np.zeros(2, int),
                           is_monitor=np.zeros(2, bool), misses=np.zeros(2, int))
    n = np.full(2, 9)
    zeros = np.zeros(2)
    stats = BandStatistics(
        source_id=ids, band=np.zeros(2, int), n=n, sw_int=n * 1.0, swf_int=n * 1.0,
        swf2_int=n * 1.0, sf_int=n * 1.0, sf2_int=n * 1.0, sw_peak=n * 1.0, swf_peak=n * 1.0,
        swf2_peak=n * 1.0, sf_peak=n * 1.0, sf2_peak=n * 1.0, eta_int=zeros, v_int=zeros,
        eta_peak=zeros, v_peak=zeros, max_snr=zeros, misses=np.zeros(2, int), f_max=zeros,
        f_max_err=zeros, f_min=zeros, f_min_err=zeros, vs_int=zeros, m_int=zeros)
    state = StoredState(sources=sources, statistics=stats, depth=DepthUpdates.empty(),
                        flagged=Flagged(source_id=np.array([2]), band=np.array([0])))
    decider = SkyDecider(PipelineConfig())
    decider.restore(state)
    flagged = decider.sky.band(0).full("flagged")[decider.sky.rows_of(ids)]
    assert flagged.tolist() == [False, True]


def test_resume_keeps_the_rms_history(series, tmp_path):
    """Defect: the quality-control rms history was not restored, so an image far off
    the recent rms was accepted after a restart that an uninterrupted run rejects."""
    from astropy.io import fits

    paths = _paths(series)
    noisy = tmp_path / "noisy.fits"
    with fits.open(paths[-1]) as hdul:
        header = hdul[0].header.copy()
        data = hdul[0].data * 20.0
        header["DATE-OBS"] = "2026-12-31T00:00:00.000"
        fits.writeto(noisy, data, header)
    config = _config()
    config.quality.rms_history_min_images = 4
    whole = f"sqlite:///{tmp_path / 'whole.sqlite'}"
    run_files([*paths, str(noisy)], whole, config)
    resumed = f"sqlite:///{tmp_path / 'resumed.sqlite'}"
    run_files(paths, resumed, config)
    run_files([str(noisy)], resumed, config)
    for url in (whole, resumed):
        with trapline.api.open(url) as run:
            images = run.images()
            last = images[images.path.str.endswith("noisy.fits")].iloc[0]
            assert not last.accepted and last.reject_reason.startswith("rms history")


PARENT = """
import sys, time
from trapline.pipeline.config import PipelineConfig
from trapline.run import Measurer
config = PipelineConfig()
config.run.workers = 2
measurer = Measurer(config)
list(measurer.map([sys.argv[1], sys.argv[1]]))  # the pool's workers are up
print("ready", flush=True)
time.sleep(600)
"""


def test_pool_workers_exit_when_the_run_is_killed(series):
    """Defect: after kill -9 of ``trapline run``, its pool workers (about 160 MB each)
    stayed alive for minutes. Now they exit within a second of their parent."""
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(series.images[0])],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        children = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                    .read_text().split()]
        assert len(children) >= 2
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 1.0
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [c for c in children if _running(c)]
    assert alive == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_driver_counts_decisions_once_per_image(series, tmp_path):
    """The driver skips an image stored already, untouched (a timestep given twice)."""
    config = _config()
    paths = _paths(series)
    url = f"sqlite:///{tmp_path / 'twice.sqlite'}"
    with Store(url) as store:
        store.upgrade()
        driver = Driver(store, config)
        first = measure(paths[0], config)
        assert len(driver.process([first])) == 1
        assert driver.process([first]) == []
        assert driver.summary.skipped == 1


def test_an_image_older_than_the_newest_processed_is_rejected_with_its_reason(series, tmp_path):
    """Defect: images older than ones already stored were processed out of order without
    a word, and the new-source results changed. They are refused, with the reason
    stored, and the run says so (exit code 1 only if nothing was accepted)."""
    paths = _paths(series)
    url = f"sqlite:///{tmp_path / 'order.sqlite'}"
    run_files(paths[4:], url, _config())
    later = run_files(paths[:4], url, _config())
    assert later.accepted == 0 and sum(later.rejected.values()) == 4
    with trapline.api.open(url) as run:
        images = run.images()
    old = images[images.path.isin(paths[:4])]
    assert len(old) == 4 and not old.accepted.any()
    assert old.reject_reason.str.startswith("out of time order").all()
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    run_files(paths[4:], clean, _config())
    assert_same_run(clean, url)  # the refused images changed nothing
