"""indexes for the dashboard's lookups: result files by batch serial, SMS by day

Revision ID: i5index00001
Revises: m5merge00001
Create Date: 2026-11-28 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "i5index00001"
down_revision: str | None = "m5merge00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_files_batch_serial"), ["batch_serial"], unique=False
        )
    with op.batch_alter_table("sms_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sms_notices_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sms_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sms_notices_created_at"))
    with op.batch_alter_table("inbound_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_files_batch_serial"))
