"""The VAST pipeline's 4-epoch test set, fed to Trapline the way VAST reads it.

VAST (askap-vast/vast-pipeline) does not extract sources: it reads each image's Selavy
component catalogue, replaces the catalogued errors by Condon (1997) errors
(``condon_errors: true``), adds its configured systematic position errors
(``ra_uncertainty``/``dec_uncertainty``, arcsec) in quadrature, and uses the Selavy
noise map (``noiseMap``) as the rms for new-source and forced-fit decisions. Here the
same inputs become :class:`~trapline.pipeline.measure.Measured` images, so
:meth:`trapline.pipeline.decide.SkyDecider.decide` sees what VAST's association saw.

VAST numbers measurements 1, 2, ... in image order and, within an image, in catalogue
row order; :func:`measurement_keys` rebuilds that numbering so the stored
``associations.parquet`` (``source_id``, ``meas_id``) can be read as sets of
(epoch, Selavy component) pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

from trapline.extract.background import BackgroundMaps
from trapline.extract.catalogue import Catalogue
from trapline.extract.condon import condon_errors
from trapline.extract.extraction import Extraction
from trapline.image import FWHM_PER_SIGMA, Image
from trapline.io import read_image
from trapline.pipeline.associate import associate
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.decide import SkyDecider
from trapline.pipeline.measure import Measured, _record
from trapline.records import BLIND, ImageResult

EPOCHS = ("epoch01", "epoch02", "epoch03", "epoch04")

Key = tuple[str, str]  # (epoch, Selavy component_id)


# -- VAST's inputs and outputs --------------------------------------------------------


def read_selavy(path: str | Path) -> pd.DataFrame:
    """A Selavy fixed-width component catalogue (second line: units), as VAST reads it."""
    return pd.read_fwf(path, skiprows=[1])


def read_vast_config(path: str | Path) -> dict[str, dict[str, object]]:
    """The scalar options of a VAST run's config.yaml as {section: {option: value}}.

    Only what these configs use: two-level mappings of numbers, booleans and words
    (lists such as the input paths are skipped)."""
    out: dict[str, dict[str, object]] = {}
    section = None
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.rstrip(":").strip()
            out[section] = {}
            continue
        text = line.strip()
        if section is None or text.startswith("-") or ":" not in text:
            continue
        key, value = (part.strip() for part in text.split(":", 1))
        if value:
            out[section][key] = _scalar(value)
    return out


def _scalar(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_expected(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """A stored VAST run: sources (indexed by id), associations, relations, images."""
    run_dir = Path(run_dir)
    out = {name: pd.read_parquet(run_dir / f"{name}.parquet")
           for name in ("sources", "associations", "relations", "images")}
    if "id" in out["sources"].columns:
        out["sources"] = out["sources"].set_index("id")
    return out


def measurement_keys(data_dir: str | Path) -> dict[int, Key]:
    """VAST measurement id -> (epoch, component_id): ids count up from 1 over the
    images in order and, within one, over the catalogue rows."""
    keys: dict[int, Key] = {}
    for epoch in EPOCHS:
        for component in read_selavy(Path(data_dir) / f"{epoch}.selavy.components.txt") \
                .component_id:
            keys[len(keys) + 1] = (epoch, str(component))
    return keys


def vast_groups(expected: dict[str, pd.DataFrame],
                keys: dict[int, Key]) -> dict[int, frozenset[Key]]:
    """VAST source id -> the (epoch, component) pairs associated with it (selavy only)."""
    assoc = expected["associations"]
    groups: dict[int, set[Key]] = {}
    for source, meas in zip(assoc.source_id, assoc.meas_id, strict=True):
        if int(meas) in keys:  # forced measurements have ids beyond the catalogues
            groups.setdefault(int(source), set()).add(keys[int(meas)])
    return {s: frozenset(g) for s, g in groups.items()}


# -- Selavy components as Trapline extractions ----------------------------------------


def selavy_catalogue(components: pd.DataFrame, image: Image) -> Catalogue:
    """Selavy components as a Trapline catalogue (Jy, degrees), with Condon (1997)
    errors computed as VAST does with ``condon_errors: true`` (position errors along
    the fitted axes, projected on RA/Dec with the component's position angle; flux
    errors from the peak and the axes). No systematic error is added here: that is the
    pipeline's ``position_sys_err_arcsec``."""
    c = components
    n = len(c)
    peak = c.flux_peak.to_numpy(float) / 1e3
    flux = c.flux_int.to_numpy(float) / 1e3
    rms = c.rms_image.to_numpy(float) / 1e3
    maj = c.maj_axis.to_numpy(float)
    minor = c.min_axis.to_numpy(float)
    pa = np.radians(c.pos_ang.to_numpy(float))
    beam_maj = image.beam.bmaj_deg * 3600.0 / FWHM_PER_SIGMA
    beam_min = image.beam.bmin_deg * 3600.0 / FWHM_PER_SIGMA
    err = condon_errors(peak, rms, maj / FWHM_PER_SIGMA, minor / FWHM_PER_SIGMA,
                        beam_maj, beam_min)
    ra_err = np.hypot(err.along_major * np.sin(pa), err.along_minor * np.cos(pa))
    dec_err = np.hypot(err.along_major * np.cos(pa), err.along_minor * np.sin(pa))
    model_flux = peak * maj * minor / (FWHM_PER_SIGMA**2 * beam_maj * beam_min)
    ra = c.ra_deg_cont.to_numpy(float)
    dec = c.dec_deg_cont.to_numpy(float)
    x, y = image.sky_to_pixel(ra, dec)
    zero = np.zeros(n)
    return Catalogue(
        ra_deg=ra, dec_deg=dec, ra_err_deg=ra_err / 3600.0, dec_err_deg=dec_err / 3600.0,
        x_pix=x, y_pix=y, peak_jy=peak, peak_err_jy=err.peak,
        flux_jy=flux, flux_err_jy=np.abs(flux) * err.flux / np.abs(model_flux),
        smaj_asec=maj, smin_asec=minor, pa_deg=c.pos_ang.to_numpy(float),
        smaj_err_asec=zero, smin_err_asec=zero, pa_err_deg=zero,
        dc_smaj_asec=c.maj_axis_deconv.to_numpy(float),
        dc_smin_asec=c.min_axis_deconv.to_numpy(float),
        dc_pa_deg=c.pos_ang_deconv.to_numpy(float),
        snr=peak / rms, rms_jy=rms, island_pixels=np.zeros(n, dtype=np.int64),
    )


def _plane(path: Path) -> np.ndarray:
    return np.asarray(fits.getdata(path), dtype=np.float64).squeeze()


def selavy_measured(data_dir: str | Path, epoch: str) -> tuple[Measured, pd.DataFrame]:
    """One epoch as the ordered pipeline stage sees it: the Selavy components as the
    blind detections, the noise map as the rms (its zero border, where Selavy had no
    data, as NaN: VAST too treats rms 0 as no data) and image minus meanMap as the
    residual for forced fits. Returns the Measured image and the components."""
    data_dir = Path(data_dir)
    image = read_image(str(data_dir / f"{epoch}.fits"))
    background = _plane(data_dir / f"{epoch}.meanMap.fits")
    rms = _plane(data_dir / f"{epoch}.noiseMap.fits")
    rms[~(rms > 0)] = np.nan
    residual = image.data - background
    components = read_selavy(data_dir / f"{epoch}.selavy.components.txt")
    catalogue = selavy_catalogue(components, image)
    maps = BackgroundMaps(background=background, rms=rms, grid_background=background[:1, :1],
                          grid_rms=rms[:1, :1])
    extraction = Extraction(image=replace(image, data=residual), sources=catalogue, maps=maps,
                            residual=residual, n_islands=len(catalogue))
    record = _record(image, rms[np.isfinite(rms)], True, None, len(catalogue))
    return Measured(record, extraction), components


def beam_semimajor_arcsec(data_dir: str | Path) -> float:
    """Half the restoring beam's major axis (arcsec); the same in all four epochs."""
    beams = {read_image(str(Path(data_dir) / f"{e}.fits")).beam.bmaj_deg for e in EPOCHS}
    if len(beams) != 1:
        raise ValueError("the epochs have different beams")
    return beams.pop() * 3600.0 / 2.0


def config_from_vast(vast: dict[str, dict[str, object]]) -> PipelineConfig:
    """Trapline settings equivalent to a VAST run's (de Ruiter) association options.

    * VAST's de Ruiter search radius is ``deruiter_beamwidth_limit x BMAJ/2``
      (association.py: ``bw_limit * (max_beam_maj * 3600 / 2)`` arcsec), the same
      unit as Trapline's ``beamwidth_limit`` (beam semi-major axes): copied as is.
    * ``ra_uncertainty``/``dec_uncertainty`` (arcsec, added in quadrature to each
      measurement's error) -> ``position_sys_err_arcsec`` (one value; they are equal).
    * ``new_sources.min_sigma``: VAST flags a source new when its detection peak over
      the earlier image's rms is at least this -> ``detection_sigma`` with
      ``margin_sigma`` 0 (Trapline's condition is peak > (detection_sigma + margin) rms).
      VAST has no precovery: Trapline's earlier-limit rule alone (``precovery_images``
      0) is the one compared, and no sidelobe veto (``sidelobe_fraction`` 0).
    """
    assoc = vast["source_association"]
    meas = vast["measurements"]
    if meas["ra_uncertainty"] != meas["dec_uncertainty"]:
        raise ValueError("Trapline has one systematic position error for both axes")
    config = PipelineConfig()
    config.association.de_ruiter_radius = float(assoc.get("deruiter_radius", 5.68))
    config.association.beamwidth_limit = float(assoc.get("deruiter_beamwidth_limit", 1.5))
    config.association.position_sys_err_arcsec = float(meas["ra_uncertainty"])
    config.association.position_sys_err_beams = 0.0  # VAST adds only the fixed error
    config.extraction.detection_sigma = float(vast["new_sources"]["min_sigma"])
    config.new_source.margin_sigma = 0.0
    # VAST reads the noise map at the source's own pixel: the finest depth cells come
    # closest (a beam across).
    config.new_source.depth_cell_beams = 1.0
    config.new_source.precovery_images = 0
    config.new_source.sidelobe_fraction = 0.0
    config.run.workers = 1
    return config


@dataclass
class SelavyRun:
    """Trapline's outcome over the four epochs fed with the Selavy components."""

    pipeline: SkyDecider
    results: list[ImageResult]
    components: list[pd.DataFrame]
    groups: dict[int, frozenset[Key]] = field(default_factory=dict)
    forced: dict[str, set[int]] = field(default_factory=dict)
    new: dict[int, float] = field(default_factory=dict)
    de_ruiter: dict[Key, float] = field(default_factory=dict)

    def positions(self) -> pd.DataFrame:
        """Final weighted-mean position and errors (deg) of every source, by id."""
        sky = self.pipeline.sky
        ra_err, dec_err = sky.errors()
        return pd.DataFrame({"ra": sky.sources.ra, "dec": sky.sources.dec,
                             "ra_err": ra_err, "dec_err": dec_err},
                            index=pd.Index(sky.sources.source_id, name="source_id"))


def run_selavy(data_dir: str | Path, config: PipelineConfig) -> SelavyRun:
    """Process the four epochs in time order and collect, per Trapline source, the
    (epoch, component) pairs of its blind measurements (shared ones included), the
    forced fits per epoch, the new-source candidates (id -> significance) and the de
    Ruiter radius of every detection's taken pair (NaN: it started a source), from
    :func:`~trapline.pipeline.associate.associate` called with the inputs
    ``SkyDecider.decide`` gives it (errors with the systematic error in quadrature)."""
    pipeline = SkyDecider(config)
    run = SelavyRun(pipeline, [], [])
    groups: dict[int, set[Key]] = {}
    for epoch in EPOCHS:
        measured, components = selavy_measured(data_dir, epoch)
        cat = measured.extraction.sources
        sys_err = config.association.position_sys_err_arcsec / 3600.0
        taken = associate(pipeline.sky, cat.ra_deg, cat.dec_deg,
                          np.hypot(cat.ra_err_deg, sys_err), np.hypot(cat.dec_err_deg, sys_err),
                          measured.extraction.image.beam.bmaj_deg / 2.0,
                          config.association.beamwidth_limit,
                          config.association.de_ruiter_radius)
        for component, radius in zip(components.component_id, taken.de_ruiter, strict=True):
            run.de_ruiter[(epoch, str(component))] = float(radius)
        (result,) = pipeline.decide([measured])
        run.results.append(result)
        run.components.append(components)
        m = result.measurements
        for sid, kind, ra, dec in zip(m.source_id, m.kind, m.ra, m.dec, strict=True):
            if kind == BLIND:
                row = np.flatnonzero((cat.ra_deg == ra) & (cat.dec_deg == dec))
                if len(row) != 1:
                    raise AssertionError(f"{epoch}: blind measurement not in the catalogue")
                component = str(components.component_id.iloc[row[0]])
                groups.setdefault(int(sid), set()).add((epoch, component))
            else:
                run.forced.setdefault(epoch, set()).add(int(sid))
        c = result.candidates
        for sid, kind, significance in zip(c.source_id, c.kind, c.significance, strict=True):
            if kind == "new":
                run.new[int(sid)] = float(significance)
    run.groups = {s: frozenset(g) for s, g in groups.items()}
    return run
