"""Calibration benchmark: the per-image cost of ``sky_references`` and
``fit_calibration`` (trapline.pipeline.calibrate), optionally against another version of
that module with a check that both give the same results.

    python bench/calibrate_bench.py [--epochs N] [--repeat N] [--old OLD_CALIBRATE_PY]

A 1024x1024 series (~300 steady sources, 15% gain scatter, ionospheric offset and
gradient) is driven through ``SkyDecider.decide`` one image at a time; before each image
is decided, both functions are timed on the sky model as it is then (the state the
decider calibrates against), ``--repeat`` times, the fastest kept (the machine is
shared: the minimum is the least disturbed figure); the table gives the median over the
images. With ``--old`` (e.g. a ``git archive``-exported calibrate.py of an earlier
commit) the old functions are timed in the same process, interleaved, and every image's
References must be equal and its Calibration fields equal to 1e-12 relative (the largest
relative difference is printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from dataclasses import astuple, fields
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np

if __package__ in (None, ""):  # run as a script: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import NOISE_NOTE, environment, environment_line, one_core, table
from trapline.pipeline import calibrate as new_module
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.decide import SkyDecider
from trapline.pipeline.measure import measure
from trapline.simulate import SimulationConfig, iter_images

SERIES = dict(size=1024, n_steady=300, n_variable=0, n_transient=0, n_fading=0,
              min_separation_beams=3, gain_scatter=0.15, iono_offset_arcsec=20.0,
              iono_gradient_arcsec_per_deg=10.0)
RTOL = 1e-12


def load_module(path: Path) -> ModuleType:
    """Import a calibrate.py from a file (its own imports resolve to this trapline)."""
    spec = importlib.util.spec_from_file_location("calibrate_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def best_of(fn, repeat: int) -> tuple[float, object]:
    """(fewest wall seconds of ``repeat`` calls, the last result)."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def same_references(a, b) -> bool:
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name), equal_nan=True)
               for f in fields(a))


def flat(cal) -> np.ndarray:
    """A Calibration's fields as one float array."""
    return np.hstack([np.asarray(v, dtype=float).ravel() for v in astuple(cal)])


def same_calibration(a, b) -> bool:
    return bool(np.allclose(flat(a), flat(b), rtol=RTOL, atol=0.0, equal_nan=True))


def relative_difference(a, b) -> float:
    x, y = flat(a), flat(b)
    both = np.isfinite(x) & np.isfinite(y) & (x != y)
    return float(np.max(np.abs(x[both] - y[both]) / np.abs(x[both]), initial=0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="images in the series")
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per image")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--old", type=Path, help="another calibrate.py to compare with")
    args = parser.parse_args(argv)
    versions = {"new": new_module}
    if args.old:
        versions["old"] = load_module(args.old)
    config = PipelineConfig()
    config.run.workers = 1
    decider = SkyDecider(config)
    cfg = config.calibration
    times: dict[str, dict[str, list[float]]] = {v: {"refs": [], "fit": []} for v in versions}
    mismatches, n_refs, worst = [], [], 0.0
    sim = SimulationConfig(seed=args.seed, epochs=args.epochs, **SERIES)
    with one_core():
        for image, _ in iter_images(sim):
            m = measure(image, config)
            ex, rec = m.extraction, m.record
            if decider.sky.tree()[0] is not None and ex is not None:
                band = decider.bands.band_of(rec.freq_hz)
                beam = ex.image.beam.bmaj_deg
                out = {}
                for _ in range(2):  # interleaved, twice: the second round is timed
                    for name, mod in versions.items():
                        t_refs, refs = best_of(partial(
                            mod.sky_references, decider.sky, band, ex.sources, beam, cfg),
                            args.repeat)
                        t_fit, cal = best_of(partial(
                            mod.fit_calibration, refs, ex.sources, beam, rec.centre_ra,
                            rec.centre_dec, cfg), args.repeat)
                        out[name] = (t_refs, t_fit, refs, cal)
                for name, (t_refs, t_fit, _, _) in out.items():
                    times[name]["refs"].append(t_refs)
                    times[name]["fit"].append(t_fit)
                n_refs.append((len(ex.sources), len(out["new"][2]), out["new"][3].n_flux,
                               out["new"][3].n_position))
                if "old" in out:
                    worst = max(worst, relative_difference(out["old"][3], out["new"][3]))
                if "old" in out and not (same_references(out["old"][2], out["new"][2])
                                         and same_calibration(out["old"][3], out["new"][3])):
                    mismatches.append((len(n_refs), out["old"][3], out["new"][3]))
            decider.decide([m])
    print(environment_line(environment()))
    print(f"{len(n_refs)} images of {SERIES['size']}x{SERIES['size']}; detections, "
          f"candidates, n_flux, n_position per image: {n_refs}")
    rows = []
    for name, t in times.items():
        total = [a + b for a, b in zip(t["refs"], t["fit"], strict=True)]
        rows.append([name] + [f"{statistics.median(v) * 1e3:.3f}"
                              for v in (t["refs"], t["fit"], total)])
    print(table(["version", "sky_references ms", "fit_calibration ms", "total ms"], rows,
                "lrrr"))
    if args.old:
        old = statistics.median(a + b for a, b in zip(*times["old"].values(), strict=True))
        new = statistics.median(a + b for a, b in zip(*times["new"].values(), strict=True))
        print(f"speed-up (median over the images of the total): {old / new:.1f}x")
        print(f"equal (References exactly, Calibration to {RTOL:g} relative): "
              f"{len(n_refs) - len(mismatches)}/{len(n_refs)} images; largest relative "
              f"difference of a Calibration field {worst:.2g}")
        for i, a, b in mismatches:
            print(f"  image {i}: old {a}\n           new {b}")
    print(NOISE_NOTE)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
