"""Pipeline configuration: TOML sections, validated, each option with its meaning.

``trapline config --defaults`` prints every option; a run's configuration file only
needs the options it changes. Unknown sections or options, and values of the wrong
type or out of range, are errors that name the option.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trapline.errors import ConfigError


@dataclass
class ExtractionSection:
    detection_sigma: float = 8.0
    analysis_sigma: float = 3.0
    grid: int = 32
    method: str = "moments"
    force_beam: bool = False
    deblend: bool = False


@dataclass
class ImageSection:
    beam_deg: list[float] = field(default_factory=list)
    band_tolerance_hz: float = 1e6
    margin_pixels: int = 0
    time_mjd: float = 0.0


@dataclass
class QualitySection:
    rms_min_jy: float = 0.0
    rms_max_jy: float = 1e9
    rms_history: int = 100
    rms_history_sigma: float = 5.0
    rms_history_min_images: int = 10
    beam_min_pixels: float = 2.0
    beam_max_pixels: float = 100.0
    beam_max_ratio: float = 10.0
    max_blank_fraction: float = 0.9
    bright_sources: list[str] = field(default_factory=lambda: [
        "CasA", "CygA", "TauA", "VirA", "HerA", "Sun", "Jupiter"])
    bright_source_min_deg: float = 10.0
    bright_source_max_radius_deg: float = 45.0


@dataclass
class AssociationSection:
    beamwidth_limit: float = 3.0
    de_ruiter_radius: float = 5.68
    position_sys_err_arcsec: float = 0.0
    position_sys_err_beams: float = 0.1


@dataclass
class ForcedSection:
    max_misses: int = 50
    monitor_file: str = ""
    monitor: list[list[float | str] | str] = field(default_factory=list)


@dataclass
class NewSourceSection:
    margin_sigma: float = 1.0
    depth_nside: int = 0
    depth_cell_beams: float = 2.0
    precovery_images: int = 16
    precovery_memory_mb: float = 1024.0
    rise_sigma: float = 5.0
    sidelobe_fraction: float = 0.05
    sidelobe_radius_beams: float = 10.0


@dataclass
class VariabilitySection:
    eta_threshold: float = 3.0
    v_threshold: float = 0.1
    min_points: int = 4


@dataclass
class CalibrationSection:
    enabled: bool = True
    min_snr: float = 20.0
    min_points: int = 3
    max_v: float = 0.3
    isolation_beams: float = 5.0
    match_beams: float = 1.0
    clip_sigma: float = 3.0
    min_sources_flux: int = 3
    min_sources_position: int = 3
    fit_gradient: bool = True
    max_log_scale: float = 0.5
    reject_min_sources: int = 0
    reference_catalogue: str = ""


@dataclass
class LightcurvesSection:
    tiers: list[list[float]] = field(
        default_factory=lambda: [[0.0, 86400.0], [60.0, 2592000.0], [3600.0, 0.0]])
    candidate_window_s: float = 600.0
    keep_monitor_raw: bool = True
    compact_every_images: int = 50
    batch_rows: int = 20000


@dataclass
class RunSection:
    workers: int = 0
    max_in_flight: int = 4
    partition_nside: int = 0
    partition_margin_deg: float = 0.5
    storage_outage_s: float = 300.0
    live_image_dir: str = ""


HELP: dict[str, dict[str, str]] = {
    "extraction": {
        "detection_sigma": "a source needs a pixel this many local rms above the background",
        "analysis_sigma": "island pixels are this many local rms above the background",
        "grid": "background and rms cell size (pixels)",
        "method": "'moments' (fast) or 'fit' (Gaussian least squares to convergence)",
        "force_beam": "with 'fit', keep the source shape fixed to the restoring beam",
        "deblend": "split islands holding several sources (multi-threshold, as PySE)",
    },
    "image": {
        "beam_deg": "beam [bmaj, bmin, bpa] (deg) for images whose header has none; [] = none",
        "band_tolerance_hz": "images within this of a band's frequency belong to that band (Hz)",
        "margin_pixels": "ignore sources whose brightest pixel is this close to the image edge",
        "time_mjd": "observation time (MJD, UTC, mid-integration) for images whose header has "
                    "none (DATE-OBS, MJD-OBS); 0 = none: such images are rejected",
    },
    "quality": {
        "rms_min_jy": "reject images whose median rms is below this (Jy/beam)",
        "rms_max_jy": "reject images whose median rms is above this (Jy/beam)",
        "rms_history": "number of recent accepted images per band the rms is compared with",
        "rms_history_sigma": "reject images whose rms is this many sigma from the recent mean",
        "rms_history_min_images": "images needed in the history before that check applies",
        "beam_min_pixels": "reject images whose beam minor axis FWHM is below this (pixels)",
        "beam_max_pixels": "reject images whose beam major axis FWHM is above this (pixels)",
        "beam_max_ratio": "reject images whose beam axis ratio is above this",
        "max_blank_fraction": "reject images with more than this fraction of blanked pixels",
        "bright_sources": "reject images centred near these: CasA, CygA, TauA, VirA, HerA, "
                          "Sun, Jupiter (the last two at the image's time); [] = none",
        "bright_source_min_deg": "... closer than this to the field centre (deg; 0: never)",
        "bright_source_max_radius_deg": "... unless the field radius is above this (deg): "
                                        "all-sky images always hold the A-team",
    },
    "association": {
        "beamwidth_limit": "candidates lie within this many beam semi-major axes",
        "de_ruiter_radius": "associate when the de Ruiter radius is below this",
        "position_sys_err_arcsec": "systematic position error added in quadrature (arcsec)",
        "position_sys_err_beams": "... and this fraction of the beam FWHM major axis (pointing, "
                                  "ionosphere: statistical errors of bright sources are tiny)",
    },
    "forced": {
        "max_misses": "stop forced fits of a source after this many consecutive misses in a band",
        "monitor_file": "CSV with ra,dec[,name] columns: positions measured in every image",
        "monitor": "positions measured in every image: [[ra, dec], ...] or [ra, dec, name] "
                   "(deg, or sexagesimal text, RA in hours), or texts such as "
                   "\"J100006.0+301200\" or \"10:00:06 +30:12:00\"",
    },
    "new_source": {
        "margin_sigma": "a new source must exceed the earlier limit by this many rms",
        "depth_nside": "HEALPix nside of the map of earlier detection limits (0: from the "
                       "first image's beam and depth_cell_beams)",
        "depth_cell_beams": "with depth_nside 0: depth cells are at most this many beams across",
        "precovery_images": "earlier accepted images kept per band for precovery forced fits of "
                            "new sources (0: none; the earlier-limit rule alone decides)",
        "precovery_memory_mb": "... and at most this much memory for them in all (MB)",
        "rise_sigma": "a detection covered by earlier images is new when its peak exceeds "
                      "their weighted mean forced-fit flux by this many combined errors",
        "sidelobe_fraction": "not new when a brighter source of the image times this fraction "
                             "reaches the detection's peak (its sidelobes could explain it; "
                             "0: no veto)",
        "sidelobe_radius_beams": "... within this many beams",
    },
    "variability": {
        "eta_threshold": "variable candidate when eta is above this ...",
        "v_threshold": "... and V is above this",
        "min_points": "and the lightcurve has at least this many points in the band",
    },
    "calibration": {
        "enabled": "calibrate each image's flux scale and positions against reference sources",
        "min_snr": "reference sources have a known peak at least this many times the local rms",
        "min_points": "... at least this many points in the band's lightcurve",
        "max_v": "... a peak-flux V (std/mean) of at most this (0: no limit)",
        "isolation_beams": "... no other known source or detection within this many beams "
                           "(major-axis FWHMs)",
        "match_beams": "... and a detection within this many beams (nearest, one-to-one)",
        "clip_sigma": "reference sources this many (robust) sigma off the fit are left out",
        "min_sources_flux": "measure the flux scale with at least this many reference sources "
                            "(fewer: scale 1)",
        "min_sources_position": "correct positions with at least this many (fewer: none; "
                                "fewer than 6: an offset only)",
        "fit_gradient": "fit a linear gradient of the position shift across the field "
                        "(ionosphere), not only an offset",
        "max_log_scale": "reject images whose flux scale is off by more than exp(this)",
        "reject_min_sources": "reject images with fewer flux reference sources (0: never)",
        "reference_catalogue": "CSV with ra,dec,flux_jy[,freq_hz] columns (deg, Jy): calibrate "
                               "against it instead of the sky model (\"\": the sky model)",
    },
    "lightcurves": {
        "tiers": "resolution ladder [[resolution_s, keep_s], ...]: raw (0) first, each kept "
                 "keep_s seconds (0: forever) before going into the next, coarser bins",
        "candidate_window_s": "raw points within this of a candidate of their source stay raw",
        "keep_monitor_raw": "monitoring-list points stay at full resolution",
        "compact_every_images": "run a bounded compaction pass every this many images (0: never)",
        "batch_rows": "rows one compaction pass reads at most",
    },
    "run": {
        "workers": "extraction worker processes (0: one per core, 1: in this process)",
        "max_in_flight": "images read and extracted ahead of association, per worker",
        "partition_nside": "associate in independent sky partitions (HEALPix tiles at this "
                           "nside, a power of two; 0: one sky model)",
        "partition_margin_deg": "overlap of the partitions (deg): more than the association "
                                "radius plus a few beams",
        "storage_outage_s": "wait this long (s) for an unreachable database, holding the "
                            "images, before stopping at the last stored one",
        "live_image_dir": "where trapline listen keeps the newest streamed images (precovery "
                          "after a restart, pictures); '': beside the SQLite file or "
                          "./trapline-live-images; 'none': not kept",
    },
}

SECTIONS = {
    "extraction": ExtractionSection,
    "image": ImageSection,
    "quality": QualitySection,
    "association": AssociationSection,
    "forced": ForcedSection,
    "new_source": NewSourceSection,
    "variability": VariabilitySection,
    "calibration": CalibrationSection,
    "lightcurves": LightcurvesSection,
    "run": RunSection,
}


@dataclass
class PipelineConfig:
    """All pipeline settings; build with :func:`load_config` or ``PipelineConfig()``."""

    extraction: ExtractionSection = field(default_factory=ExtractionSection)
    image: ImageSection = field(default_factory=ImageSection)
    quality: QualitySection = field(default_factory=QualitySection)
    association: AssociationSection = field(default_factory=AssociationSection)
    forced: ForcedSection = field(default_factory=ForcedSection)
    new_source: NewSourceSection = field(default_factory=NewSourceSection)
    variability: VariabilitySection = field(default_factory=VariabilitySection)
    calibration: CalibrationSection = field(default_factory=CalibrationSection)
    lightcurves: LightcurvesSection = field(default_factory=LightcurvesSection)
    run: RunSection = field(default_factory=RunSection)
    # [[plugins]] tables: name (entry point) or path (dotted), plus the plug-in's options.
    plugins: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(section: str, name: str, value: Any, default: Any) -> Any:
    where = f"[{section}] {name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return value
    return value


def config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    """Validate a parsed TOML document into a PipelineConfig."""
    config = PipelineConfig()
    for section, values in data.items():
        if section == "plugins":
            if not isinstance(values, list) or not all(
                    isinstance(v, dict) and ("name" in v or "path" in v) for v in values):
                raise ConfigError("[[plugins]] entries need a name (entry point) or a path "
                                  "(module:attribute), plus the plug-in's options")
            config.plugins = [dict(v) for v in values]
            continue
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}]; sections are: {', '.join(SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table of options")
        target = getattr(config, section)
        known = {f.name for f in fields(target)}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(
                    f"unknown option [{section}] {name}; options are: {', '.join(sorted(known))}"
                )
            setattr(target, name, _coerce(section, name, value, getattr(target, name)))
    _check(config)
    return config


def _check(c: PipelineConfig) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    e = c.extraction
    need(e.detection_sigma > 0, "[extraction] detection_sigma must be > 0")
    need(0 < e.analysis_sigma <= e.detection_sigma,
         "[extraction] analysis_sigma must be > 0 and not above detection_sigma")
    need(e.grid >= 4, "[extraction] grid must be at least 4 pixels")
    need(e.method in ("moments", "fit"), "[extraction] method must be 'moments' or 'fit'")
    need(len(c.image.beam_deg) in (0, 3), "[image] beam_deg must be [] or [bmaj, bmin, bpa]")
    from trapline.pipeline.quality import BRIGHT_SOURCES

    unknown = [n for n in c.quality.bright_sources
               if not isinstance(n, str) or n not in BRIGHT_SOURCES]
    need(not unknown, f"[quality] bright_sources: unknown {unknown}; "
                      f"choose from {list(BRIGHT_SOURCES)}")
    need(c.image.band_tolerance_hz >= 0, "[image] band_tolerance_hz must be >= 0")
    need(c.image.time_mjd >= 0, "[image] time_mjd must be >= 0 (0: none)")
    need(c.association.beamwidth_limit > 0, "[association] beamwidth_limit must be > 0")
    need(c.association.de_ruiter_radius > 0, "[association] de_ruiter_radius must be > 0")
    need(c.association.position_sys_err_arcsec >= 0 and c.association.position_sys_err_beams >= 0,
         "[association] systematic position errors must be >= 0")
    need(c.forced.max_misses >= 0, "[forced] max_misses must be >= 0")
    for pos in c.forced.monitor:
        need(isinstance(pos, str) or (isinstance(pos, list) and len(pos) in (2, 3)),
             "[forced] monitor entries must be [ra, dec], [ra, dec, name] or a position "
             "text such as \"J100006.0+301200\"")
    nside = c.new_source.depth_nside
    need(nside == 0 or (nside & (nside - 1) == 0 and nside <= 2**20),
         "[new_source] depth_nside must be 0 (automatic) or a power of two")
    ns = c.new_source
    need(ns.precovery_images >= 0, "[new_source] precovery_images must be >= 0")
    need(ns.precovery_memory_mb >= 0, "[new_source] precovery_memory_mb must be >= 0")
    need(ns.rise_sigma > 0, "[new_source] rise_sigma must be > 0")
    need(0 <= ns.sidelobe_fraction < 1, "[new_source] sidelobe_fraction must be in [0, 1)")
    need(ns.sidelobe_radius_beams > 0, "[new_source] sidelobe_radius_beams must be > 0")
    need(c.variability.min_points >= 2, "[variability] min_points must be at least 2")
    k = c.calibration
    need(k.min_snr > 0 and k.clip_sigma > 0 and k.max_log_scale > 0,
         "[calibration] min_snr, clip_sigma and max_log_scale must be > 0")
    need(0 < k.match_beams <= k.isolation_beams,
         "[calibration] match_beams must be > 0 and not above isolation_beams")
    need(k.min_points >= 1 and k.min_sources_flux >= 1 and k.min_sources_position >= 1,
         "[calibration] min_points, min_sources_flux and min_sources_position must be >= 1")
    need(k.max_v >= 0 and k.reject_min_sources >= 0,
         "[calibration] max_v and reject_min_sources must be >= 0")
    _check_tiers(c.lightcurves.tiers)
    need(c.lightcurves.batch_rows >= 1, "[lightcurves] batch_rows must be >= 1")
    need(c.lightcurves.compact_every_images >= 0,
         "[lightcurves] compact_every_images must be >= 0")
    need(c.run.workers >= 0, "[run] workers must be >= 0")
    need(c.run.max_in_flight >= 1, "[run] max_in_flight must be >= 1")
    p = c.run.partition_nside
    need(p == 0 or (p & (p - 1) == 0 and p <= 1024),
         "[run] partition_nside must be 0 or a power of two up to 1024")
    need(c.run.partition_margin_deg > 0, "[run] partition_margin_deg must be > 0")
    need(c.run.storage_outage_s >= 0, "[run] storage_outage_s must be >= 0")


def _check_tiers(tiers: list) -> None:
    where = "[lightcurves] tiers"
    ok = isinstance(tiers, list) and len(tiers) >= 1 and all(
        isinstance(t, list) and len(t) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in t)
        for t in tiers)
    if not ok:
        raise ConfigError(f"{where} must be a list of [resolution_s, keep_s] pairs")
    if tiers[0][0] != 0:
        raise ConfigError(f"{where}: the first tier must be the raw data (resolution 0)")
    for (res, keep), (next_res, _) in zip(tiers, tiers[1:], strict=False):
        if keep <= 0:
            raise ConfigError(f"{where}: only the last tier may be kept forever (keep_s 0)")
        if next_res <= res or (res and next_res % res):
            raise ConfigError(f"{where}: each resolution must be a multiple of the previous")
    keeps = [keep for _, keep in tiers[:-1]]
    if keeps != sorted(keeps):
        raise ConfigError(f"{where}: keep times must grow with the resolution")


def load_config(path: str | Path | None) -> PipelineConfig:
    """Read and validate a TOML configuration file (None: the defaults)."""
    if path is None:
        return PipelineConfig()
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return config_from_dict(data)


def defaults_toml() -> str:
    """Every option with its default and meaning, as a TOML document."""
    lines = ["# Trapline pipeline configuration: every option, its default and meaning."]
    for section, cls in SECTIONS.items():
        lines.append(f"\n[{section}]")
        for f in fields(cls):
            value = getattr(cls(), f.name)
            lines.append(f"# {HELP[section][f.name]}")
            lines.append(f"{f.name} = {_toml_value(value)}")
    lines.append("\n# Plug-ins fed in the pipeline's process after each image (none by default):")
    lines.append("# [[plugins]]\n# name = \"alerter\"\n# [[plugins]]\n"
                 "# name = \"parquet\"\n# directory = \"archive\"")
    from trapline.plugins.base import builtin_options

    for name, options in builtin_options().items():
        lines.append(f"\n# The {name} plug-in and its options:\n# [[plugins]]\n# name = \"{name}\"")
        for key, option in options.items():
            lines.append(f"# {key} = {_toml_value(option.default)}  # {option.help}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
