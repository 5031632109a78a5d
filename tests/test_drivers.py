"""One driver behind every mode: the same simulated series (two bands, a monitoring
list) through the embedded run, a process pool, a Dask cluster, the live listener fed
by the stream sender, and sky partitions (in process, live and as Dask actors) gives the
same sources, measurements and candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import stream_through

import trapline.api
from trapline.pipeline.config import PipelineConfig
from trapline.run import LiveProcessor, run_files
from trapline.simulate import SimulationConfig, write_series

distributed = pytest.importorskip("distributed")

# A 2.1 deg field over several 1.8 deg partition tiles (nside 32).
SIM = SimulationConfig(seed=11, epochs=5, bands=2, size=256, pixel_arcsec=30, n_steady=30,
                       n_variable=3, n_transient=2, n_fading=1, variable_snr=(30, 200))
MONITOR = [[SIM.ra_deg + 0.3, SIM.dec_deg - 0.2, "watched"],
           [SIM.ra_deg - 0.4, SIM.dec_deg + 0.1, "also watched"]]


def _config(workers: int = 1, partitions: int = 0) -> PipelineConfig:
    config = PipelineConfig()
    config.run.workers = workers
    config.run.partition_nside = partitions
    config.forced.monitor = [list(m) for m in MONITOR]
    return config


def canonical(url: str) -> dict[str, list[tuple]]:
    """The stored run with source ids replaced by each source's rank in (first time,
    position) order, so that runs giving ids differently (partitions) compare."""
    with trapline.api.open(url) as run:
        src = run.sources()
        m = run.measurements()
        c = run.candidates()
        monitors = run.monitors()
    src = src.assign(r=src.ra.round(6), d=src.dec.round(6))
    order = src.sort_values(["is_monitor", "first_time_mjd", "r", "d"], na_position="first")
    rank = dict(zip(order.source_id, range(len(order)), strict=True))
    return {
        "sources": sorted(zip(src.source_id.map(rank), src.r, src.d, src.n_blind, src.n_forced,
                              src.is_monitor, strict=True)),
        "measurements": sorted(zip(m.source_id.map(rank), m.time_mjd.round(9), m.band, m.kind,
                                   m.int_flux.round(9), m.int_flux_err.round(9), strict=True)),
        "candidates": sorted(zip(c.source_id.map(rank), c.kind, c.level, c.band,
                                 c.time_mjd.round(9), c.significance.round(6), strict=True)),
        "monitors": sorted(zip(monitors.name, monitors.source_id.map(rank), strict=True)),
    }


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(SIM, tmp_path_factory.mktemp("series"))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c.scheduler_address


def _batch(series, url, config, scheduler=None):
    summary = run_files([str(series.out_dir)], url, config, scheduler=scheduler)
    assert summary.accepted == len(series.images) and not summary.failed
    return summary


def _live(url, config, scheduler=None):
    processor = LiveProcessor(url, config, scheduler=scheduler)
    metrics = stream_through(processor, SIM)
    assert metrics.images_processed == SIM.epochs * SIM.bands
    assert not metrics.processing_errors
    return processor.summary


def test_every_driver_gives_the_same_run(series, cluster, tmp_path):
    urls = {name: f"sqlite:///{tmp_path / (name + '.sqlite')}" for name in (
        "embedded", "pool", "dask", "listen", "parts", "listen_parts", "actors")}
    reference = _batch(series, urls["embedded"], _config())
    _batch(series, urls["pool"], _config(workers=2))
    _batch(series, urls["dask"], _config(), scheduler=cluster)
    _live(urls["listen"], _config())
    parts = _batch(series, urls["parts"], _config(partitions=32))
    live_parts = _live(urls["listen_parts"], _config(partitions=32))
    actors = _batch(series, urls["actors"], _config(partitions=32), scheduler=cluster)
    assert parts.n_sources == live_parts.n_sources == actors.n_sources == reference.n_sources

    expected = canonical(urls["embedded"])
    assert len(expected["candidates"]) > 0
    assert {row[3] for row in expected["measurements"]} == {"blind", "forced", "monitor",
                                                              "precovery"}
    assert [name for name, _ in expected["monitors"]] == sorted(m[2] for m in MONITOR)
    for name, url in urls.items():
        got = canonical(url)
        for table in expected:
            assert got[table] == expected[table], f"{name}: {table} differ"
    # Without partitions the ids themselves agree.
    a = trapline.api.open(urls["embedded"]).sources()
    for name in ("pool", "dask", "listen"):
        pd.testing.assert_frame_equal(a, trapline.api.open(urls[name]).sources())


def test_partitioned_listen_resumes_its_stored_state(tmp_path):
    """Defect: ``trapline listen`` with partitions crashed on close and never restored
    a partitioned run. Two listening sessions give the run of one."""
    sim = SimulationConfig(seed=5, epochs=4, bands=1, size=256, pixel_arcsec=40,
                           n_steady=20, n_variable=2, n_transient=1, n_fading=1)
    one, two = (str(tmp_path / n) for n in ("one.sqlite", "two.sqlite"))
    config = _config(partitions=32)
    config.forced.monitor = []
    processor = LiveProcessor(one, config)
    stream_through(processor, sim)
    processor = LiveProcessor(two, config)
    stream_through(processor, sim, epochs=slice(0, 2))
    assert processor.summary.n_sources > 0
    processor = LiveProcessor(two, config)
    stream_through(processor, sim, epochs=slice(2, None))
    assert processor.summary.accepted == 2
    assert canonical(one) == canonical(two)


def test_bands_in_any_order_give_the_same_timestep(series, tmp_path):
    """Defect: feeding a timestep's bands in another order changed its null detections.
    A timestep is decided as a whole, in frequency order."""
    from trapline.pipeline.measure import measure
    from trapline.run import Driver, sort_by_time, timesteps
    from trapline.storage import Store

    config = _config()
    paths = sort_by_time([str(p) for p in series.images])
    steps = [[measure(p, config) for p in [m.record.path for m in step]]
             for step in timesteps(measure(p, config) for p in paths)]
    assert all(len(step) == 2 for step in steps)
    urls = [f"sqlite:///{tmp_path / n}" for n in ("forward.sqlite", "reverse.sqlite")]
    for url, flip in zip(urls, (False, True), strict=True):
        with Store(url) as store:
            store.upgrade()
            driver = Driver(store, config)
            for step in steps:
                driver.process(step[::-1] if flip else step)
            driver.close()
    a, b = canonical(urls[0]), canonical(urls[1])
    assert a == b
    # A source first seen in one band is force-fitted in the other band of that timestep.
    m = trapline.api.open(urls[0]).measurements()
    firsts = m[m.kind == "blind"].groupby("source_id").time_mjd.min()
    same_time = m.merge(firsts.rename("first"), left_on="source_id", right_index=True)
    at_first = same_time[same_time.time_mjd == same_time["first"]]
    bands_at_first = at_first.groupby("source_id").band.nunique()
    assert (bands_at_first == 2).mean() > 0.9


def test_misses_count_timesteps_over_all_bands(tmp_path):
    """``max_misses`` counts timesteps without a detection in any band: a source that
    vanishes gets exactly ``max_misses`` forced fits in every band."""
    sim = SimulationConfig(seed=21, epochs=8, bands=2, size=128, n_steady=0, n_variable=0,
                           n_transient=1, n_fading=0, transient_duration=1,
                           transient_snr=(60, 60), transient_start_epoch=1)
    files = write_series(sim, tmp_path / "series")
    config = PipelineConfig()
    config.run.workers = 1
    config.forced.max_misses = 3
    url = f"sqlite:///{tmp_path / 'run.sqlite'}"
    run_files([str(files.out_dir)], url, config)
    m = trapline.api.open(url).measurements()
    blind = m[m.kind == "blind"]
    assert blind.source_id.nunique() == 1 and blind.time_mjd.nunique() == 1
    forced = m[(m.kind == "forced") & (m.time_mjd > blind.time_mjd.max())]
    assert forced.groupby("band").size().to_dict() == {0: 3, 1: 3}
    assert np.all(np.diff(np.sort(forced.time_mjd.unique())) > 0)


def test_asking_for_references_numbers_no_band(series):
    """Defect: asking a sky decider for an image's calibration references gave the
    image's frequency a band number. Sky partitions as Dask actors are asked at once, in
    no fixed order, so one could number the bands differently from the others and store
    its points under the other band (2 runs in 60 of the every-driver series)."""
    from trapline.pipeline.decide import SkyDecider
    from trapline.pipeline.measure import measure
    from trapline.run import sort_by_time, timesteps

    config = _config()
    paths = sort_by_time([str(p) for p in series.images])
    first = next(iter(timesteps(measure(p, config) for p in paths)))
    low, high = sorted(first, key=lambda m: m.record.freq_hz)
    decider = SkyDecider(config)
    decider.references(high)
    results = decider.decide([high, low])
    assert [r.image.band for r in results] == [1, 0]


def test_precovery_in_every_band(series, tmp_path):
    """A new source is force-fitted on the buffered earlier images of every band, not
    only its detection's: each band's lightcurve starts before its first detection
    (without it, a late transient's lightcurve in the other bands held only its
    'on' points, and its V there was that of a steady source)."""
    url = f"sqlite:///{tmp_path / 'run.sqlite'}"
    _batch(series, url, _config())
    m = trapline.api.open(url).measurements()
    first = m[m.kind == "blind"].groupby("source_id").time_mjd.min()
    late = first[first > m.time_mjd.min()].index
    pre = m[(m.kind == "precovery") & m.source_id.isin(late)]
    assert len(late) and pre.source_id.nunique() == len(late)
    assert (pre.groupby("source_id").band.nunique() == SIM.bands).all()
