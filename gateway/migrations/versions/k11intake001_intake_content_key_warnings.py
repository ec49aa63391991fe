"""intake (issue 11): canonical content key, warnings, machine-readable limits of errors

Revision ID: k11intake001
Revises: h6hints00001
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "k11intake001"
down_revision: str | None = "h6hints00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("warning_count", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("batch_errors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limit_value", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("limit_unit", sa.String(length=16), nullable=True))
    op.create_table(
        "batch_warnings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("batch_id", _ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message_zh", sa.Text(), nullable=False),
        sa.Column("message_en", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_warnings_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_warnings")),
    )
    with op.batch_alter_table("batch_warnings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batch_warnings_batch_id"), ["batch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("batch_warnings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_warnings_batch_id"))
    op.drop_table("batch_warnings")
    with op.batch_alter_table("batch_errors", schema=None) as batch_op:
        batch_op.drop_column("limit_unit")
        batch_op.drop_column("limit_value")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("warning_count")
        batch_op.drop_column("content_key")
