"""Server time per page of the web interface on a large run, SQLite and PostgreSQL.

Builds a database of 10,000 sources x 100 images = 1,000,000 measurements (bulk
inserts through SQLAlchemy Core into the storage models), then asks every page
through the in-process ASGI client and prints the median time per page (target: every
page under 300 ms).

    python bench/web_bench.py                       # both back ends
    python bench/web_bench.py --backends sqlite --sources 2000 --images 20

PostgreSQL: ``--pg-admin`` (default postgresql://postgres@127.0.0.1:5432/postgres) is
used to create and drop a scratch database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from trapline.storage import Store, models
from trapline.storage.healpix import healpix_index

T0 = 61000.0
TARGET_MS = 300.0


def fill(store: Store, n_sources: int, n_images: int, bands: int = 2, seed: int = 0) -> int:
    """A synthetic run: images, sources, one measurement per source and image, band
    statistics, candidates and a few monitors; returns the measurements written."""
    rng = np.random.default_rng(seed)
    epochs = n_images // bands
    times = T0 + np.arange(epochs) * 10 / 86400
    ra = 150 + rng.uniform(-2, 2, n_sources)
    dec = 30 + rng.uniform(-2, 2, n_sources)
    hp = healpix_index(ra, dec)
    flux = 10 ** rng.uniform(-2.5, 0, n_sources)
    processed = np.datetime64("2026-11-28T00:00:00")
    with store.engine.begin() as conn:
        conn.execute(insert(models.Image), [
            dict(image_id=i + 1, image_key=f"k{i}", path=f"/nowhere/img{i}.fits",
                 time_mjd=float(times[i // bands]), freq_hz=150e6 + 5e6 * (i % bands),
                 band=i % bands, rms=float(1e-3 * (1 + 0.1 * rng.random())), bmaj_deg=0.01,
                 bmin_deg=0.008, bpa_deg=30.0, accepted=bool(i % 37), n_blind=n_sources,
                 reject_reason=None if i % 37 else "rms too high", n_forced=0, n_monitor=0,
                 processed_at=processed.astype(object))
            for i in range(epochs * bands)])
        conn.execute(insert(models.Source), [
            dict(source_id=s + 1, ra=float(ra[s]), dec=float(dec[s]), ra_err=1e-4, dec_err=1e-4,
                 first_time_mjd=T0, last_time_mjd=float(times[-1]), n_blind=epochs * bands,
                 n_forced=0, is_monitor=False, healpix=int(hp[s]))
            for s in range(n_sources)])
        conn.execute(insert(models.BandStatistics), [
            dict(source_id=s + 1, band=b, n=epochs, sw_int=float(1e6 * epochs),
                 swf_int=float(1e6 * epochs * flux[s]), eta_int=float(10 ** rng.normal(0, 1)),
                 v_int=float(10 ** rng.normal(-1.5, 0.5)), eta_peak=None, v_peak=None,
                 max_snr=float(flux[s] / 1e-3), misses=0)
            for s in range(n_sources) for b in range(bands)])
        conn.execute(insert(models.Candidate), [
            dict(source_id=int(s), image_id=int(rng.integers(1, epochs * bands)), kind=k,
                 level="likely", band=0, time_mjd=float(rng.choice(times)), significance=9.0,
                 flux=0.01, limit=0.005)
            for s, k in zip(rng.choice(n_sources, 500, replace=False) + 1,
                            ["new", "variable"] * 250, strict=True)])
        conn.execute(insert(models.Monitor), [
            dict(name=f"m{i}", ra=150.0 + i / 10, dec=30.0, source_id=None, added_mjd=T0)
            for i in range(5)])
        written = 0
        ids = np.arange(1, n_sources + 1)
        for i in range(epochs * bands):
            f = flux * (1 + 0.05 * rng.standard_normal(n_sources))
            conn.execute(insert(models.Measurement), [
                dict(source_id=int(s), image_id=i + 1, kind="blind",
                     time_mjd=float(times[i // bands]), band=i % bands, ra=float(r), dec=float(d),
                     ra_err=1e-4, dec_err=1e-4, peak_flux=float(v), peak_flux_err=1e-3,
                     int_flux=float(v), int_flux_err=1e-3, snr=float(v / 1e-3))
                for s, r, d, v in zip(ids, ra, dec, f, strict=True)])
            written += n_sources
    return written


def pages(n_sources: int, n_images: int) -> list[str]:
    """The pages to time (HTML and JSON twins), deep pages included."""
    mid = n_sources // 2
    return [
        "/", "/index.json", "/images", f"/images?page={max(1, n_images // 50)}&sort=rms",
        f"/images/{n_images // 2}", f"/images/{n_images // 2}.json?page=50",
        "/sources", "/sources.json?sort=eta_int&order=desc",
        f"/sources?page={max(1, n_sources // 50)}&sort=mean_int_flux",
        "/sources?flux_min=0.1&eta_min=1&v_min=0.05&n_min=10",
        "/sources?ra=150&dec=30&radius=0.2", f"/sources/{mid}", f"/sources/{mid}.json",
        f"/sources/{mid}/lightcurve.json?resolution=600", "/etav", "/etav.json",
        "/candidates", "/candidates.json?kind=new&page=3", "/cone?ra=150&dec=30&radius=0.2",
        "/monitors", "/images.csv?per_page=500",
    ]  # fmt: skip


def time_pages(url: str, paths: list[str], repeat: int) -> dict[str, float]:
    """Median server time (ms) per page through the in-process ASGI client."""
    from fastapi.testclient import TestClient

    from trapline.web import create_app

    out = {}
    with TestClient(create_app(url, "bench", use_env_token=False)) as client:
        for path in paths:
            client.get(path)  # warm up
            samples = []
            for _ in range(repeat):
                t = time.perf_counter()
                answer = client.get(path)
                samples.append((time.perf_counter() - t) * 1000)
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {answer.status_code} {answer.text[:200]}")
            out[path] = statistics.median(samples)
    return out


def build(url: str, n_sources: int, n_images: int) -> float:
    t = time.perf_counter()
    with Store(url) as store:
        store.upgrade()
        n = fill(store, n_sources, n_images)
    took = time.perf_counter() - t
    print(f"  built {n:,} measurements in {took:.1f} s", file=sys.stderr)
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", type=int, default=10_000)
    p.add_argument("--images", type=int, default=100, help="images (2 bands)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args(argv)
    paths = pages(args.sources, args.images)
    results: dict[str, dict[str, float]] = {}
    for backend in args.backends.split(","):
        print(f"{backend}: {args.sources:,} sources x {args.images} images", file=sys.stderr)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
                build(url, args.sources, args.images)
                results[backend] = time_pages(url, paths, args.repeat)
        elif backend == "postgresql":
            try:
                import psycopg
                from psycopg import sql

                admin = psycopg.connect(args.pg_admin, autocommit=True, connect_timeout=3)
            except Exception as exc:  # no server: skip this back end
                print(f"  skipped: {exc}", file=sys.stderr)
                continue
            name = f"trapline_webbench_{uuid.uuid4().hex[:8]}"
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                url = args.pg_admin.rsplit("/", 1)[0] + f"/{name}"
                build(url, args.sources, args.images)
                results[backend] = time_pages(url, paths, args.repeat)
            finally:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                              .format(sql.Identifier(name)))
                admin.close()
    backends = list(results)
    width = max(len(x) for x in paths)
    print(f"\n{'page':<{width}}  " + "  ".join(f"{b + ' ms':>13}" for b in backends))
    worst = 0.0
    for path in paths:
        cells = []
        for b in backends:
            ms = results[b][path]
            worst = max(worst, ms)
            cells.append(f"{ms:>11.1f}{' !' if ms > TARGET_MS else '  '}")
        print(f"{path:<{width}}  " + "  ".join(cells))
    print(f"\nslowest median {worst:.1f} ms (target {TARGET_MS:.0f} ms): "
          f"{'OK' if worst <= TARGET_MS else 'OVER'}")
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
