"""Small cutouts kept with new-source candidates (candidate_stamp), so that stream
candidates have pictures after their images are gone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "candidate_stamp",
        sa.Column("stamp_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("image_key", sa.Text(), nullable=False),
        sa.Column("time_mjd", sa.Double(), nullable=True),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("pixels", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["source.source_id"],
                                name=op.f("fk_candidate_stamp_source_id_source")),
        sa.PrimaryKeyConstraint("stamp_id", name=op.f("pk_candidate_stamp")),
    )
    op.create_index(op.f("ix_candidate_stamp_source_id"), "candidate_stamp", ["source_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_candidate_stamp_source_id"), table_name="candidate_stamp")
    op.drop_table("candidate_stamp")
