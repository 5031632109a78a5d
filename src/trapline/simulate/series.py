"""A whole simulated series: images in memory (:func:`iter_images`) or on disk
(:func:`write_series`: FITS images, truth.csv, images.csv, sidelobes.csv and
sources.csv)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trapline.image import Image
from trapline.io.fits import write_fits
from trapline.simulate.config import SimulationConfig
from trapline.simulate.render import render_image
from trapline.simulate.sky import SkyModel, make_sky
from trapline.simulate.truth import truth_table, truth_tables

TRUTH_FILE = "truth.csv"
IMAGES_FILE = "images.csv"
SIDELOBES_FILE = "sidelobes.csv"
SOURCES_FILE = "sources.csv"


@dataclass(frozen=True)
class SeriesFiles:
    """What :func:`write_series` wrote."""

    out_dir: Path
    images: list[Path]
    truth: Path
    image_table: Path
    sidelobes: Path
    sources: Path
    n_sources: int


def iter_images(
    config: SimulationConfig, sky: SkyModel | None = None
) -> Iterator[tuple[Image, pd.DataFrame]]:
    """Yield ``(image, truth)`` for every epoch (outer) and band (inner), in time order.

    ``truth`` is the :func:`truth_table` of the image. ``sky`` defaults to
    ``make_sky(config)``. Nothing is written to disk.
    """
    if sky is None:
        sky = make_sky(config)
    for epoch in range(config.epochs):
        for band in range(config.bands):
            image = render_image(config, sky, epoch, band)
            yield image, truth_table(config, sky, epoch, band)


def write_series(config: SimulationConfig, out_dir: str | Path) -> SeriesFiles:
    """Write the simulated series to ``out_dir`` (created if needed; files of the same name
    are overwritten): one FITS per epoch and band (``epoch0003_band1.fits``), ``truth.csv``
    (one row per source, epoch and band), ``images.csv`` (one row per image: gain,
    ionosphere), ``sidelobes.csv`` (one row per sidelobe artefact; only a header when there
    are none) and ``sources.csv`` (one row per source); see
    :func:`~trapline.simulate.truth.truth_tables`. Repeated runs with the same config
    write identical bytes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sky = make_sky(config)
    paths: list[Path] = []
    tables: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] = []
    for epoch in range(config.epochs):
        for band in range(config.bands):
            image = render_image(config, sky, epoch, band)
            path = out / config.image_name(epoch, band)
            write_fits(image, path)
            paths.append(path)
            tables.append(truth_tables(config, sky, epoch, band))
    files = [out / name for name in (TRUTH_FILE, IMAGES_FILE, SIDELOBES_FILE)]
    for k, path in enumerate(files):
        frame = pd.concat([t[k] for t in tables], ignore_index=True)
        frame.to_csv(path, index=False, lineterminator="\n")
    sources_path = out / SOURCES_FILE
    sky.to_frame().to_csv(sources_path, index=False, lineterminator="\n")
    return SeriesFiles(out, paths, *files, sources_path, len(sky))
