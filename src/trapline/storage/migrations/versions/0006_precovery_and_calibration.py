"""Trustworthy candidates: precovery and rise on candidates, the reason of a rejected
new source, the two-epoch metrics per source and band, and each image's calibration.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CANDIDATE = [("precovery_flux", sa.Double()), ("precovery_flux_err", sa.Double()),
             ("rise_sigma", sa.Double()), ("n_precovery", sa.Integer()),
             ("n_bands", sa.Integer()), ("reason", sa.Text())]
STATISTICS = [(n, sa.Double()) for n in ("f_max", "f_max_err", "f_min", "f_min_err",
                                         "vs_int", "m_int")]
IMAGE = [("flux_scale", sa.Double()), ("flux_scale_err", sa.Double()),
         ("n_flux_calibrators", sa.Integer()), ("offset_east_deg", sa.Double()),
         ("offset_north_deg", sa.Double()), ("n_position_calibrators", sa.Integer())]
TABLES = {"candidate": CANDIDATE, "band_statistics": STATISTICS, "image": IMAGE}


def upgrade() -> None:
    for table, columns in TABLES.items():
        with op.batch_alter_table(table) as batch:
            for name, type_ in columns:
                batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for table, columns in TABLES.items():
        with op.batch_alter_table(table) as batch:
            for name, _ in reversed(columns):
                batch.drop_column(name)
