"""outbound files count the early-inquiry hints of API banks (poll_hints)

Revision ID: h6hints00001
Revises: i5index00001
Create Date: 2026-12-02 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "h6hints00001"
down_revision: str | None = "i5index00001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_files", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("poll_hints", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_files", schema=None) as batch_op:
        batch_op.drop_column("poll_hints")
