"""Pipeline runs against a database: both back ends, re-runs, resuming, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import trapline.api
from trapline.cli import main
from trapline.pipeline.config import PipelineConfig
from trapline.run import run_files
from trapline.simulate import SimulationConfig, write_series

SIM = SimulationConfig(seed=4, epochs=8, bands=2, size=256, n_steady=15, n_variable=3,
                       n_transient=2, n_fading=1, variable_snr=(30, 200))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    files = write_series(SIM, tmp_path_factory.mktemp("series"))
    return files


def _config(workers: int = 1) -> PipelineConfig:
    config = PipelineConfig()
    config.run.workers = workers
    return config


def _tables(url: str) -> dict[str, pd.DataFrame]:
    run = trapline.api.open(url)
    out = {
        "sources": run.sources().sort_values("source_id").reset_index(drop=True),
        "measurements": run.measurements().sort_values(["source_id", "image_id"])
        .reset_index(drop=True),
        "variability": run.variability().sort_values(["source_id", "band"])
        .reset_index(drop=True),
        "candidates": run.candidates().sort_values(["source_id", "image_id", "kind"])
        .reset_index(drop=True),
        "images": run.images().sort_values("image_id").reset_index(drop=True),
    }
    run.close()
    return out


def test_run_on_both_databases_and_rerun_adds_nothing(series, db_url):
    first = run_files([str(series.out_dir)], db_url, _config())
    assert first.accepted == len(series.images)
    before = _tables(db_url)
    assert len(before["measurements"]) > 0
    again = run_files([str(series.out_dir)], db_url, _config())
    assert again.skipped == len(series.images) and again.accepted == 0
    after = _tables(db_url)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_resume_equals_one_run(series, tmp_path):
    """Half the images, stop, the other half in a new run: the same lightcurves and
    statistics as one run over all of them."""
    one = f"sqlite:///{tmp_path / 'one.sqlite'}"
    two = f"sqlite:///{tmp_path / 'two.sqlite'}"
    paths = sorted(str(p) for p in series.images)
    run_files(paths, one, _config())
    half = len(paths) // 2
    run_files(paths[:half], two, _config())
    run_files(paths[half:], two, _config())
    a, b = _tables(one), _tables(two)
    cols = ["source_id", "ra", "dec", "n_blind", "n_forced"]
    pd.testing.assert_frame_equal(a["sources"][cols], b["sources"][cols], rtol=1e-9)
    pd.testing.assert_frame_equal(a["variability"], b["variability"], rtol=1e-9)
    pd.testing.assert_frame_equal(
        a["measurements"].drop(columns=["measurement_id"]),
        b["measurements"].drop(columns=["measurement_id"]), rtol=1e-9)
    pd.testing.assert_frame_equal(a["candidates"].drop(columns=["candidate_id"]),
                                  b["candidates"].drop(columns=["candidate_id"]))


def test_parallel_workers_give_the_same_result(series, tmp_path):
    one = f"sqlite:///{tmp_path / 'seq.sqlite'}"
    par = f"sqlite:///{tmp_path / 'par.sqlite'}"
    run_files([str(series.out_dir)], one, _config(workers=1))
    run_files([str(series.out_dir)], par, _config(workers=2))
    a, b = _tables(one), _tables(par)
    for name in ("sources", "variability", "measurements"):
        pd.testing.assert_frame_equal(a[name], b[name])


def test_bad_images_are_recorded_and_the_rest_processed(series, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(series.out_dir, folder)
    good = sorted(folder.glob("*.fits"))
    (folder / "corrupt.fits").write_bytes(good[0].read_bytes()[:5000])
    (folder / "notes.fits").write_text("not a FITS file")
    with fits.open(good[1]) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data
    fits.PrimaryHDU(np.full_like(data, np.nan), header).writeto(folder / "nan.fits")
    nowcs = fits.Header({k: header[k] for k in ("BMAJ", "BMIN", "BPA", "DATE-OBS")})
    fits.PrimaryHDU(data, nowcs).writeto(folder / "nowcs.fits")
    nobeam = header.copy()
    for key in ("BMAJ", "BMIN", "BPA"):
        del nobeam[key]
    fits.PrimaryHDU(data, nobeam).writeto(folder / "nobeam.fits")
    url = f"sqlite:///{tmp_path / 'mixed.sqlite'}"
    summary = run_files([str(folder)], url, _config(workers=2))
    assert summary.accepted == len(good)
    images = trapline.api.open(url).images().set_index("path")
    reasons = {p.rsplit("/", 1)[-1]: r for p, r in images.reject_reason.items() if pd.notna(r)}
    assert reasons.keys() == {"corrupt.fits", "notes.fits", "nan.fits", "nowcs.fits",
                              "nobeam.fits"}
    assert reasons["corrupt.fits"].startswith("unreadable")
    assert reasons["notes.fits"].startswith("unreadable")
    assert reasons["nan.fits"].startswith("no_data")
    assert reasons["nowcs.fits"].startswith("no_wcs")
    assert reasons["nobeam.fits"].startswith("no_beam")
    # Nothing else is lost: the good images give what they give without the bad ones.
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    run_files([str(series.out_dir)], clean, _config())
    assert len(trapline.api.open(clean).measurements()) == \
        len(trapline.api.open(url).measurements())


def test_quality_control_rejects_with_reasons(series, tmp_path):
    config = _config()
    config.quality.rms_max_jy = 1e-6  # far below the simulated 1 mJy
    url = f"sqlite:///{tmp_path / 'qc.sqlite'}"
    summary = run_files([str(series.out_dir)], url, config)
    assert summary.accepted == 0
    images = trapline.api.open(url).images()
    assert images.reject_reason.str.startswith("rms").all()
    assert len(trapline.api.open(url).sources()) == 0


def test_monitoring_list_measured_in_every_image(series, tmp_path):
    config = _config()
    config.forced.monitor = [[SIM.ra_deg, SIM.dec_deg, "centre"]]
    url = f"sqlite:///{tmp_path / 'mon.sqlite'}"
    run_files([str(series.out_dir)], url, config)
    run = trapline.api.open(url)
    monitors = run.monitors()
    assert len(monitors) == 1
    lc = run.lightcurve(int(monitors.source_id.iloc[0]))
    assert len(lc) == len(series.images) and (lc.kind == "monitor").all()
    # Monitoring positions are kept apart from the blind sources.
    assert int(monitors.source_id.iloc[0]) not in set(
        run.measurements().query("kind == 'blind'").source_id)


def test_run_and_export_commands(series, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    assert main(["run", str(series.out_dir), "--db", url, "--workers", "1",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{len(series.images)} accepted" in out
    for table, columns in {
        "images": "image_id,path,time,freq_hz,band,rms,bmaj_deg,bmin_deg,bpa_deg,accepted,"
                  "reject_reason,n_blind",
        "sources": "source_id,ra,dec,ra_err,dec_err,first_time,n_blind,n_forced",
        "measurements": "measurement_id,source_id,image_id,time,freq_hz,band,ra,dec,ra_err,"
                        "dec_err,peak_flux,peak_flux_err,int_flux,int_flux_err,snr,kind",
        "variability": "source_id,band,n,eta_int,v_int,eta_peak,v_peak,max_snr",
        "candidates": "source_id,kind,level,time,image_id,significance",
    }.items():
        path = tmp_path / f"{table}.csv"
        assert main(["export", "--db", url, table, "-o", str(path)]) == 0
        header = path.read_text().splitlines()[0]
        assert header.startswith(columns), header
    assert main(["run", str(tmp_path / "missing"), "--db", url]) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[association]\nde_ruiter_radius = -1\n")
    assert main(["run", str(series.out_dir), "--db", url, "--config", str(bad)]) == 2
    assert "de_ruiter_radius" in capsys.readouterr().err
