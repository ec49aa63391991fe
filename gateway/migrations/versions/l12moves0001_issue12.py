"""account movements for every bank (issue 12)

Revision ID: l12moves0001
Revises: l12neversnt1
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "l12moves0001"
down_revision: str | None = "l12neversnt1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # --- D2 (openapi-v1 account movements) ------------------------------------------------
    with op.batch_alter_table("account_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_account_entries_bank_profile_entry_id"), ["bank_profile", "entry_id"]
        )
    op.create_table(
        "account_movement_polls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bank_profile", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cursor", sa.String(length=64), nullable=True),
        sa.Column("exhausted", sa.Boolean(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("polled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_movement_polls")),
        sa.UniqueConstraint(
            "bank_profile",
            "account",
            "day",
            name=op.f("uq_account_movement_polls_bank_profile_account_day"),
        ),
    )
    # --- end D2 ---------------------------------------------------------------------------


def downgrade() -> None:
    # --- D2 (openapi-v1 account movements) ------------------------------------------------
    op.drop_table("account_movement_polls")
    with op.batch_alter_table("account_entries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_account_entries_bank_profile_entry_id"), type_="unique"
        )
        batch_op.drop_column("entry_id")
    # --- end D2 ---------------------------------------------------------------------------
