"""Extraction benchmark: start-up, per-image time on one core against radio-pyse, forced fits.

    python bench/extract_bench.py [--quick] [--repeats N] [--json FILE] [--no-pyse] [--profile]

Images are simulated (steady point sources, beam 4x3 px, noise correlated over the beam),
written to FITS in a temporary directory and read back, so trapline and radio-pyse see the
same pixels. Every speed comes with the accuracy it was bought with: sources found and true
sources with S/N >= 8 recovered within 2 px.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import json
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

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
    repeat,
    seconds,
    table,
    timed,
)
from trapline.extract import Extraction, ExtractionConfig, extract
from trapline.image import Image
from trapline.io import read_fits, write_fits
from trapline.simulate import SimulationConfig, iter_images

DETECTION = 8.0
MATCH_PIX = 2.0
N_FORCED = 10_000
STARTUP_RUNS = 3
STARTUP_TARGET_S = 3.0
FORCED_TARGET = 10_000.0  # positions/s, on the 1024x1024 image
MOMENTS = ExtractionConfig(detection_sigma=DETECTION)
FIT = ExtractionConfig(detection_sigma=DETECTION, method="fit")
WORKER = Path(__file__).with_name("pyse_worker.py")

STARTUP_CODE = """\
import sys, time
t0 = time.perf_counter()
from trapline.extract import ExtractionConfig, extract
from trapline.io import read_fits
t1 = time.perf_counter()
extract(read_fits(sys.argv[1]), ExtractionConfig(detection_sigma=8.0))
print(t1 - t0)
"""


@dataclass(frozen=True)
class Case:
    size: int
    n_sources: int
    seed: int
    target_s: float

    @property
    def label(self) -> str:
        return f"{self.size}x{self.size}/{self.n_sources}"


CASES = (Case(1024, 300, 1, 0.08), Case(2300, 1000, 2, 0.4))


@dataclass
class Prepared:
    case: Case
    path: Path
    image: Image
    truth_xy: np.ndarray  # true positions (0-based px) of sources with S/N >= DETECTION


def prepare(case: Case, out_dir: Path) -> Prepared:
    config = SimulationConfig(
        seed=case.seed,
        epochs=1,
        size=case.size,
        n_steady=case.n_sources,
        n_variable=0,
        n_transient=0,
        n_fading=0,
        min_separation_beams=3,
    )
    image, truth = next(iter_images(config))
    path = out_dir / f"sim{case.size}.fits"
    write_fits(image, path)
    bright = truth[truth.peak_jy >= DETECTION * truth.rms_jy]
    return Prepared(case, path, read_fits(path), np.c_[bright.x, bright.y])


def recovered(found_xy: np.ndarray, truth_xy: np.ndarray) -> int:
    """True sources with a detection within MATCH_PIX pixels."""
    if len(found_xy) == 0 or len(truth_xy) == 0:
        return 0
    dist, _ = cKDTree(found_xy).query(truth_xy, distance_upper_bound=MATCH_PIX)
    return int(np.isfinite(dist).sum())


class PyseWorker:
    """radio-pyse in a one-core subprocess: imported once, then extractions on request."""

    def __init__(self, first: Path, log: Path) -> None:
        self._log = log.open("w")
        start = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=one_core_env(),
        )
        self.first = self.extract(first)
        self.startup_s = time.perf_counter() - start

    def extract(self, path: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"path": str(path), "detection": DETECTION}) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("@pyse "):
                return json.loads(line[len("@pyse ") :])
        self._log.flush()
        raise RuntimeError(f"radio-pyse worker died:\n{self.log_text()}")

    def log_text(self) -> str:
        return Path(self._log.name).read_text()[-3000:]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._log.close()


def bench_startup(path: Path) -> dict[str, Any]:
    """Fresh trapline processes: import + read FITS + first extraction."""
    walls, imports = [], []
    for _ in range(STARTUP_RUNS):
        wall, out = timed(
            lambda: subprocess.run(
                [sys.executable, "-c", STARTUP_CODE, str(path)],
                env=one_core_env(),
                capture_output=True,
                text=True,
                check=True,
            )
        )
        walls.append(wall)
        imports.append(float(out.stdout.split()[-1]))
    return {"timing": Timing(tuple(walls)), "import_s": float(np.median(imports))}


def bench_extraction(
    prep: Prepared, repeats: int, worker: PyseWorker | None
) -> tuple[list[dict[str, Any]], Extraction]:
    """Interleaved repeats of each method on one image; rows of the results table."""
    methods: dict[str, Callable[[], Extraction]] = {
        "trapline moments": lambda: extract(prep.image, MOMENTS),
        "trapline fit": lambda: extract(prep.image, FIT),
    }
    last = {name: fn() for name, fn in methods.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in methods}
    pyse: dict[str, Any] = {}
    pyse_times: list[float] = []
    read_times: list[float] = []
    if worker is not None:
        pyse = worker.extract(prep.path)  # warm-up (numba specialisation per image)
    for _ in range(repeats):
        for name, fn in methods.items():
            dt, last[name] = timed(fn)
            times[name].append(dt)
        if worker is not None:
            pyse = worker.extract(prep.path)
            pyse_times.append(pyse["extract_s"])
            read_times.append(pyse["read_s"])
    pyse_med = float(np.median(pyse_times)) if pyse_times else None
    rows = []
    found: dict[str, np.ndarray] = {
        name: np.c_[ext.sources.x_pix, ext.sources.y_pix] for name, ext in last.items()
    }
    timings = {name: Timing(tuple(t)) for name, t in times.items()}
    if worker is not None:
        found["radio-pyse moments"] = np.c_[pyse["x"], pyse["y"]]
        timings["radio-pyse moments"] = Timing(tuple(pyse_times))
    for name, timing in timings.items():
        trap = name.startswith("trapline")
        rows.append(
            {
                "image": prep.case.label,
                "method": name,
                **timing.as_dict(),
                "pyse_over_this": pyse_med / timing.median if pyse_med else None,
                "found": len(found[name]),
                "recovered": recovered(found[name], prep.truth_xy),
                "true": len(prep.truth_xy),
                "target_s": prep.case.target_s if trap else None,
                "pass": timing.median < prep.case.target_s if trap else None,
                "pyse_read_s": float(np.median(read_times)) if not trap else None,
            }
        )
    return rows, last["trapline moments"]


def bench_forced(prep: Prepared, ext: Extraction, repeats: int) -> list[dict[str, Any]]:
    """Forced fits at N_FORCED random positions, given as pixels and as sky coordinates."""
    rng = np.random.default_rng(prep.case.seed)
    x, y = rng.uniform(0, prep.case.size - 1, (2, N_FORCED))
    ra, dec = prep.image.pixel_to_sky(x, y)
    runs: dict[str, Callable[[], object]] = {
        "pixels": lambda: ext.forced_pixels(x, y),
        "sky (incl. WCS)": lambda: ext.forced(ra, dec),
    }
    rows = []
    for name, fn in runs.items():
        fn()  # warm-up
        timing = repeat(fn, repeats)
        rate = N_FORCED / timing.median
        has_target = prep.case.size == CASES[0].size
        rows.append(
            {
                "image": prep.case.label,
                "positions": name,
                "n": N_FORCED,
                **timing.as_dict(),
                "rate_per_s": rate,
                "target_per_s": FORCED_TARGET if has_target else None,
                "pass": rate >= FORCED_TARGET if has_target else None,
            }
        )
    return rows


def profile_extraction(image: Image, top: int = 10) -> None:
    print(f"\ncProfile of one trapline moments extraction, {image.shape}, top {top} by tottime:")
    profiler = cProfile.Profile()
    profiler.runcall(extract, image, MOMENTS)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def target(row: dict[str, Any], text: str) -> str:
    return "" if row["pass"] is None else f"{text}  {mark(row['pass'])}"


def report(result: dict[str, Any]) -> None:
    print(f"\nTrapline extraction benchmark: {result['repeats']} repeats, one core per process")
    print(environment_line(result["environment"]))
    print(NOISE_NOTE)

    print("\n1. Start-up: fresh process, import + read 1024x1024 FITS + first extraction")
    st = result["startup"]
    rows = [
        [
            "trapline",
            seconds(st["median_s"], 2),
            seconds(st["min_s"], 2),
            STARTUP_RUNS,
            seconds(st["import_s"], 2),
            f"< {STARTUP_TARGET_S:.0f} s  {mark(st['pass'])}",
        ]
    ]
    if "pyse_startup_s" in result:
        rows.append(
            [
                "radio-pyse",
                seconds(result["pyse_startup_s"], 2),
                "-",
                1,
                seconds(result["pyse_import_s"], 2),
                "baseline",
            ]
        )
    print(table(["tool", "median", "min", "runs", "of it import", "target"], rows, "lrrrrl"))

    print("\n2. Extraction per image, one core (median and min over repeats)")
    rows = [
        [
            r["image"],
            r["method"],
            seconds(r["median_s"]),
            seconds(r["min_s"]),
            ratio(r["pyse_over_this"]),
            r["found"],
            f"{r['recovered']}/{r['true']}",
            target(r, f"< {r['target_s']:.2f} s" if r["target_s"] else ""),
        ]
        for r in result["extraction"]
    ]
    headers = [
        "image/sources",
        "method",
        "median",
        "min",
        "pyse/this",
        "found",
        "recovered",
        "target",
    ]
    print(table(headers, rows, "llrrrrrl"))
    reads = [
        f"{r['image']} {seconds(r['pyse_read_s'])}"
        for r in result["extraction"]
        if r["pyse_read_s"] is not None
    ]
    notes = [
        f"found: sources reported; recovered: true sources with S/N >= {DETECTION:g} matched"
        f" within {MATCH_PIX:g} px;",
        "pyse/this: radio-pyse median / this median (> 1: faster than radio-pyse);",
        "trapline: extract(image) on an image read from FITS beforehand (reading excluded);",
        "radio-pyse: ImageData.extract() only; FITS read + set-up excluded, median "
        + ", ".join(reads or ["n/a"])
        + ".",
    ]
    print("\n".join("   " + n for n in notes))

    print(f"\n3. Forced fits, {N_FORCED:,} random positions, one core")
    rows = [
        [
            r["image"],
            r["positions"],
            millis(r["median_s"]),
            millis(r["min_s"]),
            f"{r['rate_per_s']:,.0f}/s",
            target(r, f">= {FORCED_TARGET:,.0f}/s"),
        ]
        for r in result["forced"]
    ]
    print(table(["image/sources", "positions", "median", "min", "rate", "target"], rows, "llrrrl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats (about a minute)")
    parser.add_argument("--repeats", type=int, help="timed repeats per measurement (7)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument("--no-pyse", action="store_true", help="skip the radio-pyse baseline")
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one 2300x2300 trapline extraction"
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    use_pyse = not args.no_pyse and importlib.util.find_spec("sourcefinder") is not None
    if not use_pyse and not args.no_pyse:
        print("radio-pyse (sourcefinder) not installed: no baseline")

    result: dict[str, Any] = {"repeats": repeats}
    with tempfile.TemporaryDirectory(prefix="trapline-bench-") as tmp, one_core():
        result["environment"] = environment()
        preps = [prepare(case, Path(tmp)) for case in CASES]
        startup = bench_startup(preps[0].path)
        result["startup"] = {
            **startup["timing"].as_dict(),
            "import_s": startup["import_s"],
            "target_s": STARTUP_TARGET_S,
            "pass": startup["timing"].median < STARTUP_TARGET_S,
        }
        worker = PyseWorker(preps[0].path, Path(tmp) / "pyse.log") if use_pyse else None
        if worker is not None:
            result["pyse_startup_s"] = worker.startup_s
            result["pyse_import_s"] = worker.first["import_s"]
        result["extraction"], result["forced"] = [], []
        try:
            for prep in preps:
                rows, ext = bench_extraction(prep, repeats, worker)
                result["extraction"] += rows
                result["forced"] += bench_forced(prep, ext, repeats)
        finally:
            if worker is not None:
                worker.close()
        report(result)
        if args.profile:
            profile_extraction(preps[-1].image)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
