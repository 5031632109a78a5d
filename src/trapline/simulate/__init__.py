"""Simulated radio skies for tests, demos and benchmarks.

Point sources of several populations (steady, variable, transient, fading) are painted as
the restoring beam at sub-pixel positions on noise correlated over the beam, in a series
of epochs and frequency bands, with the truth of every source in every image::

    from trapline.simulate import SimulationConfig, make_sky, render_image, iter_images

    config = SimulationConfig(seed=1, size=1024, n_steady=300)
    sky = make_sky(config)
    image = render_image(config, sky, epoch=0, band=0)      # a trapline.image.Image
    for image, truth in iter_images(config): ...            # truth: pandas DataFrame
    write_series(config, "sim/")                             # FITS + truth.csv + sources.csv
"""

from trapline.simulate.config import SimulationConfig
from trapline.simulate.noise import correlated_noise, gaussian_kernel, noise_correlation
from trapline.simulate.render import outside_sky, paint_sources, render_image
from trapline.simulate.series import SeriesFiles, iter_images, write_series
from trapline.simulate.sky import (
    POPULATIONS,
    SOURCE_COLUMNS,
    TRUTH_COLUMNS,
    SkyModel,
    derived_rng,
    make_sky,
    truth_table,
)

__all__ = [
    "POPULATIONS",
    "SOURCE_COLUMNS",
    "TRUTH_COLUMNS",
    "SeriesFiles",
    "SimulationConfig",
    "SkyModel",
    "correlated_noise",
    "derived_rng",
    "gaussian_kernel",
    "iter_images",
    "make_sky",
    "noise_correlation",
    "outside_sky",
    "paint_sources",
    "render_image",
    "truth_table",
    "write_series",
]
