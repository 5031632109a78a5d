"""Simulated radio skies for tests, demos and benchmarks.

Point sources of several populations (steady, variable, transient, fading) are painted as
the restoring beam at sub-pixel positions on noise correlated over the beam, in a series
of epochs and frequency bands, with the truth of every source in every image. Optional
instrument effects (:mod:`trapline.simulate.effects`: gain errors, ionospheric shifts,
sidelobes, scintillation) make the images as imperfect as real ones, with their truth::

    from trapline.simulate import SimulationConfig, make_sky, render_image, iter_images

    config = SimulationConfig(seed=1, size=1024, n_steady=300)
    sky = make_sky(config)
    image = render_image(config, sky, epoch=0, band=0)      # a trapline.image.Image
    for image, truth in iter_images(config): ...            # truth: pandas DataFrame
    write_series(config, "sim/")        # FITS, truth.csv, images.csv, sidelobes.csv, sources.csv
"""

from trapline.simulate.config import SimulationConfig
from trapline.simulate.effects import (
    ApparentSky,
    ImageEffects,
    Sidelobes,
    apparent_sky,
    image_effects,
    sidelobes,
)
from trapline.simulate.noise import correlated_noise, gaussian_kernel, noise_correlation
from trapline.simulate.render import outside_sky, paint_sources, render_image
from trapline.simulate.series import SeriesFiles, iter_images, write_series
from trapline.simulate.sky import POPULATIONS, SOURCE_COLUMNS, SkyModel, derived_rng, make_sky
from trapline.simulate.truth import (
    IMAGE_COLUMNS,
    SIDELOBE_COLUMNS,
    TRUTH_COLUMNS,
    truth_table,
    truth_tables,
)

__all__ = [
    "IMAGE_COLUMNS",
    "POPULATIONS",
    "SIDELOBE_COLUMNS",
    "SOURCE_COLUMNS",
    "TRUTH_COLUMNS",
    "ApparentSky",
    "ImageEffects",
    "SeriesFiles",
    "Sidelobes",
    "SimulationConfig",
    "SkyModel",
    "apparent_sky",
    "correlated_noise",
    "derived_rng",
    "gaussian_kernel",
    "image_effects",
    "iter_images",
    "make_sky",
    "noise_correlation",
    "outside_sky",
    "paint_sources",
    "render_image",
    "sidelobes",
    "truth_table",
    "truth_tables",
    "write_series",
]
