"""The file channel's own ledger tables: extra ``/outbox`` files and scheduled returns.

Kept in the bank's ledger database (:meth:`Ledger.ensure_schema`) and written in the same
transaction as the credits (:meth:`LedgerTxn.execute`), so a restart loses nothing:

- ``outbound_files``: files the bank writes besides a request's result file — the
  ``camt.054`` debit notification of an ``iso20022-v1`` request and the ``camt.054`` return
  notices (``C054_<serial>_<nn>_R<k>.xml``). ``written_at`` is set once the file (and its
  ``.sig``) are in ``/outbox``. A request's extra files are written after its result file.
- ``file_returns``: items paid by a request file that the fault schedule
  (``bounce_after_paid``) bounces (退票) ``delay_seconds`` after the result file was
  written. ``reversal_id`` points at the ``reversals`` row once the money came back.
- ``file_republishes``: a result file the fault schedule (``republish_result_file``,
  ``tampered_result_file``) publishes again under the same name and with the same size,
  ``delay_seconds`` after it was first written (or at once, :meth:`Processor.republish_now`).
  ``first_data``, when set, is what was written first in place of the result's bytes (a
  tampered copy under the genuine ``.sig``); ``data`` / ``sig`` are what is published later.
  ``written_at`` is set once the later version is in ``/outbox``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from mock_bank.ledger import Ledger, LedgerTxn

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbound_files (
    name         TEXT PRIMARY KEY,
    request_name TEXT NOT NULL,
    data         BLOB NOT NULL,
    sig          BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    written_at   TEXT
);
CREATE INDEX IF NOT EXISTS outbound_files_by_request ON outbound_files (request_name);
CREATE TABLE IF NOT EXISTS file_returns (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    credit_id       INTEGER NOT NULL UNIQUE,
    request_name    TEXT NOT NULL,
    batch_serial    TEXT NOT NULL,
    file_no         INTEGER NOT NULL,
    item_serial     TEXT NOT NULL,
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    payer_account   TEXT NOT NULL,
    delay_seconds   REAL NOT NULL,
    scheduled_at    TEXT NOT NULL,
    reversal_id     INTEGER,
    notice_name     TEXT
);
CREATE INDEX IF NOT EXISTS file_returns_by_request ON file_returns (request_name);
CREATE TABLE IF NOT EXISTS file_republishes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    request_name  TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('changed', 'tampered_first')),
    first_data    BLOB,
    data          BLOB NOT NULL,
    sig           BLOB NOT NULL,
    delay_seconds REAL NOT NULL,
    created_at    TEXT NOT NULL,
    written_at    TEXT
);
"""


@dataclass(frozen=True, slots=True)
class OutboundFile:
    """An extra ``/outbox`` file decided and stored, perhaps not yet written."""

    name: str
    request_name: str
    data: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class ScheduledReturn:
    """An item to bounce (退票) after its request's result file was written."""

    id: int
    credit_id: int
    request_name: str
    batch_serial: str
    file_no: int
    item_serial: str
    amount_fen: int
    payer_account: str
    delay_seconds: float
    reversal_id: int | None
    notice_name: str | None


@dataclass(frozen=True, slots=True)
class Republish:
    """A result file to publish again under its name (faults ``republish_result_file`` and
    ``tampered_result_file``)."""

    id: int
    request_name: str
    name: str
    kind: str  # changed | tampered_first
    first_data: bytes | None
    data: bytes
    sig: bytes
    delay_seconds: float
    written_at: str | None


def ensure_schema(ledger: Ledger) -> None:
    ledger.ensure_schema(SCHEMA)


def _file(row: sqlite3.Row) -> OutboundFile:
    return OutboundFile(
        name=row["name"],
        request_name=row["request_name"],
        data=bytes(row["data"]),
        sig=bytes(row["sig"]),
    )


def _return(row: sqlite3.Row) -> ScheduledReturn:
    return ScheduledReturn(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row


_RETURN_COLUMNS: Final = (
    "id, credit_id, request_name, batch_serial, file_no, item_serial, amount_fen, "
    "payer_account, delay_seconds, reversal_id, notice_name"
)

# --- writes (inside a ledger transaction) ---------------------------------------------------


def add_file(
    txn: LedgerTxn, *, name: str, request_name: str, data: bytes, sig: bytes, created_at: str
) -> None:
    txn.execute(
        "INSERT INTO outbound_files (name, request_name, data, sig, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (name, request_name, data, sig, created_at),
    )


def credit_id_for_ref(txn: LedgerTxn, bank_ref: str) -> int:
    row = txn.execute("SELECT id FROM credits WHERE bank_ref = ?", (bank_ref,)).fetchone()
    if row is None:
        raise ValueError(f"no credit with reference {bank_ref}")
    return int(row[0])


def is_reversed(txn: LedgerTxn, credit_id: int) -> bool:
    row = txn.execute("SELECT 1 FROM reversals WHERE credit_id = ?", (credit_id,)).fetchone()
    return row is not None


def schedule_return(
    txn: LedgerTxn,
    *,
    credit_id: int,
    request_name: str,
    batch_serial: str,
    file_no: int,
    item_serial: str,
    amount_fen: int,
    payer_account: str,
    delay_seconds: float,
    scheduled_at: str,
) -> None:
    txn.execute(
        "INSERT INTO file_returns (credit_id, request_name, batch_serial, file_no, item_serial, "
        "amount_fen, payer_account, delay_seconds, scheduled_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            credit_id,
            request_name,
            batch_serial,
            file_no,
            item_serial,
            amount_fen,
            payer_account,
            delay_seconds,
            scheduled_at,
        ),
    )


def get_return(txn: LedgerTxn, return_id: int) -> ScheduledReturn:
    row = txn.execute(
        f"SELECT {_RETURN_COLUMNS} FROM file_returns WHERE id = ?",  # noqa: S608
        (return_id,),
    ).fetchone()
    if row is None:
        raise ValueError(f"no scheduled return {return_id}")
    return _return(row)


def returns_done(txn: LedgerTxn, request_name: str) -> int:
    """How many returns of this request file have happened (for ``R<k>`` numbering)."""
    (count,) = txn.execute(
        "SELECT COUNT(*) FROM file_returns WHERE request_name = ? AND reversal_id IS NOT NULL",
        (request_name,),
    ).fetchone()
    return int(count)


def mark_returned(
    txn: LedgerTxn, return_id: int, *, reversal_id: int, notice_name: str | None
) -> None:
    txn.execute(
        "UPDATE file_returns SET reversal_id = ?, notice_name = ? WHERE id = ?",
        (reversal_id, notice_name, return_id),
    )


def add_republish(
    txn: LedgerTxn,
    *,
    request_name: str,
    name: str,
    kind: str,
    first_data: bytes | None,
    data: bytes,
    sig: bytes,
    delay_seconds: float,
    created_at: str,
) -> None:
    txn.execute(
        "INSERT INTO file_republishes (request_name, name, kind, first_data, data, sig, "
        "delay_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (request_name, name, kind, first_data, data, sig, delay_seconds, created_at),
    )


# --- reads and single-statement updates -----------------------------------------------------


def pending_files(ledger: Ledger, request_name: str | None = None) -> list[OutboundFile]:
    """Extra files not yet written: of one request, or (``None``) of every request whose
    result file is written already (the order they must go out in)."""
    if request_name is not None:
        rows = ledger.query(
            "SELECT name, request_name, data, sig FROM outbound_files "
            "WHERE request_name = ? AND written_at IS NULL ORDER BY created_at, name",
            (request_name,),
        )
    else:
        rows = ledger.query(
            "SELECT o.name, o.request_name, o.data, o.sig FROM outbound_files AS o "
            "JOIN request_files AS r ON r.name = o.request_name "
            "WHERE o.written_at IS NULL AND r.result_written_at IS NOT NULL "
            "ORDER BY o.created_at, o.name"
        )
    return [_file(row) for row in rows]


def mark_file_written(ledger: Ledger, name: str, written_at: str) -> None:
    with ledger.begin() as txn:
        txn.execute("UPDATE outbound_files SET written_at = ? WHERE name = ?", (written_at, name))


def scheduled_returns(ledger: Ledger, request_name: str | None = None) -> list[ScheduledReturn]:
    """Returns not yet done: of one request, or (``None``) of every request whose result
    file is written already."""
    if request_name is not None:
        rows = ledger.query(
            f"SELECT {_RETURN_COLUMNS} FROM file_returns "  # noqa: S608
            "WHERE request_name = ? AND reversal_id IS NULL ORDER BY id",
            (request_name,),
        )
    else:
        rows = ledger.query(
            "SELECT f.id, f.credit_id, f.request_name, f.batch_serial, f.file_no, "
            "f.item_serial, f.amount_fen, f.payer_account, f.delay_seconds, f.reversal_id, "
            "f.notice_name FROM file_returns AS f "
            "JOIN request_files AS r ON r.name = f.request_name "
            "WHERE f.reversal_id IS NULL AND r.result_written_at IS NOT NULL ORDER BY f.id"
        )
    return [_return(row) for row in rows]


def all_returns(ledger: Ledger) -> list[ScheduledReturn]:
    rows = ledger.query(f"SELECT {_RETURN_COLUMNS} FROM file_returns ORDER BY id")  # noqa: S608
    return [_return(row) for row in rows]


def outbound_files(ledger: Ledger) -> list[tuple[str, str | None]]:
    """``(name, written_at)`` of every extra file, in creation order."""
    rows = ledger.query("SELECT name, written_at FROM outbound_files ORDER BY created_at, name")
    return [(row["name"], row["written_at"]) for row in rows]


_REPUBLISH_COLUMNS: Final = (
    "p.id, p.request_name, p.name, p.kind, p.first_data, p.data, p.sig, p.delay_seconds, "
    "p.written_at"
)


def _republish(row: sqlite3.Row) -> Republish:
    first = row["first_data"]
    return Republish(
        id=row["id"],
        request_name=row["request_name"],
        name=row["name"],
        kind=row["kind"],
        first_data=None if first is None else bytes(first),
        data=bytes(row["data"]),
        sig=bytes(row["sig"]),
        delay_seconds=row["delay_seconds"],
        written_at=row["written_at"],
    )


def republish_of(ledger: Ledger, request_name: str) -> Republish | None:
    """The republication planned for a request's result file, if any (done or not)."""
    rows = ledger.query(
        f"SELECT {_REPUBLISH_COLUMNS} FROM file_republishes AS p "  # noqa: S608
        "WHERE p.request_name = ?",
        (request_name,),
    )
    return _republish(rows[0]) if rows else None


def get_republish(ledger: Ledger, republish_id: int) -> Republish:
    rows = ledger.query(
        f"SELECT {_REPUBLISH_COLUMNS} FROM file_republishes AS p WHERE p.id = ?",  # noqa: S608
        (republish_id,),
    )
    if not rows:
        raise ValueError(f"no republication {republish_id}")
    return _republish(rows[0])


def pending_republishes(ledger: Ledger) -> list[Republish]:
    """Republications not yet written whose result file is written already."""
    rows = ledger.query(
        f"SELECT {_REPUBLISH_COLUMNS} FROM file_republishes AS p "  # noqa: S608
        "JOIN request_files AS r ON r.name = p.request_name "
        "WHERE p.written_at IS NULL AND r.result_written_at IS NOT NULL ORDER BY p.id"
    )
    return [_republish(row) for row in rows]


def mark_republished(ledger: Ledger, republish_id: int, written_at: str) -> None:
    with ledger.begin() as txn:
        txn.execute(
            "UPDATE file_republishes SET written_at = ? WHERE id = ?", (written_at, republish_id)
        )
