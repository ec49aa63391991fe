"""SMS send ledger and receipts

Revision ID: n4sms0000001
Revises: 6e01819589e4
Create Date: 2026-11-28 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "n4sms0000001"
down_revision: str | None = "6e01819589e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sms_notices",
        sa.Column("id", BigId, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("notice_type", sa.String(length=16), nullable=False),
        sa.Column("out_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("template_id", sa.String(length=64), nullable=True),
        sa.Column("provider_ref", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queries", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("last_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("final_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_notices")),
        sa.UniqueConstraint(
            "item_id", "notice_type", name=op.f("uq_sms_notices_item_id_notice_type")
        ),
        sa.UniqueConstraint("out_id", name=op.f("uq_sms_notices_out_id")),
    )
    op.create_index(
        "ix_sms_notices_state_next", "sms_notices", ["state", "next_attempt_at"], unique=False
    )
    op.create_table(
        "sms_receipts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("out_id", sa.String(length=64), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("reported_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_receipts")),
    )
    op.create_index(op.f("ix_sms_receipts_out_id"), "sms_receipts", ["out_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sms_receipts_out_id"), table_name="sms_receipts")
    op.drop_table("sms_receipts")
    op.drop_index("ix_sms_notices_state_next", table_name="sms_notices")
    op.drop_table("sms_notices")
