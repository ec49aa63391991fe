"""Every table, imported in one place for Alembic and for metadata-wide operations."""

from gateway.auth.models import RequestNonce
from gateway.batches.models import (
    Batch,
    BatchError,
    BatchEventRecord,
    ItemEventRecord,
    PaymentItem,
)
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import AccountEntryRecord, InboundFile, ItemResult, OperatorCase
from gateway.kit.db import Base
from gateway.kit.leases import JobLease

__all__ = [
    "AccountEntryRecord",
    "Base",
    "Batch",
    "BatchError",
    "BatchEventRecord",
    "InboundFile",
    "ItemEventRecord",
    "ItemResult",
    "JobLease",
    "OperatorCase",
    "OutboundFile",
    "PaymentItem",
    "RequestNonce",
]
