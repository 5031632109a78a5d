"""The truth of each simulated image: its sources (truth.csv), the instrument's state
(images.csv) and the sidelobe artefacts (sidelobes.csv)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy.time import Time

from trapline.simulate.config import SimulationConfig
from trapline.simulate.effects import apparent_sky, image_effects, sidelobes
from trapline.simulate.sky import SkyModel

TRUTH_COLUMNS = [
    "source_id",
    "population",
    "epoch",
    "band",
    "image",
    "time",
    "time_mjd",
    "freq_hz",
    "ra",
    "dec",
    "x",
    "y",
    "peak_jy",
    "rms_jy",
    "sky_ra",
    "sky_dec",
    "sky_x",
    "sky_y",
    "gain",
    "scintillation",
    "apparent_peak_jy",
]
"""Columns of truth.csv, one row per source and image (see :func:`truth_tables`)."""

IMAGE_COLUMNS = [
    "image",
    "epoch",
    "band",
    "time",
    "time_mjd",
    "freq_hz",
    "rms_jy",
    "gain",
    "iono_dx_arcsec",
    "iono_dy_arcsec",
    "iono_gxx",
    "iono_gxy",
    "iono_gyx",
    "iono_gyy",
    "sidelobe_angle_deg",
]
"""Columns of images.csv, one row per image (see :func:`truth_tables`)."""

SIDELOBE_COLUMNS = [
    "image",
    "epoch",
    "band",
    "source_id",
    "spoke",
    "radius_beams",
    "angle_deg",
    "x",
    "y",
    "ra",
    "dec",
    "peak_jy",
]
"""Columns of sidelobes.csv, one row per sidelobe artefact (see :func:`truth_tables`)."""


def truth_tables(
    config: SimulationConfig, sky: SkyModel, epoch: int, band: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The truth of one image: (sources, image, sidelobes) tables with
    :data:`TRUTH_COLUMNS`, :data:`IMAGE_COLUMNS` (one row) and :data:`SIDELOBE_COLUMNS`.

    Sources: ``ra``/``dec`` (deg) and ``x``/``y`` (0-based pixels, in this epoch's image)
    are the rendered position (jitter and ionosphere applied); ``sky_ra``/``sky_dec`` and
    ``sky_x``/``sky_y`` the catalogue position (that of sources.csv, in this image).
    ``peak_jy`` is the sky's peak (Jy/beam, before the instrument; 0 when the source is off
    or, drifting, has set below an all-sky image's horizon), ``apparent_peak_jy`` the
    rendered one, ``peak_jy * gain * scintillation``. ``time`` is the mid-integration time
    (ISO UTC, what ``Image.time_mjd`` holds), ``rms_jy`` the noise.

    Image: ``gain`` (factor on every source's flux), ``iono_dx_arcsec``/``iono_dy_arcsec``
    (the ionosphere's shift of the field along the +x and +y pixel axes) and ``iono_gxx``,
    ``iono_gxy``, ``iono_gyx``, ``iono_gyy`` (its gradient, arcsec of shift per degree from
    the field centre: a source ``(dx, dy)`` degrees from the centre moves along x by
    ``iono_dx_arcsec + iono_gxx * dx + iono_gxy * dy``), all at this band's frequency;
    ``sidelobe_angle_deg`` the direction of the first sidelobe spoke (deg,
    counter-clockwise from +x in pixels).

    Sidelobes: each artefact's source, spoke, distance (beam FWHMs) and direction from
    it, position (pixels, and sky deg) and peak (Jy/beam; beam-shaped).
    """
    effects = image_effects(config, epoch, band)
    apparent = apparent_sky(config, sky, epoch, band, effects)
    name = config.image_name(epoch, band)
    freq = float(config.freqs_hz[band])
    time_mjd = config.time_mjd(epoch)
    time = Time(time_mjd, format="mjd", scale="utc").isot
    n = len(sky)
    seen = apparent.visible
    sources = pd.DataFrame(
        {
            "source_id": sky.source_id,
            "population": sky.population,
            "epoch": np.full(n, epoch),
            "band": np.full(n, band),
            "image": name,
            "time": time,
            "time_mjd": time_mjd,
            "freq_hz": freq,
            "ra": apparent.ra,
            "dec": apparent.dec,
            "x": apparent.x,
            "y": apparent.y,
            "peak_jy": np.where(seen, apparent.peak_jy, 0.0),
            "rms_jy": config.rms_jy,
            "sky_ra": sky.ra,
            "sky_dec": sky.dec,
            "sky_x": apparent.sky_x,
            "sky_y": apparent.sky_y,
            "gain": effects.gain,
            "scintillation": apparent.scintillation,
            "apparent_peak_jy": np.where(seen, apparent.apparent_peak_jy, 0.0),
        },
        columns=TRUTH_COLUMNS,
    )
    (dx, dy), g = effects.iono_offset_arcsec, effects.iono_gradient_arcsec_per_deg
    image = pd.DataFrame(
        [
            [
                name,
                epoch,
                band,
                time,
                time_mjd,
                freq,
                config.rms_jy,
                effects.gain,
                dx,
                dy,
                g[0, 0],
                g[0, 1],
                g[1, 0],
                g[1, 1],
                effects.sidelobe_angle_deg,
            ]
        ],
        columns=IMAGE_COLUMNS,
    )
    lobes = sidelobes(config, apparent, effects, sky.source_id)
    m = len(lobes.x)
    with np.errstate(invalid="ignore"):
        ra, dec = config.wcs(epoch).all_pix2world(lobes.x, lobes.y, 0)
    artefacts = pd.DataFrame(
        {
            "image": np.full(m, name),
            "epoch": np.full(m, epoch),
            "band": np.full(m, band),
            "source_id": lobes.source_id,
            "spoke": lobes.spoke,
            "radius_beams": lobes.radius_beams,
            "angle_deg": lobes.angle_deg,
            "x": lobes.x,
            "y": lobes.y,
            "ra": np.mod(ra, 360.0),
            "dec": dec,
            "peak_jy": lobes.peak_jy,
        },
        columns=SIDELOBE_COLUMNS,
    )
    return sources, image, artefacts


def truth_table(config: SimulationConfig, sky: SkyModel, epoch: int, band: int) -> pd.DataFrame:
    """The sources' truth of one image (:data:`TRUTH_COLUMNS`; see :func:`truth_tables`)."""
    return truth_tables(config, sky, epoch, band)[0]
