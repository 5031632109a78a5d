"""``trapline extract IMAGE``: find and measure the sources in one image."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from trapline.errors import ImageError
from trapline.extract import ExtractionConfig, extract
from trapline.image import Beam
from trapline.io import read_image
from trapline.positions import PositionError, parse_position


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="FITS file or CASA image directory")
    p.add_argument(
        "--detection-sigma",
        type=float,
        default=8.0,
        help="detection threshold, local rms (default 8)",
    )
    p.add_argument(
        "--analysis-sigma",
        type=float,
        default=3.0,
        help="analysis (island) threshold, local rms (default 3)",
    )
    p.add_argument("--grid", type=int, default=32, help="background cell size, pixels (default 32)")
    p.add_argument(
        "--method",
        choices=["moments", "fit"],
        default="moments",
        help="moments (fast, default) or Gaussian fit",
    )
    p.add_argument(
        "--deblend", action="store_true", help="split islands holding several sources"
    )
    p.add_argument("--force-beam", action="store_true", help="fit with the shape fixed to the beam")
    p.add_argument(
        "--beam",
        nargs=3,
        type=float,
        metavar=("BMAJ", "BMIN", "BPA"),
        help="beam (deg, deg, deg) for images whose header has none",
    )
    p.add_argument(
        "--forced",
        metavar="POSITION",
        action="append",
        default=[],
        help="also force-fit at this position: RA,DEC in degrees, sexagesimal "
             "('10:00:06 +30:12:00', RA in hours) or a J-name (J100006.0+301200); repeatable",
    )
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="output format")
    p.add_argument("-o", "--output", help="write to this file instead of standard output")


def run(args: argparse.Namespace) -> int:
    beam = Beam(*args.beam) if args.beam else None
    try:
        config = ExtractionConfig(
            detection_sigma=args.detection_sigma,
            analysis_sigma=args.analysis_sigma,
            grid=args.grid,
            method=args.method,
            deblend=args.deblend,
            force_beam=args.force_beam,
        )
    except ValueError as exc:
        print(f"trapline extract: error: {exc}", file=sys.stderr)
        return 2
    try:
        image = read_image(args.image, beam=beam)
        result = extract(image, config)
    except ImageError as exc:
        print(f"trapline extract: error: {exc}", file=sys.stderr)
        return 2
    table = result.sources.to_pandas()
    table.insert(0, "kind", "blind")
    if args.forced:
        ra, dec = _parse_positions(args.forced)
        forced = result.forced(ra, dec)
        extra = {c: np.full(len(ra), np.nan) for c in table.columns if c != "kind"}
        extra.update(
            ra_deg=ra,
            dec_deg=dec,
            x_pix=forced.x,
            y_pix=forced.y,
            peak_jy=forced.peak,
            peak_err_jy=forced.peak_err,
            flux_jy=forced.peak,
            flux_err_jy=forced.peak_err,
            snr=forced.peak / forced.rms,
            rms_jy=forced.rms,
        )
        import pandas as pd

        forced_table = pd.DataFrame(extra)
        forced_table.insert(0, "kind", "forced")
        table = pd.concat([table, forced_table], ignore_index=True)
    out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.format == "json":
            out.write(table.to_json(orient="records", double_precision=10))
            out.write("\n")
        else:
            table.to_csv(out, index=False, float_format="%.9g")
    finally:
        if args.output:
            out.close()
    skipped = ", ".join(f"{k}={v}" for k, v in result.skipped.items())
    print(
        f"# {len(result.sources)} sources from {result.n_islands} islands"
        + (f"; skipped: {skipped}" if skipped else ""),
        file=sys.stderr,
    )
    return 0


def _parse_positions(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ra, dec = [], []
    for item in items:
        try:
            a, b = parse_position(item)
        except PositionError as exc:
            raise ImageError("usage", f"--forced: {exc}") from exc
        ra.append(a)
        dec.append(b)
    return np.array(ra), np.array(dec)
