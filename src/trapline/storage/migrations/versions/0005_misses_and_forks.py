"""Source misses counted per timestep (over all bands) and one-to-many splits stored as
a relation (source_fork).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source") as batch:
        batch.add_column(sa.Column("misses", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "source_fork",
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["source.source_id"],
                                name=op.f("fk_source_fork_source_id_source")),
        sa.ForeignKeyConstraint(["parent_id"], ["source.source_id"],
                                name=op.f("fk_source_fork_parent_id_source")),
        sa.ForeignKeyConstraint(["image_id"], ["image.image_id"],
                                name=op.f("fk_source_fork_image_id_image")),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source_fork")),
    )
    op.create_index(op.f("ix_source_fork_parent_id"), "source_fork", ["parent_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_source_fork_parent_id"), table_name="source_fork")
    op.drop_table("source_fork")
    with op.batch_alter_table("source") as batch:
        batch.drop_column("misses")
