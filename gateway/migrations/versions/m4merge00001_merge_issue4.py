"""merge the issue 4 branches (rework, SMS, reconciliation, upstream)

Revision ID: m4merge00001
Revises: f4rework001, n4sms0000001, r4recon0001, u4upstream01
Create Date: 2026-11-28 10:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "m4merge00001"
down_revision: str | Sequence[str] | None = (
    "f4rework001",
    "n4sms0000001",
    "r4recon0001",
    "u4upstream01",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
