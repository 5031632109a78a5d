"""The database schema: SQLAlchemy 2 declarative models, one class per table.

The database is storage only: the pipeline computes everything in memory and these
tables keep its outcome. Units: angles in degrees (position errors as arcs on the
sky), times as MJD (UTC), frequencies Hz, peak flux Jy/beam, integrated flux Jy.
Missing values (NaN in memory) are stored as NULL.

Changing a model needs a new Alembic migration in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# 64-bit ids; SQLite needs plain INTEGER for an auto-incrementing (rowid) primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Deterministic constraint names: Alembic (and SQLite batch mode) need them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# HEALPix order of ``source.healpix``: NESTED scheme at nside 2**HEALPIX_LEVEL.
HEALPIX_LEVEL = 16


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        int: Integer(),
        float: Double(),
        str: Text(),
        bool: Boolean(),
        datetime: DateTime(timezone=True),
    }


class Image(Base):
    """One image: metadata, quality control and how many sources it gave."""

    __tablename__ = "image"

    image_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    image_key: Mapped[str] = mapped_column(unique=True)
    path: Mapped[str]
    time: Mapped[datetime | None]  # UTC; NULL for unreadable files
    time_mjd: Mapped[float | None]
    freq_hz: Mapped[float | None]
    bandwidth_hz: Mapped[float | None]
    band: Mapped[int]
    telescope: Mapped[str | None]
    integration_s: Mapped[float | None]
    nx: Mapped[int | None]
    ny: Mapped[int | None]
    centre_ra: Mapped[float | None]
    centre_dec: Mapped[float | None]
    radius_deg: Mapped[float | None]
    bmaj_deg: Mapped[float | None]
    bmin_deg: Mapped[float | None]
    bpa_deg: Mapped[float | None]
    rms: Mapped[float | None]  # median rms, Jy/beam
    rms_min: Mapped[float | None]
    rms_max: Mapped[float | None]
    accepted: Mapped[bool]
    reject_reason: Mapped[str | None]
    n_blind: Mapped[int]
    n_forced: Mapped[int]
    n_monitor: Mapped[int]
    processed_at: Mapped[datetime]
    # Per-image calibration against the sky model: fluxes were divided by flux_scale
    # (measured / sky), positions corrected by the offset (deg, arcs east and north).
    flux_scale: Mapped[float | None]
    flux_scale_err: Mapped[float | None]
    n_flux_calibrators: Mapped[int | None]
    offset_east_deg: Mapped[float | None]
    offset_north_deg: Mapped[float | None]
    n_position_calibrators: Mapped[int | None]
    # The fractional scatter of the reference sources beyond their errors, in every
    # stored flux error of the image.
    flux_modulation: Mapped[float | None]


class Source(Base):
    """A source of the sky model; ``source_id`` is assigned by the pipeline."""

    __tablename__ = "source"

    source_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ra: Mapped[float]
    dec: Mapped[float]
    ra_err: Mapped[float | None]
    dec_err: Mapped[float | None]
    first_time_mjd: Mapped[float | None]
    last_time_mjd: Mapped[float | None]
    n_blind: Mapped[int]
    n_forced: Mapped[int]
    is_monitor: Mapped[bool]
    # Timesteps since the last blind detection in any band (forced fits stop at max_misses).
    misses: Mapped[int] = mapped_column(server_default="0")
    # NESTED HEALPix index at nside 2**16 (~3.2 arcsec pixels) for cone searches.
    healpix: Mapped[int] = mapped_column(BigInteger, index=True)


class Measurement(Base):
    """One flux measurement of one source in one image.

    ``time_mjd``, ``freq_hz`` and ``band`` are copied from the image so that a light
    curve is one index range scan, without a join."""

    __tablename__ = "measurement"
    __table_args__ = (
        UniqueConstraint("source_id", "image_id"),
        Index("ix_measurement_source_id_time_mjd", "source_id", "time_mjd"),
        # Compaction walks the oldest raw measurements in time order.
        Index("ix_measurement_time_mjd_measurement_id", "time_mjd", "measurement_id"),
    )

    measurement_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("source.source_id"))
    image_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("image.image_id"), index=True)
    kind: Mapped[str]  # 'blind', 'forced' or 'monitor'
    time_mjd: Mapped[float | None]
    freq_hz: Mapped[float | None]
    band: Mapped[int]
    ra: Mapped[float | None]
    dec: Mapped[float | None]
    ra_err: Mapped[float | None]
    dec_err: Mapped[float | None]
    peak_flux: Mapped[float | None]
    peak_flux_err: Mapped[float | None]
    int_flux: Mapped[float | None]
    int_flux_err: Mapped[float | None]
    snr: Mapped[float | None]
    smaj_asec: Mapped[float | None]
    smin_asec: Mapped[float | None]
    pa_deg: Mapped[float | None]


class BandStatistics(Base):
    """Running variability sums of one source in one band (see records.BandStatistics)."""

    __tablename__ = "band_statistics"

    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("source.source_id"), primary_key=True
    )
    band: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int]
    sw_int: Mapped[float | None]
    swf_int: Mapped[float | None]
    swf2_int: Mapped[float | None]
    sf_int: Mapped[float | None]
    sf2_int: Mapped[float | None]
    sw_peak: Mapped[float | None]
    swf_peak: Mapped[float | None]
    swf2_peak: Mapped[float | None]
    sf_peak: Mapped[float | None]
    sf2_peak: Mapped[float | None]
    eta_int: Mapped[float | None]
    v_int: Mapped[float | None]
    eta_peak: Mapped[float | None]
    v_peak: Mapped[float | None]
    max_snr: Mapped[float | None]
    misses: Mapped[int]
    # The brightest and faintest integrated-flux points (Jy) and the two-epoch metrics of
    # that pair (Mooley et al. 2016): Vs = (f_max - f_min) / hypot(errors), m = 2 (f_max -
    # f_min) / (f_max + f_min).
    f_max: Mapped[float | None]
    f_max_err: Mapped[float | None]
    f_min: Mapped[float | None]
    f_min_err: Mapped[float | None]
    vs_int: Mapped[float | None]
    m_int: Mapped[float | None]


class Candidate(Base):
    """A transient candidate raised in one image: kind 'new' or 'variable'."""

    __tablename__ = "candidate"
    __table_args__ = (UniqueConstraint("source_id", "image_id", "kind"),)

    candidate_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("source.source_id"))
    image_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("image.image_id"))
    kind: Mapped[str]
    level: Mapped[str]
    band: Mapped[int]
    time_mjd: Mapped[float | None]
    significance: Mapped[float | None]
    flux: Mapped[float | None]
    limit: Mapped[float | None]
    # New sources: weighted mean forced-fit flux on the earlier images of the band
    # (precovery, Jy/beam), its error, the rise over it in combined errors, the number of
    # earlier images fitted and of bands the source is detected in at its first time.
    precovery_flux: Mapped[float | None]
    precovery_flux_err: Mapped[float | None]
    rise_sigma: Mapped[float | None]
    n_precovery: Mapped[int | None]
    n_bands: Mapped[int | None]
    # Why a 'new-rejected' detection is not claimed new ('no rise', 'sidelobe ...').
    reason: Mapped[str | None]


class CandidateStamp(Base):
    """A small cutout of a new source kept with its candidate (see records.Stamps): float32
    pixels, ``size`` x ``size``, row 0 at the bottom, Jy/beam after background subtraction."""

    __tablename__ = "candidate_stamp"

    stamp_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("source.source_id"),
                                           index=True)
    image_key: Mapped[str]
    time_mjd: Mapped[float | None]
    band: Mapped[int]
    label: Mapped[str]
    size: Mapped[int]
    pixels: Mapped[bytes] = mapped_column(LargeBinary)


class SourceFork(Base):
    """A one-to-many split: the lightcurve ``source_id`` forked from ``parent_id`` when
    two detections in image ``image_id`` both matched the parent."""

    __tablename__ = "source_fork"

    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("source.source_id"),
                                           primary_key=True, autoincrement=False)
    parent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("source.source_id"),
                                           index=True)
    image_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("image.image_id"))


class SkyDepth(Base):
    """Best (lowest) and worst (highest) detection limit so far per band and sky cell
    (the pipeline's HEALPix cell index), Jy/beam."""

    __tablename__ = "sky_depth"

    band: Mapped[int] = mapped_column(primary_key=True)
    cell: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    limit: Mapped[float]
    worst: Mapped[float | None]


class SkyDepthLog(Base):
    """Sky depth changes of one image, packed, until folded into sky_depth (see
    :mod:`trapline.storage.depthlog`)."""

    __tablename__ = "sky_depth_log"

    log_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("image.image_id"))
    n_cells: Mapped[int]
    payload: Mapped[bytes] = mapped_column(LargeBinary)


# PostgreSQL compresses values over 2 kB by default; the payload is packed floats that
# barely compress, and compressing a first image's 1 MB took 25 ms of a 30 ms insert (the
# journal is emptied every 200 images, so its size does not matter). Migration 0004 does
# the same for databases created before.
PAYLOAD_UNCOMPRESSED = "ALTER TABLE sky_depth_log ALTER COLUMN payload SET STORAGE EXTERNAL"
event.listen(SkyDepthLog.__table__, "after_create",
             DDL(PAYLOAD_UNCOMPRESSED).execute_if(dialect="postgresql"))


class Monitor(Base):
    """A position on the user's monitoring list, measured in every image."""

    __tablename__ = "monitor"

    monitor_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str]
    ra: Mapped[float]
    dec: Mapped[float]
    source_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("source.source_id"))
    added_mjd: Mapped[float]


class PipelineState(Base):
    """Small run-state values: next source id, configuration snapshot..."""

    __tablename__ = "pipeline_state"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]


class LightcurveBin(Base):
    """Measurements of one source and band down-sampled into a time bin.

    Bins keep what later science needs: the count (blind, forced, monitor), time span
    and mean time, and for integrated (``_int``) and peak (``_peak``) flux f with error
    s and weight w = 1/s^2 the sums of w, w f, w f^2, f and f^2 (so eta and V over any
    span stay exact) with minimum and maximum. The inverse-variance weighted mean is
    ``swf / sw`` with error ``1 / sqrt(sw)``. ``resolution_s`` is the bin width (s);
    ``bin_start_mjd`` is a multiple of it since MJD 0.
    """

    __tablename__ = "lightcurve_bin"
    __table_args__ = (Index("ix_lightcurve_bin_resolution_s_bin_start_mjd",
                            "resolution_s", "bin_start_mjd"),)

    source_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("source.source_id"),
                                           primary_key=True)
    band: Mapped[int] = mapped_column(primary_key=True)
    resolution_s: Mapped[float] = mapped_column(primary_key=True)
    bin_start_mjd: Mapped[float] = mapped_column(primary_key=True)
    n: Mapped[int]
    n_blind: Mapped[int]
    n_forced: Mapped[int]
    n_monitor: Mapped[int]
    t_min_mjd: Mapped[float]
    t_max_mjd: Mapped[float]
    st_mjd: Mapped[float]  # sum of times, for the mean time of the bin
    sw_int: Mapped[float]
    swf_int: Mapped[float]
    swf2_int: Mapped[float]
    sf_int: Mapped[float]
    sf2_int: Mapped[float]
    min_int: Mapped[float]
    max_int: Mapped[float]
    sw_peak: Mapped[float]
    swf_peak: Mapped[float]
    swf2_peak: Mapped[float]
    sf_peak: Mapped[float]
    sf2_peak: Mapped[float]
    min_peak: Mapped[float]
    max_peak: Mapped[float]
