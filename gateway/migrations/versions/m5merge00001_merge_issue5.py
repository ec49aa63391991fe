"""merge the issue 5 branches (dashboard accounts and cases, self-check reports)

Revision ID: m5merge00001
Revises: c5cases00001, s5selfcheck1
Create Date: 2026-11-28 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "m5merge00001"
down_revision: str | Sequence[str] | None = ("c5cases00001", "s5selfcheck1")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
