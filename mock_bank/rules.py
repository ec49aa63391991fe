"""How the bank decides each item's outcome.

Order of checks (the first that applies wins):

1. configured rules (``[[rules]]`` in the config, moov-io/ach-test-harness style): an item
   whose account number ends with ``account_suffix`` (and, when given, whose amount equals
   ``amount_fen``) gets the rule's ``code`` — so a test can force an outcome from the data
   alone, like Stripe's magic card numbers;
2. without an accounts file, every account is treated as active and matching: paid;
3. account not in the registry → ``E101``; closed → ``E104``; frozen → ``E103``;
   name differs (exact compare after stripping) → ``E102``; ID number differs → ``E105``;
4. otherwise paid, ``0000``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mock_bank import codes
from mock_bank.accounts import AccountRegistry


@dataclass(frozen=True, slots=True)
class Rule:
    """Force ``code`` for items whose account number ends with ``account_suffix``."""

    account_suffix: str
    code: str
    amount_fen: int | None = None

    def __post_init__(self) -> None:
        if not self.account_suffix:
            raise ValueError("rule account_suffix must not be empty")
        if self.code not in codes.ITEM_MESSAGES:
            raise ValueError(
                f"rule code {self.code!r} is not an item result code "
                f"({', '.join(sorted(codes.ITEM_MESSAGES))})"
            )
        if self.amount_fen is not None and (
            isinstance(self.amount_fen, bool)
            or not isinstance(self.amount_fen, int)
            or self.amount_fen <= 0
        ):
            raise ValueError("rule amount_fen must be a positive integer number of fen")

    def matches(self, account_no: str, amount_fen: int) -> bool:
        if not account_no.strip().endswith(self.account_suffix):
            return False
        return self.amount_fen is None or self.amount_fen == amount_fen


@dataclass(frozen=True, slots=True)
class Outcome:
    """The bank's decision for one item."""

    code: str
    message: str

    @property
    def paid(self) -> bool:
        return self.code == codes.PAID

    @classmethod
    def of(cls, code: str) -> Outcome:
        return cls(code=code, message=codes.item_message(code))


def decide(
    *,
    account_no: str,
    name: str,
    id_number: str,
    amount_fen: int,
    registry: AccountRegistry | None,
    rules: Sequence[Rule] = (),
) -> Outcome:
    """Decide one item's outcome from the data (see the module docstring for the order)."""
    for rule in rules:
        if rule.matches(account_no, amount_fen):
            return Outcome.of(rule.code)
    if registry is None:
        return Outcome.of(codes.PAID)
    account = registry.get(account_no)
    if account is None:
        return Outcome.of(codes.ACCOUNT_NOT_FOUND)
    if account.status == "closed":
        return Outcome.of(codes.ACCOUNT_CLOSED)
    if account.status == "frozen":
        return Outcome.of(codes.ACCOUNT_FROZEN)
    if account.name.strip() != name.strip():
        return Outcome.of(codes.NAME_MISMATCH)
    if account.id_number.strip() != id_number.strip():
        return Outcome.of(codes.ID_NUMBER_MISMATCH)
    return Outcome.of(codes.PAID)
