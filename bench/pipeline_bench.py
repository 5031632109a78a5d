"""Pipeline benchmark: end-to-end throughput, flat cost over a long run, start-up.

    python bench/pipeline_bench.py [--quick] [--repeats N] [--json FILE] [--no-pg]
                                   [--pg-admin URL] [--profile] [--allsky]

1. Throughput: simulated 1024x1024 images with ~300 sources (FITS in a temporary folder)
   through ``run_files`` into SQLite with one worker (the one-core baseline) and one per
   core; the same images driven stage by stage to show where the time goes (measuring vs
   the ordered stage, and in the latter ``SkyDecider.decide`` vs ``Store.write_timestep``); the
   same against PostgreSQL when it is reachable (a scratch database, dropped afterwards).
   ``--allsky``: the same on AARTFAAC-like all-sky 2300x2300 images (~1000 sources).
2. Flat cost: thousands of small images generated in memory, one process, per-image
   times of the first 10% against the last 10%.
3. Start-up: ``trapline run ONE_IMAGE`` in a fresh process, and the bare imports.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    NOISE_NOTE,
    Timing,
    environment,
    environment_line,
    mark,
    millis,
    one_core,
    one_core_env,
    seconds,
    table,
    timed,
)
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.measure import measure
from trapline.run import Driver, default_workers, run_files, sort_by_time
from trapline.simulate import SimulationConfig, iter_images, write_series
from trapline.storage import Store

PER_CORE_TARGET = 10.0  # images/s per core, 1024x1024 / ~300 sources, all cores used
FLAT_TARGET = 1.10  # last 10% of a long run within 10% of the first 10%
STARTUP_TARGET_S = 3.0
STARTUP_RUNS = 3
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

BIG = dict(
    size=1024, n_steady=280, n_variable=12, n_transient=4, n_fading=4, min_separation_beams=3
)  # 300 sources in all
SMALL = dict(size=128, n_steady=8, n_variable=2, n_transient=2, n_fading=1)
# --allsky: AARTFAAC-2300-like all-sky images (horizon blanked), ~1000 sources.
ALLSKY = dict(size=2300, allsky=True, n_steady=1000, n_variable=10, n_transient=4, n_fading=2)


# ---- helpers ----------------------------------------------------------------------------


class Stopwatch:
    """Replaces ``obj.name`` (a bound method) by a wrapper that records each call's time."""

    def __init__(self, obj: object, name: str) -> None:
        self.times: list[float] = []
        fn = getattr(obj, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times.append(time.perf_counter() - start)

        setattr(obj, name, wrapper)


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (pool workers, once shut down)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}"


def remove_sqlite(folder: Path, name: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        (folder / (name + suffix)).unlink(missing_ok=True)


def config_with(workers: int) -> PipelineConfig:
    config = PipelineConfig()
    config.run.workers = workers
    return config


def pg_admin_ok(admin: str) -> str | None:
    """None when the admin connection works, else why not."""
    try:
        import psycopg

        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return None


@contextlib.contextmanager
def scratch_pg(admin: str) -> Iterator[str]:
    """A fresh database ``trapline_bench_<pid>`` on the admin connection's server; dropped
    on exit. Yields its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"trapline_bench_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentiles(values: np.ndarray) -> dict[str, float]:
    p = np.percentile(values, [50, 90, 99])
    return {
        "p50_s": float(p[0]),
        "p90_s": float(p[1]),
        "p99_s": float(p[2]),
        "max_s": float(values.max()),
    }


# ---- 1. throughput ----------------------------------------------------------------------


@contextlib.contextmanager
def completion_times() -> Iterator[list[float]]:
    """perf_counter() at the end of each Driver.process, once per image of the timestep,
    while in the block."""
    stamps: list[float] = []
    original = Driver.process

    def process(self: Driver, timestep: Any) -> Any:
        try:
            return original(self, timestep)
        finally:
            stamps.extend([time.perf_counter()] * len(timestep))

    Driver.process = process  # type: ignore[method-assign]
    try:
        yield stamps
    finally:
        Driver.process = original  # type: ignore[method-assign]


def throughput_run(paths: list[str], url: str, workers: int) -> dict[str, Any]:
    """One ``run_files`` run: wall time, CPU time (this process + pool workers, reaped
    at the end of the run) and the steady rate: images/s from the completion of the
    first 10% of the images to the last (no pool start-up, no first-image costs)."""
    gc.collect()
    cpu0 = cpu_seconds()
    with completion_times() as stamps:
        wall, summary = timed(lambda: run_files(paths, url, config_with(workers)))
    cpu = cpu_seconds() - cpu0
    images = summary.accepted + sum(summary.rejected.values())
    if images != len(paths) or summary.storage_errors:
        raise RuntimeError(f"run incomplete: {summary.report()}")
    skip = max(1, len(stamps) // 10)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "accepted": summary.accepted,
        "sources": summary.n_sources,
        "steady_per_s": (len(stamps) - skip) / (stamps[-1] - stamps[skip - 1]),
    }


@dataclass
class Split:
    """Per-image times of a run driven stage by stage in one process."""

    measure: list[float] = field(default_factory=list)
    ordered: list[float] = field(default_factory=list)  # Driver.process
    process: list[float] = field(default_factory=list)  # SkyDecider.decide
    write: list[float] = field(default_factory=list)  # Store.write_timestep

    def arrays(self) -> dict[str, np.ndarray]:
        ordered = np.array(self.ordered)
        process, write = np.array(self.process), np.array(self.write)
        measured = np.array(self.measure)
        return {
            "measure": measured,
            "process": process,
            "write": write,
            "rest": ordered - process - write,
            "ordered": ordered,
            "total": measured + ordered,
        }


def drive(images: Iterator[Any], url: str, split: Split,
          config: PipelineConfig | None = None) -> Driver:
    """Measure and process images one by one in this process, timing each stage
    (``config``: default, with one worker)."""
    config = config or config_with(1)
    with Store(url) as store:
        store.upgrade()
        runner = Driver(store, config)
        process = Stopwatch(runner.decider, "decide")
        write = Stopwatch(store, "write_timestep")
        for image in images:
            t0 = time.perf_counter()
            measured = measure(image, config)
            t1 = time.perf_counter()
            runner.process([measured])
            t2 = time.perf_counter()
            split.measure.append(t1 - t0)
            split.ordered.append(t2 - t1)
        split.process, split.write = process.times, write.times
        if len(split.write) != len(split.ordered) or len(split.process) != len(split.ordered):
            raise RuntimeError("some images were skipped or not written")
    return runner


def split_summary(split: Split, cores: int) -> dict[str, Any]:
    """Per stage: first image, mean, median of the last quarter, share of the total time;
    and the throughput ceilings these imply (over the run, and over its last quarter)."""
    a = split.arrays()
    total = float(a["total"].sum())
    quarter = max(1, len(a["total"]) // 4)
    out: dict[str, Any] = {
        name: {
            "first_s": float(v[0]),
            "mean_s": float(v.mean()),
            "median_s": float(np.median(v)),
            "last_quarter_median_s": float(np.median(v[-quarter:])),
            "share": float(v.sum()) / total,
        }
        for name, v in a.items()
    }
    for suffix, key in (("", "mean_s"), ("_last_quarter", "last_quarter_median_s")):
        ordered, measured = out["ordered"][key], out["measure"][key]
        out["ceiling_ordered_per_s" + suffix] = 1.0 / ordered
        out["ceiling_cores_per_s" + suffix] = cores / (measured + ordered)
    return out


def bench_throughput(
    paths: list[str], tmp: Path, repeats: int, cores: int, pg_admin: str | None
) -> dict[str, Any]:
    warm = run_files(paths[:2], sqlite_url(tmp, "warm.sqlite"), config_with(1))  # imports
    del warm
    remove_sqlite(tmp, "warm.sqlite")
    runs: dict[str, list[dict[str, Any]]] = {"sqlite_w1": [], "sqlite_w0": []}
    for i in range(repeats):  # interleaved, so load changes hit both alike
        for key, workers in (("sqlite_w1", 1), ("sqlite_w0", 0)):
            name = f"{key}_{i}.sqlite"
            runs[key].append(throughput_run(paths, sqlite_url(tmp, name), workers))
            remove_sqlite(tmp, name)
    split = Split()
    drive(iter(sort_by_time(paths)), sqlite_url(tmp, "split.sqlite"), split)
    remove_sqlite(tmp, "split.sqlite")
    result: dict[str, Any] = {
        "images": len(paths),
        "runs": runs,
        "split": {"sqlite": split_summary(split, cores)},
    }
    if pg_admin:
        with scratch_pg(pg_admin) as url:
            runs["pg_w0"] = [throughput_run(paths, url, 0)]
        split = Split()
        with scratch_pg(pg_admin) as url:
            drive(iter(sort_by_time(paths)), url, split)
        result["split"]["postgresql"] = split_summary(split, cores)
    for key, rs in runs.items():
        wall = Timing(tuple(r["wall_s"] for r in rs))
        result[key] = {
            **wall.as_dict(),
            "images_per_s": len(paths) / wall.median,
            "cores_busy": float(np.median([r["cpu_s"] / r["wall_s"] for r in rs])),
            "steady_per_s": float(np.median([r["steady_per_s"] for r in rs])),
        }
    base = result["sqlite_w1"]["images_per_s"]
    for key in runs:
        r = result[key]
        r["workers"] = 1 if key.endswith("w1") else cores
        r["vs_baseline"] = r["images_per_s"] / base
        r["per_core_per_s"] = r["images_per_s"] / r["workers"]
        r["steady_per_core_per_s"] = r["steady_per_s"] / r["workers"]
    return result


def judge_throughput(result: dict[str, Any]) -> None:
    """The per-core target (1024x1024, ~300 sources) against the all-cores run."""
    w0 = result["sqlite_w0"]
    w0["target_per_core_per_s"] = PER_CORE_TARGET
    w0["pass"] = w0["per_core_per_s"] >= PER_CORE_TARGET
    w0["steady_pass"] = w0["steady_per_core_per_s"] >= PER_CORE_TARGET


# ---- 2. flat cost -----------------------------------------------------------------------


def bench_flat(n_images: int, tmp: Path) -> dict[str, Any]:
    sim = SimulationConfig(seed=11, epochs=n_images, bands=1, **SMALL)
    split = Split()
    name = "flat.sqlite"
    images = (image for image, _ in iter_images(sim))
    gc.collect()
    start = time.perf_counter()
    runner = drive(images, sqlite_url(tmp, name), split)
    wall = time.perf_counter() - start
    db_mb = sum(p.stat().st_size for p in tmp.glob(name + "*")) / 1e6
    remove_sqlite(tmp, name)
    a = split.arrays()
    tenth = max(1, n_images // 10)
    rows = {}
    for key in ("total", "ordered", "process", "write", "measure"):
        v = a[key]
        first, last = float(np.median(v[:tenth])), float(np.median(v[-tenth:]))
        rows[key] = {
            "first_s": first,
            "last_s": last,
            "last_over_first": last / first,
            "pass": last / first <= FLAT_TARGET,
            **percentiles(v),
        }
    # The measuring stage does not depend on history at all: its drift is the
    # machine's (shared, its speed changes within a run). Each stage's drift divided by
    # it is the drift history causes.
    control = rows["measure"]["last_over_first"]
    for key, r in rows.items():
        if key != "measure":
            r["vs_measure"] = r["last_over_first"] / control
            r["pass_vs_measure"] = r["vs_measure"] <= FLAT_TARGET
    deciles = [float(np.median(chunk)) for chunk in np.array_split(a["total"], 10)]
    sky = runner.decider.sky.sources
    return {
        "images": n_images,
        "size": SMALL["size"],
        "sim_sources": sim.n_sources,
        "wall_s": wall,
        "tenth": tenth,
        "rows": rows,
        "decile_median_total_s": deciles,
        "sky_sources": int((~sky.is_monitor).sum()),
        "measurements": dict(runner.summary.measurements),
        "db_mb": db_mb,
        "target_last_over_first": FLAT_TARGET,
    }


# ---- 3. start-up ------------------------------------------------------------------------


def trapline_command() -> list[str]:
    """The console script of this interpreter (not a pyenv/venv shim, if it can be found)."""
    here = shutil.which("trapline", path=str(Path(sys.executable).parent))
    exe = here or shutil.which("trapline")
    if exe is None:
        return [sys.executable, "-c", "import sys; from trapline.cli import main; sys.exit(main())"]
    return [exe]


def bench_startup(image: str, tmp: Path) -> dict[str, Any]:
    cmds: dict[str, Callable[[int], list[str]]] = {
        "python -c pass": lambda i: [sys.executable, "-c", "pass"],
        "python -c 'import trapline'": lambda i: [sys.executable, "-c", "import trapline"],
        "import runner + storage": lambda i: [
            sys.executable,
            "-c",
            "import trapline.run, trapline.storage.store, trapline.cli",
        ],
        "trapline run ONE_IMAGE": lambda i: [
            *trapline_command(),
            "run",
            image,
            "--db",
            sqlite_url(tmp, f"startup{i}.sqlite"),
            "--workers",
            "1",
            "--no-progress",
        ],
    }
    out: dict[str, Any] = {}
    for label, cmd in cmds.items():
        times = []
        for i in range(STARTUP_RUNS):
            run = functools.partial(
                subprocess.run, cmd(i), env=one_core_env(), capture_output=True, text=True
            )
            wall, proc = timed(run)
            if proc.returncode != 0:
                raise RuntimeError(f"{label} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            times.append(wall)
            remove_sqlite(tmp, f"startup{i}.sqlite")
        out[label] = Timing(tuple(times)).as_dict()
    one = out["trapline run ONE_IMAGE"]
    one["target_s"] = STARTUP_TARGET_S
    one["pass"] = one["median_s"] < STARTUP_TARGET_S
    out["command"] = " ".join(trapline_command()[:1])
    return out


# ---- profile ----------------------------------------------------------------------------


def profile_ordered(paths: list[str], tmp: Path, n: int = 10, top: int = 15) -> None:
    """cProfile of Driver.process over the first ``n`` 1024x1024 images (SQLite)."""
    config = config_with(1)
    ordered = sort_by_time(paths)[:n]
    measured = [measure(p, config) for p in ordered]
    with Store(sqlite_url(tmp, "profile.sqlite")) as store:
        store.upgrade()
        runner = Driver(store, config)
        profiler = cProfile.Profile()
        for m in measured:
            profiler.runcall(runner.process, [m])
    remove_sqlite(tmp, "profile.sqlite")
    for key in ("tottime", "cumulative"):
        print(
            f"\ncProfile of the ordered stage (Driver.process), {n} images 1024x1024, "
            f"SQLite, top {top} by {key}:"
        )
        pstats.Stats(profiler).strip_dirs().sort_stats(key).print_stats(top)


# ---- report -----------------------------------------------------------------------------


def rate(x: float) -> str:
    return f"{x:.2f}/s"


def ratio(x: float) -> str:
    return f"{x:.2f}x"


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def report(result: dict[str, Any]) -> None:
    print(
        f"\nTrapline pipeline benchmark ({'quick' if result['quick'] else 'default'}"
        f"{', all-sky' if result.get('allsky') else ''}): "
        f"{result['repeats']} repeat(s), {result['cores']} cores "
        f"(workers=0 -> {result['cores']})"
    )
    print(environment_line(result["environment"]))
    print(NOISE_NOTE)
    if "throughput" in result:
        report_throughput(result["throughput"], result["cores"], result)
    if "flat" in result:
        report_flat(result["flat"])
    if "startup" in result:
        report_startup(result["startup"])
    print(f"\ntotal benchmark time {seconds(result['elapsed_s'], 0)}")


def report_throughput(tp: dict[str, Any], cores: int, result: dict[str, Any]) -> None:
    print(
        f"\n1. End-to-end throughput: {tp['images']} images {result['series']} "
        f"({result['epochs']} epochs x 2 bands, FITS), run_files; median over runs"
    )
    labels = {
        "sqlite_w1": "SQLite, workers=1 (baseline)",
        "sqlite_w0": "SQLite, workers=0",
        "pg_w0": "PostgreSQL, workers=0",
    }
    rows = []
    for key, label in labels.items():
        if key not in tp:
            continue
        r = tp[key]
        target = ""
        if "pass" in r:
            target = (f">= {PER_CORE_TARGET:g}/s per core: run {mark(r['pass'])}, "
                      f"steady {mark(r['steady_pass'])}")
        rows.append(
            [
                label,
                r["workers"],
                len(r["times_s"]),
                seconds(r["median_s"], 2),
                rate(r["images_per_s"]),
                ratio(r["vs_baseline"]),
                rate(r["per_core_per_s"]),
                rate(r["steady_per_s"]),
                rate(r["steady_per_core_per_s"]),
                f"{r['cores_busy']:.2f}",
                target,
            ]
        )
    headers = [
        "database, workers",
        "procs",
        "runs",
        "wall",
        "images/s",
        "vs base",
        "per core",
        "steady",
        "per core",
        "cores busy",
        "target",
    ]
    print(table(headers, rows, "lrrrrrrrrrl"))
    if result.get("allsky"):
        print(f"   AARTFAAC at one image per second per band: {cores} cores keep up with "
              f"{int(tp['sqlite_w0']['steady_per_s'])} bands (steady rate); the per-core "
              "target is for 1024x1024 images")
    if "pg_skipped" in result:
        print(f"   PostgreSQL: skipped ({result['pg_skipped']})")
    print(
        "   vs base: images/s / SQLite workers=1 images/s; steady: images/s from the first"
        " 10% of the images done to the last"
    )
    print(
        "   (the pipeline full: no pool start-up, no first-image costs); cores busy: CPU"
        " seconds of the run (main + workers) / wall;"
    )
    print(
        "   (the PostgreSQL server's own CPU is not counted); wall includes process-pool"
        " start-up, schema check and header sort."
    )

    split = tp["split"]
    dbs = list(split)
    print(
        "\n   Where the time goes: the same images driven one by one in this process "
        "(workers=1), time per image"
    )
    stages = [
        ("measure", "measure: read + QC + extract (parallel)"),
        ("process", "ordered: SkyDecider.decide"),
        ("write", "ordered: Store.write_timestep"),
        ("rest", "ordered: rest (has_image, state, ...)"),
        ("ordered", "ordered stage in all (serial)"),
        ("total", "total"),
    ]
    rows = []
    for db in dbs:
        for key, label in stages:
            r = split[db][key]
            rows.append(
                [
                    db,
                    label,
                    millis(r["first_s"]),
                    millis(r["mean_s"]),
                    millis(r["median_s"]),
                    millis(r["last_quarter_median_s"]),
                    pct(r["share"]),
                ]
            )
    headers = ["database", "stage", "first image", "mean", "median", "last 25%", "share"]
    print(table(headers, rows, "llrrrrr"))
    print("   last 25%: median over the last quarter of the run; share: of the summed total.")
    for db in dbs:
        s = split[db]
        for suffix, when in (("", "over the run (means)"), ("_last_quarter", "last 25%")):
            o, c = s["ceiling_ordered_per_s" + suffix], s["ceiling_cores_per_s" + suffix]
            limit = "the ordered stage" if o < c else "CPU"
            print(
                f"   {db}, {when}: serial ordered stage alone -> at most {rate(o)}; "
                f"{cores} cores doing measure + ordered -> at most {rate(c)}; limit: {limit}"
            )



def report_flat(fl: dict[str, Any]) -> None:
    print(
        f"\n2. Flat cost over a long run: {fl['images']:,} images {fl['size']}x{fl['size']}"
        f" ({fl['sim_sources']} simulated sources, 1 band, in memory), workers=1, SQLite;"
        f" {seconds(fl['wall_s'], 1)}"
    )
    names = {
        "total": "total (measure + ordered)",
        "ordered": "ordered (Driver.process)",
        "process": "SkyDecider.decide",
        "write": "Store.write_timestep",
        "measure": "measure (read+QC+extract)",
    }
    rows = []
    for key, label in names.items():
        r = fl["rows"][key]
        rows.append(
            [
                label,
                millis(r["first_s"], 2),
                millis(r["last_s"], 2),
                ratio(r["last_over_first"]),
                millis(r["p50_s"], 2),
                millis(r["p90_s"], 2),
                millis(r["p99_s"], 2),
                millis(r["max_s"], 1),
                ratio(r["vs_measure"]) if "vs_measure" in r else "(control)",
                f"<= {FLAT_TARGET:.2f}x: raw {mark(r['pass'])}"
                + (f", vs measure {mark(r['pass_vs_measure'])}" if "vs_measure" in r else ""),
            ]
        )
    headers = [
        f"per image ({fl['tenth']} per tenth)",
        "first 10%",
        "last 10%",
        "last/first",
        "p50",
        "p90",
        "p99",
        "max",
        "÷ measure",
        "target",
    ]
    print(table(headers, rows, "lrrrrrrrrl"))
    print(
        "   ÷ measure: last/first divided by that of the measuring stage, which does not"
        " depend on history (the machine's own drift)"
    )
    print(
        "   median total per tenth of the run (ms): "
        + " ".join(f"{1e3 * d:.2f}" for d in fl["decile_median_total_s"])
    )
    meas = ", ".join(f"{k} {v:,}" for k, v in sorted(fl["measurements"].items()))
    print(
        f"   at the end: {fl['sky_sources']} sources in the sky model; measurements: {meas};"
        f" database {fl['db_mb']:.1f} MB"
    )



def report_startup(st: dict[str, Any]) -> None:
    print(
        f"\n3. Start-up: fresh processes, median of {STARTUP_RUNS} "
        f"(one-thread BLAS environment; trapline = {st['command']})"
    )
    rows = []
    for label, r in st.items():
        if not isinstance(r, dict):
            continue
        target = f"< {STARTUP_TARGET_S:.0f} s  {mark(r['pass'])}" if "pass" in r else ""
        rows.append([label, seconds(r["median_s"], 2), seconds(r["min_s"], 2), target])
    print(table(["command", "median", "min", "target"], rows, "lrrl"))
    print(
        "   trapline run ONE_IMAGE: one 1024x1024 FITS, --workers 1 --no-progress, new "
        "SQLite file (import, schema creation, read, extract, associate, write)"
    )


# ---- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="16 images, 1 repeat, 1,000 small images (about a minute)",
    )
    parser.add_argument("--repeats", type=int, help="throughput runs per setting (3; quick 1)")
    parser.add_argument("--epochs", type=int,
                        help="throughput series length, 2 bands each (20; quick 8)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--pg-admin",
        default=PG_ADMIN,
        metavar="URL",
        help=f"PostgreSQL admin connection (default {PG_ADMIN})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile the ordered stage over ten 1024x1024 images",
    )
    parser.add_argument(
        "--allsky",
        action="store_true",
        help="throughput on AARTFAAC-like all-sky 2300x2300 images, ~1000 sources "
             "(10 epochs unless --epochs)",
    )
    parser.add_argument(
        "--only",
        choices=("throughput", "flat", "startup"),
        action="append",
        help="run only this part (repeatable; default all three)",
    )
    args = parser.parse_args(argv)
    parts = set(args.only or ("throughput", "flat", "startup"))
    repeats = args.repeats or (1 if args.quick else 3)
    epochs = args.epochs or (8 if args.quick else 10 if args.allsky else 20)
    n_flat = 1_000 if args.quick else 5_000
    cores = default_workers()

    start = time.perf_counter()
    result: dict[str, Any] = {
        "quick": args.quick,
        "repeats": repeats,
        "cores": cores,
        "epochs": epochs,
        "allsky": args.allsky,
        "series": ("2300x2300 all-sky, ~1000 sources" if args.allsky
                   else "1024x1024, ~300 sources"),
    }
    pg_admin = None
    if args.no_pg:
        result["pg_skipped"] = "--no-pg"
    else:
        why = pg_admin_ok(args.pg_admin)
        if why:
            result["pg_skipped"] = f"not reachable: {why}"
        else:
            pg_admin = args.pg_admin
    with tempfile.TemporaryDirectory(prefix="trapline-bench-") as tmp_name, one_core():
        tmp = Path(tmp_name)
        result["environment"] = environment()
        sim = SimulationConfig(seed=7, epochs=epochs, bands=2,
                               **(ALLSKY if args.allsky else BIG))
        paths = [str(p) for p in write_series(sim, tmp / "big").images]
        if "throughput" in parts:
            result["throughput"] = bench_throughput(paths, tmp, repeats, cores, pg_admin)
            if not args.allsky:
                judge_throughput(result["throughput"])
        gc.collect()
        if "flat" in parts:
            result["flat"] = bench_flat(n_flat, tmp)
        gc.collect()
        if "startup" in parts:
            result["startup"] = bench_startup(paths[0], tmp)
        result["elapsed_s"] = time.perf_counter() - start
        report(result)
        if args.profile:
            gc.collect()
            profile_ordered(paths, tmp)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
