"""Initial schema: image, source, measurement, band_statistics, candidate, sky_depth,
monitor, pipeline_state.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids; SQLite needs plain INTEGER for an auto-incrementing (rowid) primary key.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _floats(*names: str, nullable: bool = True) -> list[sa.Column]:
    return [sa.Column(name, sa.Double(), nullable=nullable) for name in names]


def _ints(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "image",
        sa.Column("image_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("image_key", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=True),
        *_floats("time_mjd", "freq_hz", "bandwidth_hz"),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("telescope", sa.Text(), nullable=True),
        *_floats("integration_s"),
        sa.Column("nx", sa.Integer(), nullable=True),
        sa.Column("ny", sa.Integer(), nullable=True),
        *_floats("centre_ra", "centre_dec", "radius_deg", "bmaj_deg", "bmin_deg", "bpa_deg"),
        *_floats("rms", "rms_min", "rms_max"),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        *_ints("n_blind", "n_forced", "n_monitor"),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image")),
        sa.UniqueConstraint("image_key", name=op.f("uq_image_image_key")),
    )
    op.create_table(
        "pipeline_state",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_pipeline_state")),
    )
    op.create_table(
        "sky_depth",
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("cell", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("limit", sa.Double(), nullable=False),
        sa.Column("worst", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("band", "cell", name=op.f("pk_sky_depth")),
    )
    op.create_table(
        "source",
        sa.Column("source_id", sa.BigInteger(), autoincrement=False, nullable=False),
        *_floats("ra", "dec", nullable=False),
        *_floats("ra_err", "dec_err", "first_time_mjd", "last_time_mjd"),
        *_ints("n_blind", "n_forced"),
        sa.Column("is_monitor", sa.Boolean(), nullable=False),
        sa.Column("healpix", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source")),
    )
    op.create_index(op.f("ix_source_healpix"), "source", ["healpix"])
    op.create_table(
        "band_statistics",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        *_ints("band", "n"),
        *_floats("sw_int", "swf_int", "swf2_int", "sf_int", "sf2_int"),
        *_floats("sw_peak", "swf_peak", "swf2_peak", "sf_peak", "sf2_peak"),
        *_floats("eta_int", "v_int", "eta_peak", "v_peak", "max_snr"),
        *_ints("misses"),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.source_id"], name=op.f("fk_band_statistics_source_id_source")
        ),
        sa.PrimaryKeyConstraint("source_id", "band", name=op.f("pk_band_statistics")),
    )
    op.create_table(
        "candidate",
        sa.Column("candidate_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        *_ints("band"),
        *_floats("time_mjd", "significance", "flux", "limit"),
        sa.ForeignKeyConstraint(
            ["image_id"], ["image.image_id"], name=op.f("fk_candidate_image_id_image")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.source_id"], name=op.f("fk_candidate_source_id_source")
        ),
        sa.PrimaryKeyConstraint("candidate_id", name=op.f("pk_candidate")),
        sa.UniqueConstraint(
            "source_id", "image_id", "kind", name=op.f("uq_candidate_source_id_image_id_kind")
        ),
    )
    op.create_table(
        "measurement",
        sa.Column("measurement_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        *_floats("time_mjd", "freq_hz"),
        *_ints("band"),
        *_floats("ra", "dec", "ra_err", "dec_err"),
        *_floats("peak_flux", "peak_flux_err", "int_flux", "int_flux_err", "snr"),
        *_floats("smaj_asec", "smin_asec", "pa_deg"),
        sa.ForeignKeyConstraint(
            ["image_id"], ["image.image_id"], name=op.f("fk_measurement_image_id_image")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.source_id"], name=op.f("fk_measurement_source_id_source")
        ),
        sa.PrimaryKeyConstraint("measurement_id", name=op.f("pk_measurement")),
        sa.UniqueConstraint(
            "source_id", "image_id", name=op.f("uq_measurement_source_id_image_id")
        ),
    )
    op.create_index(op.f("ix_measurement_image_id"), "measurement", ["image_id"])
    op.create_index(
        op.f("ix_measurement_source_id_time_mjd"), "measurement", ["source_id", "time_mjd"]
    )
    op.create_table(
        "monitor",
        sa.Column("monitor_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        *_floats("ra", "dec", nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        *_floats("added_mjd", nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["source.source_id"], name=op.f("fk_monitor_source_id_source")
        ),
        sa.PrimaryKeyConstraint("monitor_id", name=op.f("pk_monitor")),
    )


def downgrade() -> None:
    op.drop_table("monitor")
    op.drop_index(op.f("ix_measurement_source_id_time_mjd"), table_name="measurement")
    op.drop_index(op.f("ix_measurement_image_id"), table_name="measurement")
    op.drop_table("measurement")
    op.drop_table("candidate")
    op.drop_table("band_statistics")
    op.drop_index(op.f("ix_source_healpix"), table_name="source")
    op.drop_table("source")
    op.drop_table("sky_depth")
    op.drop_table("pipeline_state")
    op.drop_table("image")
