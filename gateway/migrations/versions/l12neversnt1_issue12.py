"""never-sent work resumes by itself (issue 12)

``outbound_files.never_sent_streak``: the attempts in a row, up to the latest, that
provably reached nothing at the bank (connection refused, DNS, TLS/SSH handshake). It
decides when the operator is told (once per streak, at ``delivery_max_attempts``) and
whether an inquiry must precede a send (only when an earlier attempt may have reached the
bank). Existing rows start at 0: the safe side (they are inquired about first).

Revision ID: l12neversnt1
Revises: l12content01
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "l12neversnt1"
down_revision: str | None = "l12content01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("never_sent_streak", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_files", schema=None) as batch_op:
        batch_op.drop_column("never_sent_streak")
