"""Multi-resolution lightcurves: one AARTFAAC day, time-compressed.

Measurements are written straight into the database (no images to extract): N
sources x 4 bands at 1 Hz for 24 hours, ten minutes at a time, each followed by
compaction passes as the pipeline plug-in would run them. Reported, on SQLite and
PostgreSQL:

* rows and bytes of the lightcurve tables (measurements and bins, with their indexes)
  after the day with compaction, against the raw rows the day made (bytes without
  compaction: measured bytes per raw row x raw rows, since writing the uncompacted day
  twice would take most of the budget). The image table (4 rows a second, whatever the
  number of sources) is reported with the whole database size;
* compaction throughput (raw rows down-sampled per second);
* query time of one source's full-history lightcurve (4 bands), median of repeats,
  against the same query on a database holding that source's raw day (baseline).

Ladder: raw 15 min, 1-minute bins 6 h, 1-hour bins forever.

    python bench/lightcurve_bench.py [--sources 20] [--hours 24] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, environment_line, table  # noqa: E402

from trapline.storage import Store, models  # noqa: E402
from trapline.storage.compaction import Tier, compact  # noqa: E402
from trapline.storage.lightcurves import lightcurve  # noqa: E402

LADDER = [Tier(0, 900), Tier(60, 6 * 3600), Tier(3600, 0)]
BANDS = 4
T0 = 61000.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


CHUNK_S = 600  # written, then compacted, every 10 minutes of data


def write_chunk(store: Store, chunk: int, n_sources: int, rng: np.random.Generator,
                first_image_id: int) -> tuple[int, float]:
    """CHUNK_S seconds of 1 Hz images in 4 bands and their measurements; (rows, s)."""
    seconds = np.arange(chunk * CHUNK_S, (chunk + 1) * CHUNK_S)
    times = T0 + seconds / 86400.0
    n_img = len(times) * BANDS
    image_ids = first_image_id + np.arange(n_img)
    img_time = np.repeat(times, BANDS)
    img_band = np.tile(np.arange(BANDS), len(times))
    src = np.tile(np.arange(1, n_sources + 1), n_img)
    flux = 1.0 + rng.normal(0, 0.05, len(src))
    err = np.full(len(src), 0.05)
    start = time.perf_counter()
    with store.engine.begin() as conn:
        conn.execute(insert(models.Image), [
            dict(image_id=int(i), image_key=f"k{i}", path="", time_mjd=float(t), band=int(b),
                 accepted=True, n_blind=n_sources, n_forced=0, n_monitor=0,
                 processed_at=np.datetime64("2026-11-28").astype(object))
            for i, t, b in zip(image_ids, img_time, img_band, strict=True)])
        columns = {
            "source_id": src, "image_id": np.repeat(image_ids, n_sources),
            "kind": np.full(len(src), "blind", dtype=object),
            "time_mjd": np.repeat(img_time, n_sources), "freq_hz": np.full(len(src), 6e7),
            "band": np.repeat(img_band, n_sources), "ra": np.zeros(len(src)),
            "dec": np.zeros(len(src)), "ra_err": np.full(len(src), 1e-3),
            "dec_err": np.full(len(src), 1e-3), "peak_flux": flux, "peak_flux_err": err,
            "int_flux": flux, "int_flux_err": err, "snr": flux / err,
            "smaj_asec": np.zeros(len(src)), "smin_asec": np.zeros(len(src)),
            "pa_deg": np.zeros(len(src)),
        }
        if conn.dialect.name == "postgresql":
            from trapline.storage.pgcopy import copy_rows

            copy_rows(conn, models.Measurement.__table__, columns)
        else:
            keys = list(columns)
            rows = [dict(zip(keys, r, strict=True)) for r in zip(
                *(c.tolist() for c in columns.values()), strict=True)]
            conn.execute(insert(models.Measurement), rows)
    return len(src), time.perf_counter() - start


def size_bytes(store: Store) -> int:
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar())
        page = conn.execute(text("PRAGMA page_count")).scalar()
        free = conn.execute(text("PRAGMA freelist_count")).scalar()
        return int((page - free) * conn.execute(text("PRAGMA page_size")).scalar())


LIGHTCURVE_TABLES = ("measurement", "lightcurve_bin")


def lightcurve_bytes(store: Store) -> int:
    """Bytes of the lightcurve tables (raw measurements and bins) with their indexes."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return int(sum(conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar()
                           for t in LIGHTCURVE_TABLES))
        rows = conn.execute(text("SELECT tbl_name, name FROM sqlite_master")).all()
        names = [n for t, n in rows if t in LIGHTCURVE_TABLES]
        sizes = {n: b for n, b in conn.execute(
            text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")).all()}
        return int(sum(sizes.get(n, 0) for n in names))


def vacuum(store: Store) -> None:
    """PostgreSQL: what autovacuum does in production, so freed space is reused by later
    inserts (SQLite reuses freed pages by itself)."""
    if store.engine.dialect.name != "postgresql":
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in LIGHTCURVE_TABLES:
            conn.execute(text(f"VACUUM {name}"))


def count(store: Store, model) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar())


def query_ms(store: Store, source_id: int, repeats: int = 9) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        with store.engine.connect() as conn:
            n = len(lightcurve(conn, source_id))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, n


def seed_sources(store: Store, n_sources: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(models.Source), [
            dict(source_id=s, ra=float(s), dec=0.0, ra_err=1e-3, dec_err=1e-3,
                 first_time_mjd=T0, last_time_mjd=T0, n_blind=0, n_forced=0,
                 is_monitor=False, healpix=0) for s in range(1, n_sources + 1)])


def run_day(url: str, n_sources: int, hours: int) -> dict:
    rng = np.random.default_rng(1)
    store = Store(url)
    store.upgrade()
    seed_sources(store, n_sources)
    raw_rows = 0
    write_s = compact_s = 0.0
    compacted = 0
    bytes_per_raw = None
    for chunk in range(hours * 3600 // CHUNK_S):
        rows, seconds = write_chunk(store, chunk, n_sources, rng, chunk * CHUNK_S * BANDS + 1)
        raw_rows += rows
        write_s += seconds
        if chunk == 0:
            bytes_per_raw = lightcurve_bytes(store) / rows
        start = time.perf_counter()
        passes = compact(store.engine, LADDER, batch_rows=50_000, candidate_window_s=0)
        compact_s += time.perf_counter() - start
        compacted += sum(p.rows_deleted for p in passes)
        vacuum(store)
    stored = {"raw": count(store, models.Measurement), "bins": count(store, models.LightcurveBin)}
    out = {
        "raw_rows_made": raw_rows, "rows_stored": stored["raw"] + stored["bins"],
        "raw_left": stored["raw"], "bins": stored["bins"], "bytes": lightcurve_bytes(store),
        "db_bytes": size_bytes(store),
        "bytes_uncompacted_est": bytes_per_raw * raw_rows, "write_s": write_s,
        "compact_s": compact_s, "compacted_rows": compacted,
    }
    out["query_ms"], out["query_points"] = query_ms(store, 1)
    store.close()
    # Baseline: the same source's whole day as raw rows, queried the same way.
    base_url = url + "_raw" if url.startswith("sqlite") else url
    return out, base_url


def baseline_raw_query(url: str, hours: int) -> tuple[float, int]:
    store = Store(url)
    store.upgrade()
    seed_sources(store, 1)
    rng = np.random.default_rng(2)
    for chunk in range(hours * 3600 // CHUNK_S):
        write_chunk(store, chunk, 1, rng, chunk * CHUNK_S * BANDS + 1)
    result = query_ms(store, 1)
    store.close()
    return result


def pg_database(name: str):
    import psycopg

    admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin, f"postgresql://postgres@127.0.0.1:5432/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print("Trapline multi-resolution lightcurves: one AARTFAAC day, time-compressed")
    print(environment_line(environment()))
    print(f"{args.sources} sources x {BANDS} bands x 1 Hz x {args.hours} h; ladder raw 15 min, "
          "60 s bins 6 h, 1 h bins forever\n")
    rows: list[list[str]] = []
    names: list[str] = []
    tmp = Path(tempfile.mkdtemp())
    backends = [("SQLite", f"sqlite:///{tmp / 'day.sqlite'}", f"sqlite:///{tmp / 'raw.sqlite'}")]
    admins = []
    if not args.no_postgres:
        try:
            admin, day_url = pg_database(f"trapline_bench_day_{os.getpid()}")
            admin2, raw_url = pg_database(f"trapline_bench_raw_{os.getpid()}")
            admins = [(admin, f"trapline_bench_day_{os.getpid()}"),
                      (admin2, f"trapline_bench_raw_{os.getpid()}")]
            backends.append(("PostgreSQL", day_url, raw_url))
        except Exception as exc:  # noqa: BLE001
            print(f"PostgreSQL skipped: {exc}")
    try:
        for name, day_url, raw_url in backends:
            day, _ = run_day(day_url, args.sources, args.hours)
            base_ms, base_n = baseline_raw_query(raw_url, args.hours)
            names.append(name)
            rows.append([
                f"{day['raw_rows_made']:,}", f"{day['rows_stored']:,} "
                f"({day['raw_left']:,} raw + {day['bins']:,} bins)",
                f"{100 * day['rows_stored'] / day['raw_rows_made']:.2f}%",
                f"{day['bytes'] / 2**20:.1f} MiB "
                f"(whole database {day['db_bytes'] / 2**20:.0f} MiB)",
                f"{day['bytes_uncompacted_est'] / 2**20:.0f} MiB",
                f"{100 * day['bytes'] / day['bytes_uncompacted_est']:.2f}%  (< 5%: "
                f"{'PASS' if day['bytes'] < 0.05 * day['bytes_uncompacted_est'] else 'MISS'})",
                f"{day['compacted_rows'] / max(day['compact_s'], 1e-9):,.0f} rows/s",
                f"{day['raw_rows_made'] / day['write_s']:,.0f} rows/s",
                f"{day['query_ms']:.1f} ms, {day['query_points']} points  (< 100 ms: "
                f"{'PASS' if day['query_ms'] < 100 else 'MISS'})",
                f"{base_ms:.0f} ms, {base_n} points",
                f"{base_ms / day['query_ms']:.0f}x",
            ])
    finally:
        for admin, db in admins:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            admin.close()
    metrics = ["raw rows made", "rows stored", "rows, % of raw", "lightcurve bytes stored",
               "bytes without compaction (est.)", "bytes, % of raw", "compaction throughput",
               "write rate (bulk)", "full-history lightcurve query (median)",
               "baseline: same query on the raw day", "query speed-up"]
    print(table(["", *names], [[m, *(r[i] for r in rows)] for i, m in enumerate(metrics)],
                "l" * (len(names) + 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
