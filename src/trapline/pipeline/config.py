"""Pipeline configuration: TOML sections, validated, each option with its meaning.

``trapline config --defaults`` prints every option; a run's configuration file only
needs the options it changes. Unknown sections or options, and values of the wrong
type or out of range, are errors that name the option.

To add an option: one line in its section, ``name: type = option(default, help,
check=...)`` (:func:`trapline.options.option`; checks such as ``positive``,
``non_negative``, ``at_least(n)``, ``power_of_two_or_zero(n)`` or ``choices=(...)``).
Its help, default, type check (values are coerced to the default's type) and range
check then hold everywhere: ``trapline config --defaults`` and ``--check``,
:func:`config_from_dict`, the stored run configuration. A rule between two options of
a section goes in the section's ``validate()``. To add a section: a dataclass of such
lines, an entry in :data:`SECTIONS` and a field of :class:`PipelineConfig`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trapline.errors import ConfigError
from trapline.options import (
    at_least,
    check_options,
    need,
    non_negative,
    option,
    options,
    positive,
    power_of_two_or_zero,
    rule,
)
from trapline.pipeline.brightsources import BRIGHT_SOURCES


def _monitor_entry(pos: Any) -> bool:
    return isinstance(pos, str) or (isinstance(pos, list) and len(pos) in (2, 3))


def _unknown_names(names: list, known: Any) -> str | None:
    """What is wrong with a list of names that must each be one of ``known``, or None."""
    unknown = [n for n in names if not isinstance(n, str) or n not in known]
    return f"must name only {', '.join(known)}: unknown {unknown}" if unknown else None


def _tiers_problem(tiers: Any) -> str | None:
    """What is wrong with a lightcurve resolution ladder, or None."""
    ok = isinstance(tiers, list) and len(tiers) >= 1 and all(
        isinstance(t, list) and len(t) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in t)
        for t in tiers)
    if not ok:
        return "must be a list of [resolution_s, keep_s] pairs"
    if tiers[0][0] != 0:
        return "must start with the raw data (resolution 0)"
    for (res, keep), (next_res, _) in zip(tiers, tiers[1:], strict=False):
        if keep <= 0:
            return "may keep only the last tier forever (keep_s 0)"
        if next_res <= res or (res and next_res % res):
            return "must have each resolution a multiple of the previous one"
    keeps = [keep for _, keep in tiers[:-1]]
    if keeps != sorted(keeps):
        return "must have keep times that grow with the resolution"
    return None


@dataclass
class ExtractionSection:
    detection_sigma: float = option(
        8.0, "a source needs a pixel this many local rms above the background", check=positive)
    analysis_sigma: float = option(
        3.0, "island pixels are this many local rms above the background", check=positive)
    grid: int = option(32, "background and rms cell size (pixels)", check=at_least(4, "pixels"))
    method: str = option(
        "moments", "'moments' (fast) or 'fit' (Gaussian least squares to convergence)",
        choices=("moments", "fit"))
    force_beam: bool = option(
        False, "with 'fit', keep the source shape fixed to the restoring beam")
    deblend: bool = option(
        False, "split islands holding several sources (multi-threshold, as PySE)")

    def validate(self) -> None:
        need(self.analysis_sigma <= self.detection_sigma,
             "[extraction] analysis_sigma must not be above detection_sigma")


@dataclass
class ImageSection:
    beam_deg: list[float] = option(
        [], "beam [bmaj, bmin, bpa] (deg) for images whose header has none; [] = none",
        check=rule(lambda v: len(v) in (0, 3), "must be [] or [bmaj, bmin, bpa]"))
    band_tolerance_hz: float = option(
        1e6, "images within this of a band's frequency belong to that band (Hz)",
        check=non_negative)
    margin_pixels: int = option(
        0, "ignore sources whose brightest pixel is this close to the image edge")
    time_mjd: float = option(
        0.0, "observation time (MJD, UTC, mid-integration) for images whose header has "
        "none (DATE-OBS, MJD-OBS); 0 = none: such images are rejected", check=non_negative)


@dataclass
class QualitySection:
    rms_min_jy: float = option(0.0, "reject images whose median rms is below this (Jy/beam)")
    rms_max_jy: float = option(1e9, "reject images whose median rms is above this (Jy/beam)")
    rms_history: int = option(
        100, "number of recent accepted images per band the rms is compared with")
    rms_history_sigma: float = option(
        5.0, "reject images whose rms is this many sigma from the recent mean")
    rms_history_min_images: int = option(
        10, "images needed in the history before that check applies")
    beam_min_pixels: float = option(
        2.0, "reject images whose beam minor axis FWHM is below this (pixels)")
    beam_max_pixels: float = option(
        100.0, "reject images whose beam major axis FWHM is above this (pixels)")
    beam_max_ratio: float = option(10.0, "reject images whose beam axis ratio is above this")
    max_blank_fraction: float = option(
        0.9, "reject images with more than this fraction of blanked pixels")
    bright_sources: list[str] = option(
        list(BRIGHT_SOURCES), "reject images centred near these: CasA, CygA, TauA, VirA, "
        "HerA, Sun, Jupiter (the last two at the image's time); [] = none",
        check=lambda v: _unknown_names(v, BRIGHT_SOURCES))
    bright_source_min_deg: float = option(
        10.0, "... closer than this to the field centre (deg; 0: never)", check=non_negative)
    bright_source_max_radius_deg: float = option(
        45.0, "... unless the field radius is above this (deg): all-sky images always hold "
        "the A-team", check=non_negative)


@dataclass
class AssociationSection:
    beamwidth_limit: float = option(
        3.0, "candidates lie within this many beam semi-major axes", check=positive)
    de_ruiter_radius: float = option(
        5.68, "associate when the de Ruiter radius is below this", check=positive)
    position_sys_err_arcsec: float = option(
        0.0, "systematic position error added in quadrature (arcsec)", check=non_negative)
    position_sys_err_beams: float = option(
        0.1, "... and this fraction of the beam FWHM major axis (pointing, "
        "ionosphere: statistical errors of bright sources are tiny)", check=non_negative)


@dataclass
class ForcedSection:
    max_misses: int = option(
        50, "stop forced fits of a source, in every band, after this many timesteps "
        "without a blind detection in any band", check=non_negative)
    monitor_file: str = option(
        "", "CSV with ra,dec[,name] columns: positions measured in every image")
    monitor: list[list[float | str] | str] = option(
        [], "positions measured in every image: [[ra, dec], ...] or [ra, dec, name] "
        "(deg, or sexagesimal text, RA in hours), or texts such as "
        "\"J100006.0+301200\" or \"10:00:06 +30:12:00\"",
        check=rule(lambda v: all(_monitor_entry(p) for p in v),
                   "entries must be [ra, dec], [ra, dec, name] or a position text such "
                   "as \"J100006.0+301200\""))


@dataclass
class NewSourceSection:
    margin_sigma: float = option(
        1.0, "a new source must exceed the earlier limit by this many rms")
    depth_nside: int = option(
        0, "HEALPix nside of the map of earlier detection limits (0: from the "
        "first image's beam and depth_cell_beams)", check=power_of_two_or_zero(2**20))
    depth_cell_beams: float = option(
        2.0, "with depth_nside 0: depth cells are at most this many beams across")
    precovery_images: int = option(
        16, "earlier accepted images kept per band for precovery forced fits of new "
        "sources (0: none; the earlier-limit rule alone decides)", check=non_negative)
    precovery_memory_mb: float = option(
        1024.0, "... and at most this much memory for them in all (MB)", check=non_negative)
    rise_sigma: float = option(
        5.0, "a detection covered by earlier images is new when its peak exceeds their "
        "weighted mean forced-fit flux by this many combined errors", check=positive)
    sidelobe_fraction: float = option(
        0.05, "not new when a brighter source of the image times this fraction reaches the "
        "detection's peak (its sidelobes could explain it; 0: no veto)",
        check=rule(lambda v: 0 <= v < 1, "must be in [0, 1)"))
    sidelobe_radius_beams: float = option(5.0, "... within this many beams", check=positive)
    stamp_pixels: int = option(
        31, "a new source's candidate keeps cutouts this many pixels across of its image and "
        "of the newest earlier images of its band (0: none)", check=non_negative)
    stamp_images_before: int = option(
        2, "... of this many earlier images", check=non_negative)


@dataclass
class VariabilitySection:
    eta_threshold: float = option(3.0, "variable candidate when eta is above this ...")
    v_threshold: float = option(0.1, "... and V is above this")
    min_points: int = option(
        4, "and the lightcurve has at least this many points in the band", check=at_least(2))
    false_alarm_p: float = option(
        1e-4, "and eta is significant: a steady source's eta, chi^2 with N-1 degrees of "
        "freedom over N-1, exceeds it with a chance below this (0: the eta threshold alone)",
        check=rule(lambda v: 0.0 <= v < 1.0, "must be at least 0 and below 1"))


@dataclass
class CalibrationSection:
    enabled: bool = option(
        True, "calibrate each image's flux scale and positions against reference sources")
    min_snr: float = option(
        20.0, "reference sources have a known peak at least this many times the local rms",
        check=positive)
    min_points: int = option(
        1, "... at least this many points in the band's lightcurve", check=at_least(1))
    max_v: float = option(
        0.3, "... a peak-flux V (std/mean) of at most this (0: no limit)", check=non_negative)
    isolation_beams: float = option(
        5.0, "... no other known source or detection within this many beams (major-axis "
        "FWHMs)", check=positive)
    match_beams: float = option(
        1.0, "... and a detection within this many beams (nearest, one-to-one)", check=positive)
    clip_sigma: float = option(
        3.0, "reference sources this many (robust) sigma off the fit are left out",
        check=positive)
    min_sources_flux: int = option(
        3, "measure the flux scale with at least this many reference sources (fewer: scale 1)",
        check=at_least(1))
    min_sources_position: int = option(
        3, "correct positions with at least this many (fewer: none; fewer than 6: an offset "
        "only)", check=at_least(1))
    fit_gradient: bool = option(
        True, "fit a linear gradient of the position shift across the field (ionosphere), "
        "not only an offset")
    modulation_p: float = option(
        0.01, "when the reference sources' fluxes scatter more than their errors allow "
        "(chi^2 p-value below this: scintillation, direction-dependent gains), measure the "
        "extra fractional scatter and add it to every flux error of the image (0: never)",
        check=rule(lambda v: 0.0 <= v < 1.0, "must be at least 0 and below 1"))
    modulation_images: int = option(
        16, "the modulation applied to an image: the rms of its own estimate and those of "
        "the band's last accepted images, this many in all (1: each image its own)",
        check=at_least(1))
    max_log_scale: float = option(
        0.5, "reject images whose flux scale is off by more than exp(this)", check=positive)
    reject_min_sources: int = option(
        0, "reject images with fewer flux reference sources (0: never)", check=non_negative)
    reference_catalogue: str = option(
        "", "CSV with ra,dec,flux_jy[,freq_hz] columns (deg, Jy): calibrate against it "
        "instead of the sky model (\"\": the sky model)")

    def validate(self) -> None:
        need(self.match_beams <= self.isolation_beams,
             "[calibration] match_beams must not be above isolation_beams")


@dataclass
class LightcurvesSection:
    tiers: list[list[float]] = option(
        [[0.0, 86400.0], [60.0, 2592000.0], [3600.0, 0.0]],
        "resolution ladder [[resolution_s, keep_s], ...]: raw (0) first, each kept "
        "keep_s seconds (0: forever) before going into the next, coarser bins",
        check=_tiers_problem)
    candidate_window_s: float = option(
        600.0, "raw points within this of a candidate of their source stay raw")
    keep_monitor_raw: bool = option(True, "monitoring-list points stay at full resolution")
    compact_every_images: int = option(
        50, "run a bounded compaction pass every this many images (0: never)",
        check=non_negative)
    batch_rows: int = option(20000, "rows one compaction pass reads at most", check=at_least(1))


@dataclass
class RunSection:
    workers: int = option(
        0, "extraction worker processes (0: one per core, 1: in this process)",
        check=non_negative)
    max_in_flight: int = option(
        4, "images read and extracted ahead of association, per worker", check=at_least(1))
    partition_nside: int = option(
        0, "associate in independent sky partitions (HEALPix tiles at this "
        "nside, a power of two; 0: one sky model)", check=power_of_two_or_zero(1024))
    partition_margin_deg: float = option(
        0.5, "overlap of the partitions (deg): more than the association "
        "radius plus a few beams", check=positive)
    storage_outage_s: float = option(
        300.0, "wait this long (s) for an unreachable database, holding the "
        "images, before stopping at the last stored one", check=non_negative)
    live_image_dir: str = option(
        "", "where trapline listen keeps the newest streamed images (precovery after a "
        "restart, pictures); '': beside the SQLite file or ./trapline-live-images; 'none': "
        "not kept")


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
    """Each option's own check, then each section's rules between its options."""
    for section in SECTIONS:
        values = getattr(c, section)
        check_options(values, lambda name, s=section: f"[{s}] {name}")
        if hasattr(values, "validate"):
            values.validate()


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


def defaults_toml(plugin_options: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Every option with its default and meaning, as a TOML document; with each plug-in's
    declared options (``plugin_options``: name -> key -> an option with ``default`` and
    ``help``, as :func:`trapline.plugins.base.builtin_options` gives) as commented
    ``[[plugins]]`` blocks."""
    lines = ["# Trapline pipeline configuration: every option, its default and meaning."]
    for section, cls in SECTIONS.items():
        lines.append(f"\n[{section}]")
        for f in options(cls):
            value = getattr(cls(), f.name)
            lines.append(f"# {f.metadata['help']}")
            lines.append(f"{f.name} = {_toml_value(value)}")
    lines.append("\n# Plug-ins fed in the pipeline's process after each image (none by default):")
    lines.append("# [[plugins]]\n# name = \"alerter\"\n# [[plugins]]\n"
                 "# name = \"parquet\"\n# directory = \"archive\"")
    for name, declared in (plugin_options or {}).items():
        lines.append(f"\n# The {name} plug-in and its options:\n# [[plugins]]\n# name = \"{name}\"")
        for key, plugin_option in declared.items():
            lines.append(f"# {key} = {_toml_value(plugin_option.default)}  # {plugin_option.help}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
