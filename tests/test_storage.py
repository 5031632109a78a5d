"""Storage: schema and migrations, one-transaction writes, state, exports, cone search,
commands. Every database test runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import io
import math
import time

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trapline import api
from trapline.cli import main
from trapline.geometry import separation_deg
from trapline.records import (
    BLIND,
    FORCED,
    MONITOR,
    BandStatistics,
    Candidates,
    DepthUpdates,
    ImageRecord,
    ImageResult,
    Measurements,
    SourceStates,
)
from trapline.storage import StorageError, Store, pgcopy
from trapline.storage.export import iso_utc
from trapline.storage.healpix import cone_ranges, healpix_index
from trapline.storage.migrate import HEAD_REVISION, head_revision
from trapline.storage.models import Base

IMAGES = [
    "image_id", "path", "time", "freq_hz", "band", "rms", "bmaj_deg", "bmin_deg", "bpa_deg",
    "accepted", "reject_reason", "n_blind",
]  # fmt: skip
SOURCES = ["source_id", "ra", "dec", "ra_err", "dec_err", "first_time", "n_blind", "n_forced"]
MEASUREMENTS = [
    "measurement_id", "source_id", "image_id", "time", "freq_hz", "band", "ra", "dec",
    "ra_err", "dec_err", "peak_flux", "peak_flux_err", "int_flux", "int_flux_err", "snr", "kind",
]  # fmt: skip
VARIABILITY = ["source_id", "band", "n", "eta_int", "v_int", "eta_peak", "v_peak", "max_snr"]
CANDIDATES = ["source_id", "kind", "level", "time", "image_id", "significance"]
EXPORTS = {
    "images": IMAGES,
    "sources": SOURCES,
    "measurements": MEASUREMENTS,
    "variability": VARIABILITY,
    "candidates": CANDIDATES,
}


def make_result(
    key: str,
    source_ids,
    time_mjd: float = 60000.5,
    band: int = 0,
    seed: int = 0,
    ra=None,
    dec=None,
    candidates: int = 0,
    depth: DepthUpdates | None = None,
) -> ImageResult:
    """A synthetic image result: one measurement, source state and statistics row per
    source; kinds cycle blind/forced/monitor; the first ``candidates`` are candidates."""
    rng = np.random.default_rng(seed)
    sid = np.asarray(source_ids, dtype=np.int64)
    n = len(sid)
    ra = rng.uniform(0, 360, n) if ra is None else np.asarray(ra, dtype=float)
    dec = rng.uniform(-80, 80, n) if dec is None else np.asarray(dec, dtype=float)

    def u(lo: float = 0.1, hi: float = 1.0) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    kind = np.array([BLIND, FORCED, MONITOR])[np.arange(n) % 3]
    int_flux_err = u(0.01, 0.1)
    int_flux_err[kind == FORCED] = np.nan  # forced fits: stored as NULL
    measurements = Measurements(
        source_id=sid, kind=kind, ra=ra, dec=dec, ra_err=u() * 1e-4, dec_err=u() * 1e-4,
        peak_flux=u(), peak_flux_err=u(0.01, 0.1), int_flux=u(), int_flux_err=int_flux_err,
        snr=u(5, 50), smaj_asec=u(10, 20), smin_asec=u(5, 10), pa_deg=u(0, 180),
    )  # fmt: skip
    sources = SourceStates(
        source_id=sid, ra=ra, dec=dec, ra_err=u() * 1e-4, dec_err=u() * 1e-4,
        first_time_mjd=np.full(n, time_mjd), last_time_mjd=np.full(n, time_mjd),
        n_blind=np.ones(n, dtype=np.int64), n_forced=np.zeros(n, dtype=np.int64),
        is_monitor=kind == MONITOR, misses=np.zeros(n, dtype=np.int64),
    )  # fmt: skip
    stats = {name: u() for name in BandStatistics.names()}
    stats.update(
        source_id=sid, band=np.full(n, band), n=rng.integers(1, 9, n), misses=np.zeros(n, int)
    )
    stats["eta_int"][:1] = np.nan
    k = min(candidates, n)
    cands = Candidates(
        source_id=sid[:k],
        kind=np.array(["new", "variable"] * k)[:k],
        level=np.array(["likely", "eta+v"] * k)[:k],
        band=np.full(k, band),
        significance=rng.uniform(5, 10, k),
        flux=rng.uniform(1, 2, k),
        limit=rng.uniform(0.1, 0.2, k),
        precovery_flux=rng.uniform(0, 0.1, k),
        precovery_flux_err=rng.uniform(0.01, 0.02, k),
        rise_sigma=rng.uniform(5, 10, k),
        n_precovery=rng.integers(0, 16, k),
        n_bands=np.ones(k, dtype=np.int64),
        reason=np.full(k, "", dtype=object),
    )
    image = ImageRecord(
        image_key=key, path=f"/data/{key}.fits", time_mjd=time_mjd, freq_hz=150e6 + 1e6 * band,
        bandwidth_hz=1e6, band=band, telescope="LOFAR", integration_s=10.0, shape=(256, 512),
        centre_ra=10.0, centre_dec=50.0, radius_deg=5.0, bmaj_deg=0.01, bmin_deg=0.008,
        bpa_deg=30.0, rms_median=1e-3, rms_min=8e-4, rms_max=2e-3, accepted=True,
        n_blind=int((kind == BLIND).sum()), n_forced=int((kind == FORCED).sum()),
        n_monitor=int((kind == MONITOR).sum()),
    )  # fmt: skip
    return ImageResult(
        image=image,
        measurements=measurements,
        sources=sources,
        statistics=BandStatistics(**stats),
        candidates=cands,
        depth=depth if depth is not None else DepthUpdates.empty(),
    )


def count(store: Store, table: str) -> int:
    from sqlalchemy import func, select

    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Base.metadata.tables[table])).scalar()


def is_postgres(store: Store) -> bool:
    return store.url.get_backend_name() == "postgresql"


# --- schema -------------------------------------------------------------------------


def test_migration_creates_exactly_the_models(db_url):
    from trapline.storage.migrate import upgrade

    store = Store(db_url)
    assert store.revision() is None
    upgrade(store.engine, fresh_from_models=False)  # every migration, in order
    store.upgrade()  # a no-op at head: safe at every start
    assert store.revision() == head_revision() == HEAD_REVISION == "0008"
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    store.close()


def test_new_database_is_created_at_head_like_the_migrations(db_url):
    """A new database is created from the models and stamped; Alembic then sees it at
    head, with nothing to migrate and nothing different from the models."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from trapline.storage.migrate import alembic_config

    store = Store(db_url)
    store.upgrade()
    assert store.revision() == HEAD_REVISION
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == (
            ScriptDirectory.from_config(alembic_config()).get_current_head())
    with store.engine.begin() as conn:  # Alembic's own upgrade finds nothing to do
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert store.revision() == HEAD_REVISION
    store.write(make_result("a", [1, 2]))
    assert count(store, "measurement") == 2
    store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("from_models", [True, False], ids=["new", "migrated"])
def test_depth_journal_payload_is_stored_uncompressed(postgresql_url, from_models):
    """Compressing the packed depth changes cost most of an image's write on PostgreSQL:
    a new database and a migrated one both store them as they are."""
    from sqlalchemy import text

    from trapline.storage.migrate import upgrade

    store = Store(postgresql_url)
    upgrade(store.engine, fresh_from_models=from_models)
    with store.engine.connect() as conn:
        storage = conn.execute(text(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'sky_depth_log'::regclass "
            "AND attname = 'payload'")).scalar_one()
    store.close()
    assert storage == "e"  # external: out of line, never compressed


def test_migrations_ship_in_the_package():
    from importlib.resources import files

    versions = files("trapline.storage.migrations") / "versions"
    assert (versions / "0001_initial.py").is_file()
    assert (files("trapline.storage.migrations") / "script.py.mako").is_file()


# --- writes and exports --------------------------------------------------------------


def test_write_then_export_every_table(store):
    # 250 sources: above pgcopy.COPY_MIN_ROWS, so PostgreSQL takes the COPY upserts;
    # the second image (40 sources) takes the executemany upserts.
    first = make_result("img1", np.arange(250), time_mjd=60000.5, candidates=3)
    second = make_result("img2", np.arange(40), time_mjd=60000.75, band=1, seed=1)
    id1, id2 = store.write(first), store.write(second)
    assert (id1, id2) != (None, None) and id1 != id2
    run = api.open(str(store.url.render_as_string(hide_password=False)))
    frames = {name: getattr(run, name)() for name in EXPORTS}
    for name, columns in EXPORTS.items():
        assert list(frames[name].columns[: len(columns)]) == columns, name

    images = frames["images"]
    assert len(images) == 2
    assert images["time"].tolist() == ["2023-02-25T12:00:00.000", "2023-02-25T18:00:00.000"]
    assert images["rms"].iloc[0] == pytest.approx(1e-3)
    assert images["accepted"].dtype == bool and images["accepted"].all()
    assert images["n_blind"].tolist() == [first.image.n_blind, second.image.n_blind]
    assert images["reject_reason"].isna().all()
    assert images[["nx", "ny"]].iloc[0].tolist() == [512, 256]

    sources = frames["sources"]
    assert len(sources) == 250 and sources["source_id"].tolist() == list(range(250))
    assert sources["first_time"].iloc[0] == "2023-02-25T18:00:00.000"  # upserted by img2
    assert sources["first_time"].iloc[100] == "2023-02-25T12:00:00.000"

    meas = frames["measurements"]
    assert len(meas) == 290
    assert set(meas["kind"]) == {"blind", "forced", "monitor"}
    m = meas[meas["image_id"] == id2]
    assert (m["band"] == 1).all() and (m["freq_hz"] == 151e6).all()
    assert (m["time"] == "2023-02-25T18:00:00.000").all()
    assert meas.loc[meas["kind"] == "forced", "int_flux_err"].isna().all()
    np.testing.assert_allclose(
        meas[meas["image_id"] == id1]["peak_flux"], first.measurements.peak_flux
    )

    var = frames["variability"]
    assert len(var) == 290 and set(var["band"]) == {0, 1}
    assert math.isnan(var["eta_int"].iloc[0])

    cands = frames["candidates"]
    assert cands["kind"].tolist() == ["new", "variable", "new"]
    assert cands["level"].tolist() == ["likely", "eta+v", "likely"]
    assert (cands["image_id"] == id1).all()
    assert (cands["time"] == "2023-02-25T12:00:00.000").all()

    from trapline.storage.lightcurves import POINT_COLUMNS

    curve = run.lightcurve(0)
    assert list(curve.columns) == POINT_COLUMNS
    assert (curve["resolution_s"] == 0).all()
    assert curve["time"].tolist() == sorted(curve["time"]) and len(curve) == 2
    assert len(run.lightcurve(0, band=1)) == 1
    assert run.measurements(source_id=5)["source_id"].tolist() == [5, 5]
    run.close()


def test_writing_the_same_image_twice_stores_it_once(store):
    result = make_result("again", np.arange(30), candidates=2)
    assert not store.has_image("again")
    assert store.write(result) is not None
    assert store.has_image("again")
    before = {t: count(store, t) for t in ["image", "measurement", "candidate", "source"]}
    assert store.write(result) is None
    assert (
        {t: count(store, t) for t in before}
        == before
        == {
            "image": 1,
            "measurement": 30,
            "candidate": 2,
            "source": 30,
        }
    )


@pytest.mark.parametrize("n", [20, 300])  # executemany and (PostgreSQL) COPY upserts
def test_upsert_replaces_source_and_statistics(store, n):
    ids = np.arange(n)
    store.write(make_result("a", ids, seed=1))
    later = make_result("b", ids, seed=2, time_mjd=60001.0)
    later.sources.n_blind[:] = 7
    later.statistics.eta_int[:] = 3.5
    store.write(later)
    state = store.load_state()
    np.testing.assert_array_equal(state.sources.source_id, ids)
    np.testing.assert_allclose(state.sources.ra, later.sources.ra)
    np.testing.assert_array_equal(state.sources.n_blind, 7)
    np.testing.assert_allclose(state.statistics.eta_int, 3.5)
    np.testing.assert_allclose(state.statistics.sw_int, later.statistics.sw_int)
    assert count(store, "source") == n and count(store, "band_statistics") == n


HAS_WORST = "worst" in DepthUpdates.names()


def depth_updates(cells, limits, worst=None) -> DepthUpdates:
    """Depth updates in band 0; ``worst`` defaults to ``limits``."""
    columns = {"band": np.zeros(len(cells), int), "cell": np.asarray(cells), "limit": limits}
    if HAS_WORST:
        columns["worst"] = np.asarray(limits if worst is None else worst, dtype=float)
    return DepthUpdates(**columns)


@pytest.mark.parametrize("n_extra", [0, 300])  # executemany and (PostgreSQL) COPY upserts
def test_sky_depth_keeps_the_lowest_limit(store, n_extra):
    extra = np.arange(100, 100 + n_extra)

    def depth(cells, limits, worst):
        return depth_updates(
            np.concatenate([cells, extra]),
            np.concatenate([limits, np.full(n_extra, 1.0)]),
            np.concatenate([worst, np.full(n_extra, 1.0)]),
        )

    store.write(make_result("a", [1], depth=depth([1, 2, 3], [5.0, 3, 2], [5.0, 3, 2])))
    # cell 1 improves, 2 does not, 3 appears twice in one image, 4 is new, NaN ignored
    update = depth([1, 2, 3, 3, 4, 5], [4.0, 6, 2.5, 1.5, 9, np.nan], [4.0, 6, 2.5, 1.5, 9, np.nan])
    store.write(make_result("b", [1], depth=update))
    got = store.load_state().depth
    assert got.cell[:4].tolist() == [1, 2, 3, 4]
    assert got.limit[:4].tolist() == [4.0, 3.0, 1.5, 9.0]
    if HAS_WORST:
        assert got.worst[:4].tolist() == [5.0, 6.0, 2.5, 9.0]
    assert len(got) == 4 + n_extra


class DepthTruth:
    """Random depth changes written image by image, with the lowest limit and highest
    worst limit per (band, cell) kept by brute force beside them."""

    def __init__(self, seed: int, n_cells: int, per_image: int):
        self.rng = np.random.default_rng(seed)
        self.n_cells, self.per_image = n_cells, per_image
        self.seen: dict[tuple[int, int], tuple[float, float]] = {}

    def write(self, store: Store, key: str) -> None:
        rng, n = self.rng, self.per_image
        cells = rng.choice(self.n_cells, n, replace=False)
        band = rng.integers(0, 2, n)
        limit = rng.uniform(1, 10, n)
        worst = limit * rng.uniform(1, 2, n)
        for b, c, lo, hi in zip(band.tolist(), cells.tolist(), limit, worst, strict=True):
            old = self.seen.get((b, c), (np.inf, -np.inf))
            self.seen[(b, c)] = (min(old[0], lo), max(old[1], hi))
        store.write(make_result(key, [1], depth=DepthUpdates(
            band=band, cell=cells, limit=limit, worst=worst)))

    def check(self, store: Store) -> None:
        """What a resume reads is exactly the brute-force depth map."""
        got = store.load_state().depth
        keys = sorted(self.seen)
        assert list(zip(got.band.tolist(), got.cell.tolist(), strict=True)) == keys
        np.testing.assert_array_equal(got.limit, [self.seen[k][0] for k in keys])
        np.testing.assert_array_equal(got.worst, [self.seen[k][1] for k in keys])


def test_depth_journal_is_folded_and_resumes_exactly(store):
    """Depth changes go to the journal with their image and are folded into sky_depth
    every CHECKPOINT_IMAGES images; what a resume reads is the same before and after
    folding, and equals the lowest limit and highest worst limit per band and cell."""
    from trapline.storage.depthlog import CHECKPOINT_IMAGES

    truth = DepthTruth(seed=5, n_cells=400, per_image=120)
    for i in range(CHECKPOINT_IMAGES + 7):
        truth.write(store, f"img{i}")
        assert count(store, "sky_depth_log") < CHECKPOINT_IMAGES
    assert 0 < count(store, "sky_depth") and count(store, "sky_depth_log") == 7
    truth.check(store)  # sky_depth plus the journal's last 7 images
    assert store.checkpoint_depth() > 0
    assert count(store, "sky_depth_log") == 0
    truth.check(store)


def test_depth_fold_is_spread_over_writes_and_survives_being_cut_short(store, monkeypatch):
    """A fold goes into sky_depth a slice per image write (no stall on one image); at
    every write, and after a fold cut short by a lost process, a resume reads exactly
    the lowest and highest limits; closing the store finishes a fold in progress."""
    from trapline.storage import depthlog

    monkeypatch.setattr(depthlog, "CHECKPOINT_IMAGES", 10)
    monkeypatch.setattr(depthlog, "FOLD_MIN_CELLS", 40)
    truth = DepthTruth(seed=8, n_cells=5000, per_image=60)
    slices = []
    for i in range(30):
        truth.write(store, f"img{i}")
        truth.check(store)
        if store._depth.fold is not None:
            slices.append(store._depth.fold.done)
        assert count(store, "sky_depth_log") < depthlog.CHECKPOINT_IMAGES + depthlog.FOLD_IMAGES
    # ~600 merged cells at image 10, 40 a write: spread over many writes, not one (a
    # second fold starts at image 30 with its first slice).
    assert len(slices) >= 10 and all(
        b in (a + 40, 40) for a, b in zip(slices[:-1], slices[1:], strict=True))
    # A fold in progress dies with its process: the next store folds it again, exactly.
    assert store._depth.fold is not None
    lost = store._depth.fold
    store._depth = depthlog.DepthJournal()  # what the lost process held in memory is gone
    with Store(store.url) as other:
        for i in range(30, 41):
            truth.write(other, f"img{i}")
            truth.check(other)
        assert other._depth.fold is not None  # started at image 40
        journal = count(other, "sky_depth_log")
    # Closing finished it: the rows it read are gone, later ones stay.
    assert count(store, "sky_depth_log") < journal
    with store.engine.connect() as conn:
        left = {r[0] for r in conn.execute(depthlog.select(depthlog.LOG.c.log_id))}
    assert not left & set(lost.log_ids)
    truth.check(store)


def test_depth_fold_reads_nothing_back_and_two_writers_stay_exact(store, monkeypatch):
    """A writer keeps what it journalled merged in memory: after its first write
    (which reads what an earlier process left) it never reads the journal again, folds
    included. Two writers on one database, taking turns, each fold their own rows and
    what they found; a resume reads exactly the brute-force depth map throughout."""
    from trapline.storage import depthlog

    monkeypatch.setattr(depthlog, "CHECKPOINT_IMAGES", 8)
    monkeypatch.setattr(depthlog, "FOLD_MIN_CELLS", 100)
    reads = []
    original = depthlog._read
    monkeypatch.setattr(depthlog, "_read", lambda conn: reads.append(1) or original(conn))
    truth = DepthTruth(seed=9, n_cells=3000, per_image=50)
    with Store(store.url) as other:
        for i in range(120):
            truth.write(store if i % 3 else other, f"img{i}")
            # Each writer folds what it wrote, every 8 of its rows, in ~4 of its writes:
            # the journal stays under 2 x (8 + 4 + 1) rows (a writer that never folded
            # would leave its 40 here).
            assert count(store, "sky_depth_log") < 30
            if i % 10 == 0:
                n = len(reads)
                truth.check(store)  # load_state reads the journal: not a writer's read
                del reads[n:]
        assert len(reads) == 2  # each writer's first write, nothing after
    truth.check(store)


def test_load_state_round_trip(store):
    first = make_result("a", np.arange(12), seed=3)
    first.sources.ra_err[2] = np.nan
    store.write(first, state={"next_source_id": "12"})
    store.write(make_result("bad", []))  # an image without sources
    store.set_state("config", '{"detection_sigma": 8}')
    store.set_state("next_source_id", "13")
    m1 = store.write_monitor("GRB 1", 10.0, 20.0)
    m2 = store.write_monitor("SGR", 30.0, -5.0, source_id=4)
    assert store.remove_monitor(m1) and not store.remove_monitor(m1)

    state = store.load_state()
    for name in SourceStates.names():
        np.testing.assert_array_equal(getattr(state.sources, name), getattr(first.sources, name))
    assert state.sources.source_id.dtype == np.int64 and state.sources.is_monitor.dtype == bool
    for name in BandStatistics.names():
        np.testing.assert_array_equal(
            getattr(state.statistics, name), getattr(first.statistics, name)
        )
    assert len(state.depth) == 0
    assert [(m.monitor_id, m.name, m.ra, m.dec, m.source_id) for m in state.monitors] == [
        (m2, "SGR", 30.0, -5.0, 4)
    ]
    assert state.values == {"next_source_id": "13", "config": '{"detection_sigma": 8}'}
    assert store.has_image("a") and store.has_image("bad") and not store.has_image("c")

    run = api.open(store.url.render_as_string(hide_password=False))
    monitors = run.monitors()
    assert monitors["name"].tolist() == ["SGR"] and monitors["added"].str.len().eq(23).all()
    run.close()


@pytest.mark.postgres
def test_postgres_writes_measurements_with_copy(pg_store, monkeypatch):
    calls = []
    original = pgcopy.copy_rows

    def spy(conn, table, columns):
        calls.append((table.name, len(next(iter(columns.values())))))
        return original(conn, table, columns)

    monkeypatch.setattr(pgcopy, "copy_rows", spy)
    pg_store.write(make_result("a", np.arange(50)))
    assert calls == [("measurement", 50)]
    calls.clear()
    pg_store.write(make_result("b", np.arange(300)))
    assert ("measurement", 300) in calls
    assert ("trapline_staging_source", 300) in calls  # COPY upsert above COPY_MIN_ROWS
    assert count(pg_store, "measurement") == 350


@pytest.mark.postgres
def test_postgres_connection_killed_between_writes(pg_store, pg_admin):
    pg_store.write(make_result("a", np.arange(5)))
    name = pg_store.url.database
    pg_admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
    )
    assert pg_store.write(make_result("b", np.arange(5))) is not None
    assert count(pg_store, "image") == 2


def test_a_failed_write_leaves_nothing(store):
    duplicate = make_result("a", [1, 1])  # two measurements of one source in one image
    orphan = make_result("a", [1, 2])
    orphan.sources = make_result("a", [1]).sources  # source 2 is measured but unknown
    for bad in (duplicate, orphan):
        with pytest.raises(StorageError) as err:
            store.write(bad)
        assert not err.value.transient
        assert count(store, "image") == 0 and count(store, "source") == 0
    assert store.write(make_result("a", [1])) is not None


def test_unreachable_server_raises_storage_error_quickly():
    store = Store("postgresql://postgres@127.0.0.1:1/x", retries=2, backoff_s=0.05)
    start = time.perf_counter()
    with pytest.raises(StorageError) as err:
        store.write(make_result("a", [1]))
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "127.0.0.1:1" in message and "3 attempts" in message and "'a'" in message
    assert err.value.transient


def test_reading_a_missing_or_empty_database(tmp_path):
    with pytest.raises(StorageError, match="no database"):
        api.open(str(tmp_path / "missing.sqlite"))
    assert not (tmp_path / "missing.sqlite").exists()
    import sqlite3

    sqlite3.connect(tmp_path / "empty.sqlite").close()
    with pytest.raises(StorageError, match="trapline db upgrade"):
        api.open(str(tmp_path / "empty.sqlite")).images()


def test_urls():
    from trapline.storage import default_url
    from trapline.storage.engine import normalise_url

    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("run.sqlite").get_backend_name() == "sqlite"
    assert normalise_url("run.sqlite").database.endswith("/run.sqlite")
    assert default_url().endswith("/trapline.sqlite")


# --- cone search ---------------------------------------------------------------------


def _sky(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform sources plus crowds around both poles and across RA 0/360."""
    n = 600
    z = rng.uniform(-1, 1, n)
    ra = [rng.uniform(0, 360, n)]
    dec = [np.degrees(np.arcsin(z))]
    for pole in (90.0, -90.0):
        ra.append(rng.uniform(0, 360, 300))
        dec.append(pole - np.sign(pole) * rng.uniform(0, 3, 300))
    ra.append(rng.uniform(-2, 2, 400) % 360)
    dec.append(rng.uniform(-2, 2, 400))
    return np.concatenate(ra), np.concatenate(dec)


CENTRES = st.one_of(
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, 90)),
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(85, 90)),
    st.tuples(st.floats(0, 360, exclude_max=True), st.floats(-90, -85)),
    st.tuples(st.floats(-1.5, 1.5).map(lambda r: r % 360), st.floats(-1.5, 1.5)),
)
RADII = st.one_of(st.floats(1e-3, 5.0), st.floats(5.0, 100.0), st.just(180.0))


def test_cone_search_matches_brute_force(store):
    from astropy.coordinates import angular_separation

    ra, dec = _sky(np.random.default_rng(42))
    store.write(make_result("sky", np.arange(len(ra)), ra=ra, dec=dec))
    run = api.open(store.url.render_as_string(hide_password=False))

    @settings(
        max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(centre=CENTRES, radius=RADII)
    def check(centre, radius):
        c_ra, c_dec = centre
        found = run.cone(c_ra, c_dec, radius)
        assert list(found.columns[: len(SOURCES)]) == SOURCES
        centre = [np.full_like(ra, c_ra), np.full_like(ra, c_dec)]
        exact = np.degrees(angular_separation(*np.radians([ra, dec, *centre])))
        got = set(found["source_id"])
        assert got >= set(np.flatnonzero(exact <= radius - 1e-9))
        assert got <= set(np.flatnonzero(exact <= radius + 1e-9))
        assert found["distance_deg"].is_monotonic_increasing

    check()
    run.close()


@given(
    ra=st.floats(0, 360, exclude_max=True),
    dec=st.floats(-90, 90),
    radius=st.floats(1e-4, 30),
    bearing=st.floats(0, 360),
    frac=st.floats(0.5, 0.9999),
)
def test_cone_ranges_contain_every_position_in_the_cone(ra, dec, radius, bearing, frac):
    # A point at distance frac * radius from the centre, along any bearing.
    lat1, lon1, d, b = np.radians([dec, ra, frac * radius, bearing])
    lat2 = math.asin(math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(b))
    lon2 = lon1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(lat1), math.cos(d) - math.sin(lat1) * math.sin(lat2)
    )
    p_ra, p_dec = math.degrees(lon2) % 360, math.degrees(lat2)
    pixel = int(healpix_index(np.array([p_ra]), np.array([p_dec]))[0])
    ranges = cone_ranges(ra, dec, radius)
    assert len(ranges) <= 40
    assert any(lo <= pixel <= hi for lo, hi in ranges)
    assert separation_deg(ra, dec, p_ra, p_dec) <= radius + 1e-9


def test_iso_times_match_astropy_isot():
    from astropy.time import Time

    mjd = np.random.default_rng(1).uniform(50000, 61000, 200)
    assert iso_utc(mjd).tolist() == list(Time(mjd, format="mjd", scale="utc").isot)
    assert iso_utc(np.array([60000.5])).tolist() == ["2023-02-25T12:00:00.000"]
    assert pd.isna(iso_utc(np.array([np.nan]))[0])


# --- commands ------------------------------------------------------------------------


def test_db_and_export_commands(db_url, tmp_path, capsys):
    if db_url.startswith("postgresql"):  # a missing SQLite file is an error, tested below
        assert main(["db", "current", "--db", db_url]) == 0
        assert capsys.readouterr().out.startswith("none")
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert f"-> {HEAD_REVISION}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert main(["db", "current", "--db", db_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{HEAD_REVISION} (head)"

    with Store(db_url) as store:
        store.write(make_result("a", np.arange(10), candidates=2))
    for table, columns in EXPORTS.items():
        assert main(["export", "--db", db_url, table]) == 0
        frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
        assert list(frame.columns[: len(columns)]) == columns, table
    out = tmp_path / "m.parquet"
    argv = ["export", "--db", db_url, "measurements", "--format", "parquet", "-o", str(out)]
    assert main(argv) == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns[: len(MEASUREMENTS)]) == MEASUREMENTS and len(frame) == 10
    assert main(["export", "--db", db_url, "sources", "-o", str(tmp_path / "s.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) == 10
    capsys.readouterr()
    assert main(["export", "--db", db_url, "images", "--format", "parquet"]) == 2
    assert "needs an output file" in capsys.readouterr().err


def test_export_of_a_missing_database_is_a_clear_error(tmp_path, capsys):
    db = str(tmp_path / "nothing.sqlite")
    assert main(["export", "--db", db, "images"]) == 2
    assert "no database at" in capsys.readouterr().err
    assert main(["db", "current", "--db", db]) == 2


@pytest.mark.parametrize("radius", [5e-324, 2.2e-311, 1e-9])
def test_cone_of_a_vanishing_radius_is_not_an_error(store, radius):
    """Found by the web fuzz test: a subnormal radius overflowed 1 / radius."""
    from trapline.storage.export import cone
    from trapline.storage.healpix import HEALPIX_LEVEL, cone_level

    assert cone_level(radius) == HEALPIX_LEVEL
    store.write(make_result("a", [1, 2], ra=[10.0, 11.0], dec=[0.0, 0.0]))
    with store.engine.connect() as conn:
        assert len(cone(conn, 10.0, 0.001, radius)) == 0
        assert cone(conn, 10.0, 0.0, radius)["source_id"].tolist() == [1]  # distance 0
        assert len(cone(conn, 10.0, 0.0, 0.5)) == 1
