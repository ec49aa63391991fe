"""result files known by content (issue 12)

Revision ID: l12content01
Revises: k11intake001
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "l12content01"
down_revision: str | None = "k11intake001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("inbound_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signature_sha256", sa.String(length=64), nullable=True))
    # empty at first: after the upgrade every listed file is read once more (a version
    # already recorded changes nothing) and its listing attributes recorded
    op.create_table(
        "outbox_entries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("bank_profile", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.BigInteger(), nullable=True),
        sa.Column("sig_size", sa.BigInteger(), nullable=False),
        sa.Column("sig_mtime", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("signature_sha256", sa.String(length=64), nullable=True),
        sa.Column("inbound_file_id", sa.BigInteger(), nullable=True),
        sa.Column("read_at", sa.DateTime(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_entries")),
        sa.UniqueConstraint(
            "bank_profile", "file_name", name=op.f("uq_outbox_entries_bank_profile_file_name")
        ),
    )


def downgrade() -> None:
    op.drop_table("outbox_entries")
    with op.batch_alter_table("inbound_files", schema=None) as batch_op:
        batch_op.drop_column("signature_sha256")
