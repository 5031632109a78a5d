"""``trapline demo``: simulate a small sky series and run Trapline on it, no server needed."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from trapline import api
from trapline.geometry import separation_deg
from trapline.run import run_files
from trapline.simulate import SimulationConfig, write_series


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
    db = out / "trapline.sqlite"
    if db.exists():
        db.unlink()  # a fresh demo each time
    summary = run_files([str(p) for p in files.images], f"sqlite:///{db}")
    print(summary.report())
    _compare_with_truth(f"sqlite:///{db}", files.sources)
    print(f"results: {db}\n  trapline export --db sqlite:///{db} candidates\n"
          f"  python -c \"import trapline; print(trapline.open('sqlite:///{db}').candidates())\"")
    return 0


MATCH_RADIUS_ARCSEC = 20.0


def truth_matches(found, truth):
    """The simulated source nearest each pipeline source: a frame indexed by the
    pipeline's source_id with the simulator's ``truth_id`` (-1 when none lies within
    MATCH_RADIUS_ARCSEC) and its ``population`` ("none")."""
    import numpy as np
    import pandas as pd

    ids, populations = [], []
    for row in found.itertuples():
        distance = separation_deg(row.ra, row.dec, truth.ra.to_numpy(), truth.dec.to_numpy())
        nearest = int(np.argmin(distance))
        near = distance[nearest] * 3600.0 < MATCH_RADIUS_ARCSEC
        ids.append(int(truth.source_id.iloc[nearest]) if near else -1)
        populations.append(truth.population.iloc[nearest] if near else "none")
    return pd.DataFrame({"truth_id": ids, "population": populations},
                        index=pd.Index(found.source_id.to_numpy(), name="source_id"))


def _compare_with_truth(url: str, sources_csv: Path) -> None:
    """What the pipeline flagged, next to what the simulation put there."""
    import pandas as pd

    run = api.open(url)
    found, candidates = run.sources(), run.candidates()
    truth = pd.read_csv(sources_csv)
    matches = truth_matches(found, truth)
    population = matches.population
    flagged = candidates.drop_duplicates(["source_id", "kind"])
    print("\ncandidates (first image flagged) and the simulated source at that position "
          f"(truth id in {sources_csv.name}; -1: none within {MATCH_RADIUS_ARCSEC:g} arcsec):")
    print(f"  {'pipeline id':>11s}  {'truth id':>8s}  {'kind':8s} {'level':8s} "
          f"{'time':23s}  {'significance':>12s}  truth")
    for row in flagged.sort_values("time").itertuples():
        match = matches.loc[row.source_id]
        print(f"  {row.source_id:11d}  {match.truth_id:8d}  {row.kind:8s} {row.level:8s} "
              f"{row.time!s:23s}  {row.significance:12.1f}  {match.population}")
    new = flagged[flagged.kind == "new"].source_id
    variable = flagged[flagged.kind == "variable"].source_id
    n_transients = int((truth.population == "transient").sum())
    hits = sum(population[s] == "transient" for s in new)
    steady_new = sum(population[s] == "steady" for s in new)
    steady_var = sum(population[s] == "steady" for s in variable)
    print(f"transients flagged new: {hits} of {n_transients}; steady sources flagged new: "
          f"{steady_new}, variable: {steady_var}")
    run.close()

