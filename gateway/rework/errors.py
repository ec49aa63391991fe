"""Errors of the rework area, each with a machine-readable code and a Chinese message for
operators (the CLI and, later, the dashboard show ``message_zh``)::

    ReworkError
    ├── OperatorRequiredError     no (usable) operator name: real-name users only
    ├── ReasonRequiredError       unmasked export, proposal or rejection without a reason
    ├── NothingSelectedError      the selection holds no item to act on
    ├── CorrectionListNotFoundError
    ├── AlreadyMarkedError        the correction list's items were already marked returned
    ├── InvalidIdNumberError      the ID number to look up is not a valid 18-character number
    ├── RefundNotFoundError
    ├── RefundSelectionError      items not refundable (state, cut-off, already proposed),
    │                             or spanning several payer accounts / fiscal years
    ├── MakerCheckerError         the checker is the proposer
    ├── RefundStateError          the refund is no longer proposed (decided before)
    └── RefundStaleError          an item changed since the proposal (e.g. re-issued)
"""

from __future__ import annotations


class ReworkError(Exception):
    code = "rework_error"

    def __init__(self, message_zh: str, message_en: str) -> None:
        super().__init__(message_en)
        self.message_zh = message_zh
        self.message_en = message_en


class OperatorRequiredError(ReworkError):
    code = "operator_required"


class ReasonRequiredError(ReworkError):
    code = "reason_required"


class NothingSelectedError(ReworkError):
    code = "nothing_selected"


class CorrectionListNotFoundError(ReworkError):
    code = "correction_list_not_found"


class AlreadyMarkedError(ReworkError):
    code = "correction_list_already_marked"


class InvalidIdNumberError(ReworkError):
    code = "id_number_invalid"


class RefundNotFoundError(ReworkError):
    code = "refund_not_found"


class RefundSelectionError(ReworkError):
    code = "refund_selection_invalid"

    def __init__(self, message_zh: str, message_en: str, problems: dict[int, str]) -> None:
        super().__init__(message_zh, message_en)
        self.problems = problems  # item id → problem code


class MakerCheckerError(ReworkError):
    code = "maker_checker"


class RefundStateError(ReworkError):
    code = "refund_not_proposed"


class RefundStaleError(ReworkError):
    code = "refund_items_changed"
