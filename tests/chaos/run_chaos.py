"""Chaos checks (not collected by pytest, not run in CI): kill -9 of ``trapline run`` at
spread-out points of a simulated series, and a Redis outage during run + consume.

    PYTHONPATH=src python tests/chaos/run_chaos.py [--kills 20] [--images 120] [--outage-s 30]

Prints a small table; exits 1 when a check fails. See tests/chaos/README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from channels_data import tables  # noqa: E402
from helpers import PrivateRedis  # noqa: E402

import trapline.api  # noqa: E402
from trapline.simulate import SimulationConfig, write_series  # noqa: E402

COMPARED = ("sources", "measurements", "variability", "candidates")
SRC = str(Path(trapline.api.__file__).resolve().parents[1])


def cli(*args: str, **popen) -> subprocess.Popen:
    """``trapline ARGS`` in a new process group (the source of the imported package)."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "trapline.cli", *args], env=env,
                            start_new_session=True, **popen)


def stored_images(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("select count(*) from image").fetchone()[0])
    except sqlite3.Error:
        return 0


def descendants(pid: int) -> set[int]:
    """Processes whose parent chain leads to ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def differing(url: str, reference: dict[str, pd.DataFrame]) -> list[str]:
    got = tables(url)
    out = []
    for name in COMPARED:
        try:
            pd.testing.assert_frame_equal(got[name], reference[name])
        except AssertionError:
            out.append(name)
    return out


def kill_runs(work: Path, images: int, kills: int, workers: int) -> dict:
    files = write_series(SimulationConfig(seed=21, epochs=images, bands=1, size=128,
                                          n_steady=8, n_variable=2, n_transient=2,
                                          n_fading=1), work / "series").out_dir
    run = ("run", str(files), "--workers", str(workers), "--no-progress")
    reference_db = work / "reference.sqlite"
    assert cli(*run, "--db", str(reference_db), stdout=subprocess.DEVNULL).wait() == 0
    reference = tables(f"sqlite:///{reference_db}")
    differ, orphans, points = 0, 0, []
    for i in range(kills):
        target = round((i + 1) * images / (kills + 1))
        db = work / f"killed-{i}.sqlite"
        proc = cli(*run, "--db", str(db), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while stored_images(db) < target and proc.poll() is None:
            time.sleep(0.01)
        children = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        points.append(stored_images(db))
        time.sleep(1.0)
        left = [p for p in children if alive(p)]
        orphans += len(left)
        for p in left:  # ours: do not leave them behind
            os.kill(p, signal.SIGKILL)
        restarted = cli(*run, "--db", str(db), stdout=subprocess.DEVNULL)
        assert restarted.wait() == 0
        names = differing(f"sqlite:///{db}", reference)
        differ += bool(names)
        print(f"  kill {i + 1:2d}: after {points[-1]:3d} images stored; "
              f"{len(children)} child processes, {len(left)} left after 1 s; "
              f"{'differs: ' + ', '.join(names) if names else 'same as uninterrupted'}",
              flush=True)
    return {"kills": kills, "points": points, "differ": differ, "orphans": orphans}


def redis_outage(work: Path, images: int, outage_s: float) -> dict:
    files = write_series(SimulationConfig(seed=22, epochs=images, bands=1, size=128,
                                          n_steady=8, n_variable=2, n_transient=2,
                                          n_fading=1), work / "outage-series").out_dir
    server = PrivateRedis(work / "redis")
    server.start()
    broker = f"{server.url}?prefix=chaos"
    db = work / "outage.sqlite"
    archive = work / "archive"
    logs = work / "consumer.log"
    with logs.open("w") as log:
        consumer = cli("consume", "--broker", broker, "--plugin",
                       f"parquet:directory={archive}", stderr=log, stdout=log)
        producer = cli("run", str(files), "--db", str(db), "--workers", "1", "--no-progress",
                       "--broker", broker, stdout=subprocess.DEVNULL,
                       stderr=open(work / "producer.log", "w"))  # noqa: SIM115
        while stored_images(db) < images // 4 and producer.poll() is None:
            time.sleep(0.05)
        at = stored_images(db)
        server.stop()
        time.sleep(outage_s)
        server.start()
        producer_rc = producer.wait()
        with trapline.api.open(f"sqlite:///{db}") as run:
            images = run.images()  # the archiver writes the images with measurements
            keys = set(images.image_key[images.n_blind + images.n_forced + images.n_monitor > 0])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(list(archive.rglob("*.parquet"))) >= len(keys):
                break
            time.sleep(0.2)
        time.sleep(1.0)
        consumer.send_signal(signal.SIGTERM)
        consumer_rc = consumer.wait(60)
    server.stop()
    files_ = list(archive.rglob("*.parquet"))
    archived = pd.concat(pd.read_parquet(p) for p in files_) if files_ else pd.DataFrame(
        {"image_key": []})
    got = set(archived.image_key)
    return {"outage_s": outage_s, "stopped_after": at, "expected": len(keys),
            "lost": len(keys - got), "producer_rc": producer_rc, "consumer_rc": consumer_rc,
            "tracebacks": sum("Traceback" in p.read_text()
                              for p in (logs, work / "producer.log"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kill points (default 20)")
    parser.add_argument("--images", type=int, default=120, help="images in the series")
    parser.add_argument("--workers", type=int, default=2, help="trapline run --workers")
    parser.add_argument("--outage-s", type=float, default=30.0, help="Redis outage (s)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trapline-chaos-"))
    start = time.monotonic()
    print(f"work folder {work}", flush=True)
    kills = kill_runs(work, args.images, args.kills, args.workers)
    outage = redis_outage(work, args.images, args.outage_s)
    ok = (kills["differ"] == 0 and kills["orphans"] == 0 and outage["lost"] == 0
          and outage["producer_rc"] == 0 and outage["consumer_rc"] == 0
          and outage["tracebacks"] == 0)
    print()
    print(f"| check | result |\n|---|---|\n"
          f"| kill -9 of trapline run ({kills['kills']} points, {args.images} images) "
          f"| {kills['differ']} restarted runs differ from the uninterrupted one |\n"
          f"| orphan processes 1 s after kill -9 | {kills['orphans']} |\n"
          f"| Redis outage {outage['outage_s']:.0f} s during run + consume (stopped after "
          f"{outage['stopped_after']} images) | images lost: {outage['lost']} of "
          f"{outage['expected']}; exit codes run {outage['producer_rc']}, consume "
          f"{outage['consumer_rc']}; tracebacks {outage['tracebacks']} |\n"
          f"| time | {time.monotonic() - start:.0f} s |")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
