"""Scale-out: the measuring stage on a local Dask cluster of worker processes gives the
same lightcurves as the embedded run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import trapline.api
from trapline.errors import TraplineError
from trapline.pipeline.config import PipelineConfig
from trapline.run import run_files
from trapline.simulate import SimulationConfig, write_series

distributed = pytest.importorskip("distributed")


def test_dask_cluster_gives_the_embedded_result(tmp_path):
    files = write_series(SimulationConfig(seed=8, epochs=6, bands=2, size=256, n_steady=15,
                                          n_variable=3, n_transient=2, n_fading=1),
                         tmp_path / "series")
    embedded = f"sqlite:///{tmp_path / 'embedded.sqlite'}"
    on_dask = f"sqlite:///{tmp_path / 'dask.sqlite'}"
    config = PipelineConfig()
    config.run.workers = 1
    run_files([str(files.out_dir)], embedded, config)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        summary = run_files([str(files.out_dir)], on_dask, config,
                            scheduler=cluster.scheduler_address)
    assert summary.accepted == len(files.images)
    a, b = trapline.api.open(embedded), trapline.api.open(on_dask)
    pd.testing.assert_frame_equal(a.sources(), b.sources())
    pd.testing.assert_frame_equal(a.variability(), b.variability())
    pd.testing.assert_frame_equal(a.measurements().drop(columns="measurement_id"),
                                  b.measurements().drop(columns="measurement_id"))
    pd.testing.assert_frame_equal(a.candidates().drop(columns="candidate_id"),
                                  b.candidates().drop(columns="candidate_id"))


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    files = write_series(SimulationConfig(seed=8, epochs=1, size=64, n_steady=1, n_variable=0,
                                          n_transient=0, n_fading=0), tmp_path / "one")
    with pytest.raises(TraplineError, match="Dask scheduler"):
        run_files([str(files.out_dir)], f"sqlite:///{tmp_path / 'x.sqlite'}",
                  scheduler="tcp://127.0.0.1:1")


def _listen(db, sim, scheduler=None):
    from helpers import stream_through

    from trapline.run import LiveProcessor

    return stream_through(LiveProcessor(str(db), scheduler=scheduler), sim)


def test_listen_measures_on_dask_workers(tmp_path):
    """The stream listener with --scheduler: images measured on the cluster, decided and
    stored here, with the lightcurves of the embedded listener."""
    sim = SimulationConfig(seed=3, epochs=3, bands=2, size=128, n_steady=5, n_variable=0,
                           n_transient=0, n_fading=0)
    embedded = _listen(tmp_path / "embedded.sqlite", sim)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        on_dask = _listen(tmp_path / "dask.sqlite", sim, cluster.scheduler_address)
    assert on_dask.images_processed == embedded.images_processed == 6
    assert not on_dask.processing_errors
    a = trapline.api.open(str(tmp_path / "embedded.sqlite"))
    b = trapline.api.open(str(tmp_path / "dask.sqlite"))
    assert len(b.sources()) > 0
    pd.testing.assert_frame_equal(a.sources(), b.sources())
    pd.testing.assert_frame_equal(a.variability(), b.variability())


def _curves(url: str) -> list[tuple]:
    """Every lightcurve as a tuple of rounded fluxes in time order (ids aside)."""
    m = trapline.api.open(url).measurements().sort_values(["time", "band"])
    return sorted(tuple(np.round(g.int_flux.to_numpy(), 9)) for _, g in m.groupby("source_id"))


def test_sky_partitions_give_the_single_sky_model_result(tmp_path):
    """Association in independent HEALPix partitions with overlap margins: the same
    lightcurves and candidates as one sky model, though the field spans many tiles."""
    sim = SimulationConfig(seed=2, epochs=6, bands=2, size=384, pixel_arcsec=30,
                           n_steady=50, n_variable=6, n_transient=3, n_fading=2,
                           ra_deg=359.9, dec_deg=0.5)  # across RA 0 too
    files = write_series(sim, tmp_path / "series")
    single, parted = (f"sqlite:///{tmp_path / n}" for n in ("single.sqlite", "parts.sqlite"))
    config = PipelineConfig()
    config.run.workers = 1
    run_files([str(files.out_dir)], single, config)
    config.run.partition_nside = 32  # 1.8 deg tiles on a 3.2 deg field
    summary = run_files([str(files.out_dir)], parted, config)
    assert summary.n_sources == len(trapline.api.open(single).sources())
    assert _curves(parted) == _curves(single)
    a, b = trapline.api.open(single).candidates(), trapline.api.open(parted).candidates()
    def keys(c):
        return sorted(zip(c.kind, c.level, c.time, strict=True))

    assert len(a) > 0 and keys(a) == keys(b)


def test_sky_partitions_as_actors_on_a_dask_cluster(tmp_path):
    """The partitions as Dask actors on worker processes: no synchronisation between
    them, and the lightcurves of one sky model."""
    sim = SimulationConfig(seed=5, epochs=4, bands=1, size=256, pixel_arcsec=40,
                           n_steady=25, n_variable=3, n_transient=2, n_fading=1)
    files = write_series(sim, tmp_path / "series")
    single, parted = (f"sqlite:///{tmp_path / n}" for n in ("single.sqlite", "actors.sqlite"))
    config = PipelineConfig()
    config.run.workers = 1
    run_files([str(files.out_dir)], single, config)
    config.run.partition_nside = 32
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        summary = run_files([str(files.out_dir)], parted, config,
                            scheduler=cluster.scheduler_address)
    assert summary.accepted == len(files.images)
    assert summary.n_sources == len(trapline.api.open(single).sources())
    assert _curves(parted) == _curves(single)


def test_sky_partitions_resume(tmp_path):
    """Half the images, stop, the rest in a new run, in partitions: the lightcurves of
    one uninterrupted single-sky-model run."""
    sim = SimulationConfig(seed=9, epochs=6, bands=1, size=384, pixel_arcsec=30,
                           n_steady=40, n_variable=4, n_transient=3, n_fading=1)
    files = write_series(sim, tmp_path / "series")
    paths = sorted(str(p) for p in files.images)
    single, parted = (f"sqlite:///{tmp_path / n}" for n in ("single.sqlite", "parts.sqlite"))
    config = PipelineConfig()
    config.run.workers = 1
    run_files(paths, single, config)
    config.run.partition_nside = 32
    run_files(paths[:3], parted, config)
    run_files(paths[3:], parted, config)
    assert _curves(parted) == _curves(single)
    a, b = trapline.api.open(single).candidates(), trapline.api.open(parted).candidates()
    assert sorted(zip(a.kind, a.time, strict=True)) == sorted(zip(b.kind, b.time, strict=True))
