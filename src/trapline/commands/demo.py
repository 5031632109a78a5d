"""``trapline demo``: simulate a small sky series and run Trapline on it, no server needed."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "Simulate a small sky with transients and run the pipeline on it (embedded, no server)."


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "out_dir",
        nargs="?",
        default="trapline-demo",
        help="folder for the simulated images and the database (default trapline-demo)",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed of the simulated sky")
    p.add_argument("--epochs", type=int, default=12, help="number of time steps (default 12)")
    p.add_argument("--bands", type=int, default=2, help="frequency bands (default 2)")


def run(args: argparse.Namespace) -> int:
    from trapline.simulate import SimulationConfig, write_series

    out = Path(args.out_dir)
    config = SimulationConfig(
        seed=args.seed,
        epochs=args.epochs,
        bands=args.bands,
        size=512,
        n_steady=60,
        n_variable=8,
        n_transient=4,
        n_fading=3,
        transient_start_epoch=None,
    )
    t0 = time.perf_counter()
    files = write_series(config, out / "images")
    print(
        f"simulated {len(files.images)} images of {files.n_sources} sources "
        f"in {out / 'images'} ({time.perf_counter() - t0:.1f} s); truth in {files.truth}"
    )
    try:
        from trapline.run import run_files
    except ImportError:
        return _extract_only(files.images)
    db = out / "trapline.sqlite"
    if db.exists():
        db.unlink()  # a fresh demo each time
    summary = run_files([str(p) for p in files.images], f"sqlite:///{db}")
    print(summary.report())
    _compare_with_truth(f"sqlite:///{db}", files.sources)
    print(f"results: {db}\n  trapline export --db sqlite:///{db} candidates\n"
          f"  python -c \"import trapline; print(trapline.open('sqlite:///{db}').candidates())\"")
    return 0


def _compare_with_truth(url: str, sources_csv: Path) -> None:
    """What the pipeline flagged, next to what the simulation put there."""
    import numpy as np
    import pandas as pd

    import trapline

    run = trapline.open(url)
    found, candidates = run.sources(), run.candidates()
    truth = pd.read_csv(sources_csv)
    cosd = np.cos(np.radians(truth.dec.to_numpy()))
    population = {}
    for row in found.itertuples():
        d = np.hypot((truth.ra.to_numpy() - row.ra) * cosd, truth.dec.to_numpy() - row.dec)
        population[row.source_id] = truth.population.iloc[int(np.argmin(d))] \
            if d.min() * 3600 < 20 else "none"
    flagged = candidates.drop_duplicates(["source_id", "kind"])
    print("\ncandidates (first image flagged) and what the simulation put there:")
    for row in flagged.sort_values("time").itertuples():
        print(f"  source {row.source_id:4d}  {row.kind:8s} {row.level:8s} {row.time}  "
              f"significance {row.significance:7.1f}  truth: {population[row.source_id]}")
    new = flagged[flagged.kind == "new"].source_id
    variable = flagged[flagged.kind == "variable"].source_id
    n_transients = int((truth.population == "transient").sum())
    hits = sum(population[s] == "transient" for s in new)
    steady_new = sum(population[s] == "steady" for s in new)
    steady_var = sum(population[s] == "steady" for s in variable)
    print(f"transients flagged new: {hits} of {n_transients}; steady sources flagged new: "
          f"{steady_new}, variable: {steady_var}")
    run.close()


def _extract_only(paths: list[Path]) -> int:
    from trapline.extract import extract
    from trapline.io import read_image

    for path in paths:
        result = extract(read_image(path))
        print(f"{path.name}: {len(result.sources)} sources")
    return 0
