"""The worker step and the figures of the results-upstream feed.

The worker calls ``upstream_step`` once per cycle: it stages new outcome changes from the
event tables (with their webhook messages) and delivers the webhooks that are due. The demo
reports ``summary`` under its ``upstream`` key.
"""

from __future__ import annotations

from gateway.context import Context
from gateway.upstream.delivery import deliver_webhooks, requeue_failed, summary
from gateway.upstream.feed import stage_changes


def upstream_step(ctx: Context, owner: str) -> int:
    """Stage changes, then deliver due webhooks; returns changes staged + attempts made."""
    return stage_changes(ctx) + deliver_webhooks(ctx, owner)


__all__ = ["deliver_webhooks", "requeue_failed", "stage_changes", "summary", "upstream_step"]
