"""Candidates benchmark: what calibration, precovery and sidelobe vetoes buy against
simulated truth, and what they cost per image.

    python bench/candidates_bench.py [--quick] [--seeds N] [--json FILE]

1. Accuracy: 384x384 series (30 epochs, 1 band; 57 sources) for the plain sky, each
   instrument effect (gain, ionosphere, sidelobes, scintillation) and all four, each
   run with every mechanism on ("after") and with all of them off ("before":
   [calibration] enabled=false, [new_source] precovery_images=0, sidelobe_fraction=0);
   medians over the seeds of the figures of :mod:`trapline.testing.candidates`.
2. Cost: 1024x1024 images (~300 sources, all effects on) and all-sky 2300x2300 ones
   driven one by one in this process with ``SkyDecider.decide`` timed (as
   pipeline_bench.py does), with all mechanisms on and with each one off: the median
   per-image ordered-stage and end-to-end times, their ratios, and the precovery ring
   buffer's memory (``SkyDecider.buffer.nbytes``) at the end. Goal: the three together
   at most 10% of the per-image time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    NOISE_NOTE,
    environment,
    environment_line,
    millis,
    one_core,
    seconds,
    table,
)
from bench.pipeline_bench import ALLSKY, BIG, Split, drive, remove_sqlite, sqlite_url
from trapline.api import open as open_run
from trapline.pipeline.config import PipelineConfig
from trapline.run import run_files
from trapline.simulate import SimulationConfig, iter_images, write_series
from trapline.testing.candidates import Score, Series, score, write_catalogue

COST_TARGET = 0.10  # the three mechanisms together: at most 10% of the per-image time
SKY = dict(size=384, epochs=30, n_steady=40, n_variable=8, n_transient=6, n_fading=3,
           variable_snr=(30, 200), modulation_index=0.4)
EFFECTS: dict[str, dict[str, Any]] = {
    "plain sky": {},
    "gain 0.15": dict(gain_scatter=0.15),
    "ionosphere": dict(iono_offset_arcsec=8.0, iono_gradient_arcsec_per_deg=15.0),
    "sidelobes": dict(sidelobe_fraction=0.03, sidelobe_rotation_deg=7.0),
    "scintillation": dict(scintillation_index=0.05),
}
EFFECTS["all four"] = {k: v for e in EFFECTS.values() for k, v in e.items()}
# All four, calibrated against a catalogue of the bright steady sources instead of the
# sky model (the true positions and fluxes, as a user's reference catalogue gives them).
CATALOGUE = "all four, catalogue"
EFFECTS[CATALOGUE] = EFFECTS["all four"]



def switched(off: tuple[str, ...] = ()) -> Callable[[PipelineConfig], None]:
    """A config edit turning off the named mechanisms ('calibration', 'precovery',
    'vetoes')."""
    def edit(config: PipelineConfig) -> None:
        config.run.workers = 1
        if "calibration" in off:
            config.calibration.enabled = False
        if "precovery" in off:
            config.new_source.precovery_images = 0
        if "vetoes" in off:
            config.new_source.sidelobe_fraction = 0.0
    return edit


MECHANISMS = ("calibration", "precovery", "vetoes")
BEFORE, AFTER = switched(MECHANISMS), switched()


def config_by(edit: Callable[[PipelineConfig], None]) -> PipelineConfig:
    config = PipelineConfig()
    edit(config)
    return config


# ---- 1. accuracy ------------------------------------------------------------------------


def figures(s: Score) -> dict[str, float]:
    return {"false_new_per_1000": s.false_new_per_1000, "caught": s.caught_fraction,
            "steady_flagged": s.steady_flagged_fraction, "flux_rms": s.flux_scale_rms,
            "pull_std": s.pull_std, "frame_pull_std": s.frame_pull_std,
            "lightcurve_pull_std": s.lightcurve_pull_std,
            **{f"auc {k}": v for k, v in s.auc.items()}}


def bench_accuracy(seeds: int, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, effects in EFFECTS.items():
        runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for seed in range(1, seeds + 1):
            sim = SimulationConfig(seed=seed, **SKY, **effects)
            files = write_series(sim, tmp / f"acc{seed}")
            series = Series.read(sim, files)
            for when, edit in (("before", BEFORE), ("after", AFTER)):
                db = "acc.sqlite"
                config = config_by(edit)
                if name == CATALOGUE and config.calibration.enabled:
                    config.calibration.reference_catalogue = str(write_catalogue(
                        series, tmp / "reference.csv"))
                run_files([str(files.out_dir)], sqlite_url(tmp, db), config)
                with open_run(sqlite_url(tmp, db)) as run:
                    runs[when].append(figures(score(run, series)))
                remove_sqlite(tmp, db)
        out[name] = {when: {k: float(np.nanmedian([r[k] for r in rs])) for k in rs[0]}
                     for when, rs in runs.items()}
    return out


# ---- 2. cost ----------------------------------------------------------------------------


def bench_cost(sim: SimulationConfig, tmp: Path) -> dict[str, Any]:
    """Per-image median times with all mechanisms on and with each off (interleaved
    would need the images twice in memory: each setting runs the same images in turn)."""
    images = [image for image, _ in iter_images(sim)]
    settings = {"all on": (), **{f"{m} off": (m,) for m in MECHANISMS}, "all off": MECHANISMS}
    out: dict[str, Any] = {}
    for label, off in settings.items():
        split = Split()
        db = "cost.sqlite"
        runner = drive(iter(images), sqlite_url(tmp, db), split, config_by(switched(off)))
        remove_sqlite(tmp, db)
        a = split.arrays()
        skip = 1  # the first image has no sky model to calibrate against
        out[label] = {"decide_s": float(np.median(a["process"][skip:])),
                      "total_s": float(np.median(a["total"][skip:])),
                      "buffer_mb": runner.decider.buffer.nbytes / 2**20}
    on = out["all on"]
    for r in out.values():
        r["decide_ratio"] = on["decide_s"] / r["decide_s"]
        # Only the ordered stage changes: its time difference over the whole image's.
        r["added_share"] = (on["decide_s"] - r["decide_s"]) / on["total_s"]
    return out


# ---- report -----------------------------------------------------------------------------


def pct(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{100 * x:.0f}%"


def report_accuracy(acc: dict[str, Any], seeds: int) -> None:
    print(f"\n1. Against the truth: 384x384, 30 epochs, 1 band, 57 sources; median of {seeds} "
          "seed(s); before = calibration, precovery and vetoes off; after = defaults")
    rows = []
    for name, r in acc.items():
        for when in ("before", "after"):
            f = r[when]
            rows.append([name if when == "before" else "", when,
                         f"{f['false_new_per_1000']:.0f}", pct(f["caught"]),
                         pct(f["steady_flagged"]), f"{100 * f['flux_rms']:.2f}%",
                         f"{f['pull_std']:.2f}", f"{f['frame_pull_std']:.2f}",
                         f"{f['lightcurve_pull_std']:.2f}",
                         f"{f['auc eta variable']:.3f}", f"{f['auc eta transient']:.3f}",
                         f"{f['auc V variable']:.3f}", f"{f['auc V transient']:.3f}"])
    headers = ["effect", "", "false new/1000", "trans>=10σ new", "steady>=20σ var",
               "flux rms", "pull", "pull frame", "lc pull", "AUC eta var", "eta trans", "V var",
               "V trans"]
    print(table(headers, rows, "llrrrrrrrrrrr"))
    print("   false new: per 1,000 images (goal <= 1 with all four effects); trans: transients"
          " >= 10 sigma flagged new in their first image;")
    print("   steady var: steady sources >= 20 sigma with a variable candidate; flux rms:"
          " stored flux scale / injected gain, rms about the mean (of 15% injected);")
    print("   pull: spread of (stored - true position) / stored error of bright steady"
          " sources; frame: after fitting out an offset and gradient (the sky model's frame);")
    print("   lc pull: spread of (point - weighted mean) / error over the lightcurves of bright"
          " steady sources (1: errors are the real scatter);")
    print("   AUC: eta_int and v_int per (source, band), variables or transients vs steady"
          " (goal >= 0.95).")


def report_cost(cost: dict[str, Any], label: str, n_images: int) -> None:
    print(f"\n2. Cost per image, {label}, all effects on, {n_images} images driven one by one "
          "(workers=1, SQLite); medians over the images after the first")
    rows = []
    for setting, r in cost.items():
        share = r["added_share"]
        target = ""
        if setting == "all off":
            target = f"<= {COST_TARGET:.0%} of the per-image time: " + (
                "PASS" if share <= COST_TARGET else "MISS")
        rows.append([setting, millis(r["decide_s"]), f"{r['decide_ratio']:.2f}x",
                     millis(r["total_s"]), pct(share) if setting != "all on" else "",
                     f"{r['buffer_mb']:.0f} MB", target])
    headers = ["setting", "decide", "all on / this", "end to end", "added by it",
               "ring buffer", "target"]
    print(table(headers, rows, "lrrrrrl"))
    print("   decide: SkyDecider.decide per image; end to end: measure (read, QC, extract) +"
          " ordered stage; added by it: (decide all on - decide this) / end to end all on.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 8 epochs 1024x1024, 3 all-sky epochs (a couple of minutes)")
    parser.add_argument("--seeds", type=int, help="accuracy seeds (3; quick 1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    args = parser.parse_args(argv)
    seeds = args.seeds or (1 if args.quick else 3)
    start = time.perf_counter()
    result: dict[str, Any] = {"quick": args.quick, "seeds": seeds}
    allsky_effects = {k: v for k, v in EFFECTS["all four"].items() if k != "sidelobe_fraction"}
    with tempfile.TemporaryDirectory(prefix="trapline-bench-") as tmp_name, one_core():
        tmp = Path(tmp_name)
        result["environment"] = environment()
        result["accuracy"] = bench_accuracy(seeds, tmp)
        big = SimulationConfig(seed=7, epochs=8 if args.quick else 20, bands=1,
                               **BIG, **EFFECTS["all four"])
        result["cost_1024"] = bench_cost(big, tmp)
        sky = SimulationConfig(seed=7, epochs=3 if args.quick else 6, bands=1,
                               **ALLSKY, **allsky_effects)
        result["cost_allsky"] = bench_cost(sky, tmp)
        result["elapsed_s"] = time.perf_counter() - start
    print(f"\nTrapline candidates benchmark ({'quick' if args.quick else 'default'})")
    print(environment_line(result["environment"]))
    print(NOISE_NOTE)
    report_accuracy(result["accuracy"], seeds)
    report_cost(result["cost_1024"], "1024x1024, ~300 sources", big.epochs)
    report_cost(result["cost_allsky"], "all-sky 2300x2300, ~1000 sources (no sidelobes)",
                sky.epochs)
    print(f"\ntotal benchmark time {seconds(result['elapsed_s'], 0)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
