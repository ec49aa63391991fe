"""The payment state machine: pure, no I/O, no clock, no database.

Item states (明细状态)::

    accepted ──plan──▶ queued ──deliver──▶ sent ──result_paid──▶ paid ──bounce──▶ bounced
        │                │  └─upload_unknown─▶ unknown ─┬─confirm_sent─▶ sent   (退票)
        │                │                             ├─confirm_unsent▶ queued
        │                │                             └─escalate──────▶ operator_case
        │                └─file_rejected─▶ failed
        │                          sent ──result_failed─▶ failed
        ├─unsendable─▶ failed   (no bank file can be made: nothing was ever sent)
        └─(cancel)─▶ cancelled                       failed ──return─▶ returned
                                                     failed/returned ──reissue─▶ reissued
                                                     failed/returned ──refund──▶ refunded
                                                     refunded ──reissue──▶ reissued

``paid``, ``failed``, ``bounced``, ``returned``, ``reissued``, ``refunded`` and
``cancelled`` are *final for the bank*: the bank will not report on them again. Some of them
still have explicit, recorded follow-up events (a bounce after payment, a return for
correction, a re-issue, a treasury refund); nothing else moves them. ``operator_case`` is not
final: an operator resolves it with a recorded event.

Batch states (批次状态)::

    received ─▶ rejected                      (validation failed; nothing else happens)
    received ─▶ accepted ─▶ dispatching ─▶ sent ─▶ completed ─▶ reconciled
                                 (all items final for the bank → completed)
                accepted ──unsendable──▶ completed   (its bank file cannot be made — the
                                 data cannot be written in the bank's format, or the bank
                                 configuration (signing key…) is broken — so every item
                                 failed before anything was sent)

``reconciled`` (已对账) follows ``completed`` once reconciliation (``gateway.reconciliation``)
finds every item final, the money tied out against the bank's evidence (debit notices, or
the bank's reported paid totals where it sends none) and no discrepancy of the batch left
unresolved. ``completed`` is therefore no longer final; ``is_settled`` says "the bank has
finished with every item" for both. A later fact about a reconciled batch (a late 退票)
opens a discrepancy; the batch stays reconciled as of the day it tied out.
"""

from __future__ import annotations

from enum import StrEnum


class ItemState(StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    UNKNOWN = "unknown"
    OPERATOR_CASE = "operator_case"
    PAID = "paid"
    FAILED = "failed"
    BOUNCED = "bounced"
    RETURNED = "returned"
    REISSUED = "reissued"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"

    def is_final(self) -> bool:
        """Final for the bank: no further bank result is expected."""
        return self in _ITEM_FINAL

    def is_with_bank(self) -> bool:
        """The bank has (or may have) the item: a result may still arrive."""
        return self in {ItemState.SENT, ItemState.UNKNOWN, ItemState.OPERATOR_CASE}

    def is_reissuable(self) -> bool:
        """A re-issue may replace an item in this state."""
        return self in {
            ItemState.FAILED,
            ItemState.RETURNED,
            ItemState.REFUNDED,
            ItemState.BOUNCED,
        }

    @property
    def label_zh(self) -> str:
        return _ITEM_LABELS_ZH[self]


_ITEM_FINAL = frozenset(
    {
        ItemState.PAID,
        ItemState.FAILED,
        ItemState.BOUNCED,
        ItemState.RETURNED,
        ItemState.REISSUED,
        ItemState.REFUNDED,
        ItemState.CANCELLED,
    }
)

_ITEM_LABELS_ZH = {
    ItemState.ACCEPTED: "已受理",
    ItemState.QUEUED: "待发送",
    ItemState.SENT: "已发银行",
    ItemState.UNKNOWN: "结果未知",
    ItemState.OPERATOR_CASE: "待人工处理",
    ItemState.PAID: "已支付",
    ItemState.FAILED: "支付失败",
    ItemState.BOUNCED: "退票",
    ItemState.RETURNED: "已退回修改",
    ItemState.REISSUED: "已重新发放",
    ItemState.REFUNDED: "已退回国库",
    ItemState.CANCELLED: "已取消",
}


class ItemEvent(StrEnum):
    PLAN = "plan"
    DELIVER = "deliver"
    UPLOAD_UNKNOWN = "upload_unknown"
    CONFIRM_SENT = "confirm_sent"
    CONFIRM_UNSENT = "confirm_unsent"
    ESCALATE = "escalate"
    FILE_REJECTED = "file_rejected"
    # the gateway cannot make the bank file (render/sign failed for good); nothing was sent
    UNSENDABLE = "unsendable"
    RESULT_PAID = "result_paid"
    RESULT_FAILED = "result_failed"
    OPERATOR_PAID = "operator_paid"
    OPERATOR_FAILED = "operator_failed"
    BOUNCE = "bounce"
    RETURN = "return"
    REISSUE = "reissue"
    REFUND = "refund"
    CANCEL = "cancel"


_I = ItemState
_E = ItemEvent

ITEM_TRANSITIONS: dict[tuple[ItemState, ItemEvent], ItemState] = {
    (_I.ACCEPTED, _E.PLAN): _I.QUEUED,
    (_I.ACCEPTED, _E.CANCEL): _I.CANCELLED,
    # only from accepted: no bank file exists yet, so the bank cannot have the item
    (_I.ACCEPTED, _E.UNSENDABLE): _I.FAILED,
    (_I.QUEUED, _E.DELIVER): _I.SENT,
    (_I.QUEUED, _E.UPLOAD_UNKNOWN): _I.UNKNOWN,
    (_I.QUEUED, _E.FILE_REJECTED): _I.FAILED,
    # The bank's signed result proves it has the file even if our record of the upload was
    # lost (a crash between upload and record).
    (_I.QUEUED, _E.RESULT_PAID): _I.PAID,
    (_I.QUEUED, _E.RESULT_FAILED): _I.FAILED,
    (_I.UNKNOWN, _E.CONFIRM_SENT): _I.SENT,
    (_I.UNKNOWN, _E.CONFIRM_UNSENT): _I.QUEUED,
    (_I.UNKNOWN, _E.ESCALATE): _I.OPERATOR_CASE,
    # A result can arrive for an item whose upload we could not confirm: the bank's signed
    # result is the confirmation.
    (_I.UNKNOWN, _E.RESULT_PAID): _I.PAID,
    (_I.UNKNOWN, _E.RESULT_FAILED): _I.FAILED,
    (_I.SENT, _E.RESULT_PAID): _I.PAID,
    (_I.SENT, _E.RESULT_FAILED): _I.FAILED,
    (_I.SENT, _E.FILE_REJECTED): _I.FAILED,
    (_I.SENT, _E.ESCALATE): _I.OPERATOR_CASE,
    (_I.OPERATOR_CASE, _E.RESULT_PAID): _I.PAID,
    (_I.OPERATOR_CASE, _E.RESULT_FAILED): _I.FAILED,
    (_I.OPERATOR_CASE, _E.OPERATOR_PAID): _I.PAID,
    (_I.OPERATOR_CASE, _E.OPERATOR_FAILED): _I.FAILED,
    (_I.PAID, _E.BOUNCE): _I.BOUNCED,
    (_I.FAILED, _E.RETURN): _I.RETURNED,
    (_I.FAILED, _E.REISSUE): _I.REISSUED,
    (_I.RETURNED, _E.REISSUE): _I.REISSUED,
    (_I.FAILED, _E.REFUND): _I.REFUNDED,
    (_I.RETURNED, _E.REFUND): _I.REFUNDED,
    (_I.BOUNCED, _E.RETURN): _I.RETURNED,
    (_I.BOUNCED, _E.REISSUE): _I.REISSUED,
    (_I.BOUNCED, _E.REFUND): _I.REFUNDED,
    (_I.REFUNDED, _E.REISSUE): _I.REISSUED,
}


class BatchState(StrEnum):
    RECEIVED = "received"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    DISPATCHING = "dispatching"
    SENT = "sent"
    COMPLETED = "completed"
    RECONCILED = "reconciled"

    def is_final(self) -> bool:
        return self in {BatchState.REJECTED, BatchState.RECONCILED}

    def is_settled(self) -> bool:
        """Every item is final for the bank (reconciled or not yet)."""
        return self in {BatchState.COMPLETED, BatchState.RECONCILED}

    @property
    def label_zh(self) -> str:
        return _BATCH_LABELS_ZH[self]


_BATCH_LABELS_ZH = {
    BatchState.RECEIVED: "已接收",
    BatchState.REJECTED: "已拒绝",
    BatchState.ACCEPTED: "已受理",
    BatchState.DISPATCHING: "发送中",
    BatchState.SENT: "已发银行",
    BatchState.COMPLETED: "已完成",
    BatchState.RECONCILED: "已对账",
}


class BatchEvent(StrEnum):
    REJECT = "reject"
    ACCEPT = "accept"
    PLAN = "plan"
    ALL_DELIVERED = "all_delivered"
    ALL_FINAL = "all_final"
    UNSENDABLE = "unsendable"
    RECONCILE = "reconcile"


_B = BatchState
_BE = BatchEvent

BATCH_TRANSITIONS: dict[tuple[BatchState, BatchEvent], BatchState] = {
    (_B.RECEIVED, _BE.REJECT): _B.REJECTED,
    (_B.RECEIVED, _BE.ACCEPT): _B.ACCEPTED,
    (_B.ACCEPTED, _BE.PLAN): _B.DISPATCHING,
    # its bank file cannot be made: every item failed (unsendable) before anything was sent
    (_B.ACCEPTED, _BE.UNSENDABLE): _B.COMPLETED,
    (_B.DISPATCHING, _BE.ALL_DELIVERED): _B.SENT,
    # a batch whose file is rejected outright can finish without being delivered
    (_B.DISPATCHING, _BE.ALL_FINAL): _B.COMPLETED,
    (_B.SENT, _BE.ALL_FINAL): _B.COMPLETED,
    # every item final, the money tied out, no discrepancy of the batch unresolved
    (_B.COMPLETED, _BE.RECONCILE): _B.RECONCILED,
}


class InvalidTransitionError(ValueError):
    """The event is not allowed in the current state."""

    def __init__(self, kind: str, state: str, event: str) -> None:
        super().__init__(f"{kind} in state {state!r} does not accept event {event!r}")
        self.state = state
        self.event = event


def item_next(state: ItemState, event: ItemEvent) -> ItemState:
    """The item state after ``event``; raises InvalidTransitionError when not allowed."""
    try:
        return ITEM_TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError("item", state, event) from None


def batch_next(state: BatchState, event: BatchEvent) -> BatchState:
    """The batch state after ``event``; raises InvalidTransitionError when not allowed."""
    try:
        return BATCH_TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError("batch", state, event) from None


def item_sources(event: ItemEvent) -> list[ItemState]:
    """Every state from which ``event`` is allowed (used for bulk conditional updates)."""
    return [s for (s, e) in ITEM_TRANSITIONS if e == event]


class FileState(StrEnum):
    """Outbound bank file (发送文件) states."""

    PLANNED = "planned"  # bytes, name and serial fixed; not (known to be) on the far side
    UNKNOWN = "unknown"  # an upload may or may not have landed: inquire before anything else
    DELIVERED = "delivered"  # seen on the far side under its final name, size and hash match
    REJECTED = "rejected"  # the bank refused the whole file
    ESCALATED = "escalated"  # an operator must decide (inquiries exhausted, host key, conflict)

    def needs_work(self) -> bool:
        return self in {FileState.PLANNED, FileState.UNKNOWN}
