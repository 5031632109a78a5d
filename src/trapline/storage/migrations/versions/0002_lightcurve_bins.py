"""Multi-resolution lightcurves: the lightcurve_bin table, and a time index on
measurement for incremental compaction.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUMS = ("sw", "swf", "swf2", "sf", "sf2", "min", "max")


def upgrade() -> None:
    op.create_table(
        "lightcurve_bin",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("resolution_s", sa.Double(), nullable=False),
        sa.Column("bin_start_mjd", sa.Double(), nullable=False),
        *[sa.Column(n, sa.Integer(), nullable=False)
          for n in ("n", "n_blind", "n_forced", "n_monitor")],
        *[sa.Column(n, sa.Double(), nullable=False)
          for n in ("t_min_mjd", "t_max_mjd", "st_mjd")],
        *[sa.Column(f"{s}_{kind}", sa.Double(), nullable=False)
          for kind in ("int", "peak") for s in SUMS],
        sa.ForeignKeyConstraint(["source_id"], ["source.source_id"],
                                name=op.f("fk_lightcurve_bin_source_id_source")),
        sa.PrimaryKeyConstraint("source_id", "band", "resolution_s", "bin_start_mjd",
                                name=op.f("pk_lightcurve_bin")),
    )
    op.create_index("ix_lightcurve_bin_resolution_s_bin_start_mjd", "lightcurve_bin",
                    ["resolution_s", "bin_start_mjd"])
    op.create_index("ix_measurement_time_mjd_measurement_id", "measurement",
                    ["time_mjd", "measurement_id"])


def downgrade() -> None:
    op.drop_index("ix_measurement_time_mjd_measurement_id", table_name="measurement")
    op.drop_index("ix_lightcurve_bin_resolution_s_bin_start_mjd", table_name="lightcurve_bin")
    op.drop_table("lightcurve_bin")
