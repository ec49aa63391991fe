"""Every table, imported in one place for Alembic and for metadata-wide operations."""

from gateway.auth.models import RequestNonce
from gateway.batches.models import (
    Batch,
    BatchError,
    BatchEventRecord,
    BatchWarning,
    ItemEventRecord,
    PaymentItem,
)
from gateway.dashboard.models import DashboardSession, OperatorAccount
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import (
    AccountEntryRecord,
    InboundFile,
    ItemResult,
    ManualConfirmation,
    OperatorCase,
)
from gateway.kit.db import Base
from gateway.kit.leases import JobLease
from gateway.notifications.models import SmsNotice, SmsReceiptRecord
from gateway.reconciliation.models import (
    AccountEntryLink,
    Discrepancy,
    DiscrepancyEventRecord,
    ReconciliationCursor,
)
from gateway.rework.models import (
    AuditRecord,
    CorrectionList,
    CorrectionListItem,
    TreasuryRefund,
    TreasuryRefundItem,
)
from gateway.selfcheck.models import SelfCheckFinding, SelfCheckReport
from gateway.upstream.models import UpstreamChange, UpstreamFeed, WebhookAttempt, WebhookMessage

__all__ = [
    "AccountEntryLink",
    "AccountEntryRecord",
    "AuditRecord",
    "Base",
    "Batch",
    "BatchError",
    "BatchEventRecord",
    "BatchWarning",
    "CorrectionList",
    "CorrectionListItem",
    "DashboardSession",
    "Discrepancy",
    "DiscrepancyEventRecord",
    "InboundFile",
    "ItemEventRecord",
    "ItemResult",
    "JobLease",
    "ManualConfirmation",
    "OperatorAccount",
    "OperatorCase",
    "OutboundFile",
    "PaymentItem",
    "ReconciliationCursor",
    "RequestNonce",
    "SelfCheckFinding",
    "SelfCheckReport",
    "SmsNotice",
    "SmsReceiptRecord",
    "TreasuryRefund",
    "TreasuryRefundItem",
    "UpstreamChange",
    "UpstreamFeed",
    "WebhookAttempt",
    "WebhookMessage",
]
