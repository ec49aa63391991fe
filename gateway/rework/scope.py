"""The regions of the person asking (``Principal.region_filter()``: region-code prefixes,
``None`` for every region), as SQL: what the command line's callers may see and act on,
the same rule as the dashboard's pages (a record made of items is in scope when none of
its items lies outside)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, false, not_, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from gateway.batches.models import Batch, PaymentItem

Regions = Sequence[str] | None


def region_clause(regions: Regions) -> ColumnElement[bool] | None:
    """Batches of ``regions``; None when every region is in scope."""
    if regions is None:
        return None
    if not regions:
        return false()
    return or_(*(Batch.region_code.startswith(p, autoescape=True) for p in regions))


def any_item_outside(
    regions: Regions,
    item_col: InstrumentedAttribute[int],
    parent_col: InstrumentedAttribute[int],
    parent_id: Any,
) -> ColumnElement[bool] | None:
    """Whether the record ``parent_id`` (of a table of items ``item_col`` keyed by
    ``parent_col``) holds an item outside ``regions``; None when every region is in
    scope."""
    clause = region_clause(regions)
    if clause is None:
        return None
    return (
        select(item_col)
        .join(PaymentItem, PaymentItem.id == item_col)
        .join(Batch, Batch.id == PaymentItem.batch_id)
        .where(parent_col == parent_id, not_(clause))
        .exists()
    )
