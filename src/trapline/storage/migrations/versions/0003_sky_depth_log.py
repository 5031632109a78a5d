"""The sky depth journal: one packed row of depth changes per image, folded into
sky_depth every few dozen images (see trapline.storage.depthlog).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sky_depth_log",
        sa.Column("log_id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.Column("n_cells", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["image.image_id"],
                                name=op.f("fk_sky_depth_log_image_id_image")),
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_sky_depth_log")),
    )


def downgrade() -> None:
    op.drop_table("sky_depth_log")
