"""The open API's tables, in the bank's ledger database (``ledger.sqlite3``).

They are written in the same transactions as the ledger's credits (``LedgerTxn.execute``), so
a disbursement's item results, its credits and its callback events agree after any crash.

- ``api_requests``: one row per disbursement taken (the idempotency record, keyed by
  ``X-Request-Id`` = batch serial + file number): the SHA-256 of the plain body, the exact
  first ``202`` body (repeated with ``200`` on a replay), ``processing`` → ``completed``.
- ``api_items``: the items of a disbursement, ``pending`` until decided, then ``paid`` /
  ``failed`` (and ``returned`` after a bounce, 退票), with the bank's code, message, reference
  and the ledger credit they made. Names, ID numbers and account numbers are the bank's own
  data (as in ``credits``); they never leave it in logs.
- ``api_nonces``: nonces seen per client, kept 15 minutes (replay protection across restarts).
- ``api_events``: callback events (``disbursement.completed``, ``item.returned``) with their
  fixed body and delivery state; undelivered events are retried after a restart.
- ``api_movements``: the payer accounts' booked movements (账户明细), served by
  ``GET /openapi/v1/accounts/{account}/movements``: a debit per credited item, a credit per
  returned one (退票), written in the same transaction as the credit or reversal.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final, Literal

from mock_bank.ledger import Ledger, LedgerTxn

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS api_requests (
    request_id   TEXT PRIMARY KEY,
    batch_serial TEXT NOT NULL,
    file_no      INTEGER NOT NULL,
    body_sha256  TEXT NOT NULL,
    sm4_key_id   TEXT,
    payer_account TEXT NOT NULL,
    subsidy_code TEXT NOT NULL,
    period       TEXT NOT NULL,
    item_count   INTEGER NOT NULL,
    total_fen    INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('processing', 'completed')),
    accepted_at  TEXT NOT NULL,
    ack_body     BLOB NOT NULL,
    completed_at TEXT,
    UNIQUE (batch_serial, file_no)
);
CREATE TABLE IF NOT EXISTS api_items (
    request_id   TEXT NOT NULL REFERENCES api_requests (request_id),
    seq          INTEGER NOT NULL,
    serial       TEXT NOT NULL,
    account_no   TEXT NOT NULL,
    name         TEXT NOT NULL,
    id_number    TEXT NOT NULL,
    amount_fen   INTEGER NOT NULL CHECK (amount_fen > 0),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed', 'returned')),
    code         TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL DEFAULT '',
    bank_ref     TEXT NOT NULL DEFAULT '',
    credit_id    INTEGER,
    repeated     INTEGER NOT NULL DEFAULT 0,
    processed_at TEXT,
    returned_at  TEXT,
    PRIMARY KEY (request_id, seq)
);
CREATE TABLE IF NOT EXISTS api_nonces (
    client_id TEXT NOT NULL,
    nonce     TEXT NOT NULL,
    seen_at   REAL NOT NULL,
    PRIMARY KEY (client_id, nonce)
);
CREATE INDEX IF NOT EXISTS api_nonces_by_age ON api_nonces (seen_at);
CREATE TABLE IF NOT EXISTS api_events (
    id           INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    event        TEXT NOT NULL CHECK (event IN ('disbursement.completed', 'item.returned')),
    request_id   TEXT NOT NULL REFERENCES api_requests (request_id),
    body         BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_status  INTEGER,
    delivered_at TEXT,
    gave_up_at   TEXT
);
CREATE TABLE IF NOT EXISTS api_movements (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id      TEXT NOT NULL UNIQUE,
    payer_account TEXT NOT NULL,
    booked_on     TEXT NOT NULL,
    booked_at     TEXT NOT NULL,
    direction     TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
    amount_fen    INTEGER NOT NULL CHECK (amount_fen > 0),
    bank_ref      TEXT NOT NULL DEFAULT '',
    batch_serial  TEXT,
    file_no       INTEGER,
    item_serial   TEXT,
    reason_code   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS api_movements_by_day ON api_movements (payer_account, booked_on, id);
"""

RequestStatus = Literal["processing", "completed"]
ItemStatus = Literal["pending", "paid", "failed", "returned"]
EventKind = Literal["disbursement.completed", "item.returned"]

#: Nonces are remembered this long (the contract: 15 minutes).
NONCE_TTL_SECONDS: Final = 15 * 60


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    batch_serial: str
    file_no: int
    body_sha256: str
    subsidy_code: str
    period: str
    status: RequestStatus
    accepted_at: str
    ack_body: bytes
    completed_at: str | None


@dataclass(frozen=True, slots=True)
class ItemRecord:
    request_id: str
    seq: int
    serial: str
    account_no: str
    name: str
    id_number: str
    amount_fen: int
    status: ItemStatus
    code: str
    message: str
    bank_ref: str
    credit_id: int | None
    repeated: bool
    processed_at: str | None
    returned_at: str | None


@dataclass(frozen=True, slots=True)
class MovementRecord:
    """One booked movement of a payer account (a debit per credited item, a credit per
    return)."""

    id: int
    entry_id: str
    payer_account: str
    booked_on: str
    booked_at: str
    direction: Literal["debit", "credit"]
    amount_fen: int
    bank_ref: str
    batch_serial: str | None
    file_no: int | None
    item_serial: str | None
    reason_code: str


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    event_id: str
    event: EventKind
    request_id: str
    body: bytes
    attempts: int
    delivered_at: str | None
    gave_up_at: str | None


_REQUEST_COLUMNS: Final = (
    "request_id, batch_serial, file_no, body_sha256, subsidy_code, period, status, "
    "accepted_at, ack_body, completed_at"
)
_ITEM_COLUMNS: Final = (
    "request_id, seq, serial, account_no, name, id_number, amount_fen, status, code, message, "
    "bank_ref, credit_id, repeated, processed_at, returned_at"
)
_EVENT_COLUMNS: Final = "id, event_id, event, request_id, body, attempts, delivered_at, gave_up_at"
_MOVEMENT_COLUMNS: Final = (
    "id, entry_id, payer_account, booked_on, booked_at, direction, amount_fen, bank_ref, "
    "batch_serial, file_no, item_serial, reason_code"
)


def _request(row: sqlite3.Row) -> RequestRecord:
    return RequestRecord(
        request_id=row["request_id"],
        batch_serial=row["batch_serial"],
        file_no=row["file_no"],
        body_sha256=row["body_sha256"],
        subsidy_code=row["subsidy_code"],
        period=row["period"],
        status=row["status"],
        accepted_at=row["accepted_at"],
        ack_body=bytes(row["ack_body"]),
        completed_at=row["completed_at"],
    )


def _item(row: sqlite3.Row) -> ItemRecord:
    return ItemRecord(
        request_id=row["request_id"],
        seq=row["seq"],
        serial=row["serial"],
        account_no=row["account_no"],
        name=row["name"],
        id_number=row["id_number"],
        amount_fen=row["amount_fen"],
        status=row["status"],
        code=row["code"],
        message=row["message"],
        bank_ref=row["bank_ref"],
        credit_id=row["credit_id"],
        repeated=bool(row["repeated"]),
        processed_at=row["processed_at"],
        returned_at=row["returned_at"],
    )


def _movement(row: sqlite3.Row) -> MovementRecord:
    return MovementRecord(**{key: row[key] for key in row.keys()})  # noqa: SIM118


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        event_id=row["event_id"],
        event=row["event"],
        request_id=row["request_id"],
        body=bytes(row["body"]),
        attempts=row["attempts"],
        delivered_at=row["delivered_at"],
        gave_up_at=row["gave_up_at"],
    )


class ApiStore:
    """Reads and writes of the API's tables; writes take the caller's ledger transaction."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        ledger.ensure_schema(SCHEMA)

    # --- nonces ----------------------------------------------------------------------------

    def remember_nonce(self, client_id: str, nonce: str, now: float) -> bool:
        """Record a nonce; False when it was seen within the last 15 minutes."""
        with self.ledger.begin() as txn:
            txn.execute("DELETE FROM api_nonces WHERE seen_at < ?", (now - NONCE_TTL_SECONDS,))
            cursor = txn.execute(
                "INSERT INTO api_nonces (client_id, nonce, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (client_id, nonce) DO NOTHING",
                (client_id, nonce, now),
            )
            return cursor.rowcount == 1

    # --- requests and items ----------------------------------------------------------------

    @staticmethod
    def request_in(txn: LedgerTxn, request_id: str) -> RequestRecord | None:
        row = txn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM api_requests WHERE request_id = ?",  # noqa: S608
            (request_id,),
        ).fetchone()
        return None if row is None else _request(row)

    def request(self, batch_serial: str, file_no: int) -> RequestRecord | None:
        rows = self.ledger.query(
            f"SELECT {_REQUEST_COLUMNS} FROM api_requests "  # noqa: S608
            "WHERE batch_serial = ? AND file_no = ?",
            (batch_serial, file_no),
        )
        return _request(rows[0]) if rows else None

    def processing_requests(self) -> list[RequestRecord]:
        rows = self.ledger.query(
            f"SELECT {_REQUEST_COLUMNS} FROM api_requests "  # noqa: S608
            "WHERE status = 'processing' ORDER BY accepted_at, request_id"
        )
        return [_request(row) for row in rows]

    @staticmethod
    def insert_request(
        txn: LedgerTxn,
        *,
        request_id: str,
        batch_serial: str,
        file_no: int,
        body_sha256: str,
        sm4_key_id: str | None,
        payer_account: str,
        subsidy_code: str,
        period: str,
        item_count: int,
        total_fen: int,
        accepted_at: str,
        ack_body: bytes,
    ) -> None:
        txn.execute(
            "INSERT INTO api_requests (request_id, batch_serial, file_no, body_sha256, "
            "sm4_key_id, payer_account, subsidy_code, period, item_count, total_fen, status, "
            "accepted_at, ack_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'processing', ?, ?)",
            (
                request_id,
                batch_serial,
                file_no,
                body_sha256,
                sm4_key_id,
                payer_account,
                subsidy_code,
                period,
                item_count,
                total_fen,
                accepted_at,
                ack_body,
            ),
        )

    @staticmethod
    def insert_item(
        txn: LedgerTxn,
        *,
        request_id: str,
        seq: int,
        serial: str,
        account_no: str,
        name: str,
        id_number: str,
        amount_fen: int,
    ) -> None:
        txn.execute(
            "INSERT INTO api_items (request_id, seq, serial, account_no, name, id_number, "
            "amount_fen, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
            (request_id, seq, serial, account_no, name, id_number, amount_fen),
        )

    @staticmethod
    def items_in(txn: LedgerTxn, request_id: str) -> list[ItemRecord]:
        rows = txn.execute(
            f"SELECT {_ITEM_COLUMNS} FROM api_items WHERE request_id = ? "  # noqa: S608
            "ORDER BY seq",
            (request_id,),
        ).fetchall()
        return [_item(row) for row in rows]

    def items(self, request_id: str) -> list[ItemRecord]:
        rows = self.ledger.query(
            f"SELECT {_ITEM_COLUMNS} FROM api_items WHERE request_id = ? "  # noqa: S608
            "ORDER BY seq",
            (request_id,),
        )
        return [_item(row) for row in rows]

    @staticmethod
    def decide_item(
        txn: LedgerTxn,
        *,
        request_id: str,
        seq: int,
        status: Literal["paid", "failed"],
        code: str,
        message: str,
        bank_ref: str,
        credit_id: int | None,
        repeated: bool,
        processed_at: str,
    ) -> None:
        txn.execute(
            "UPDATE api_items SET status = ?, code = ?, message = ?, bank_ref = ?, "
            "credit_id = ?, repeated = ?, processed_at = ? "
            "WHERE request_id = ? AND seq = ? AND status = 'pending'",
            (
                status,
                code,
                message,
                bank_ref,
                credit_id,
                int(repeated),
                processed_at,
                request_id,
                seq,
            ),
        )

    @staticmethod
    def return_item(
        txn: LedgerTxn, *, request_id: str, seq: int, code: str, message: str, returned_at: str
    ) -> None:
        txn.execute(
            "UPDATE api_items SET status = 'returned', code = ?, message = ?, returned_at = ? "
            "WHERE request_id = ? AND seq = ? AND status = 'paid'",
            (code, message, returned_at, request_id, seq),
        )

    @staticmethod
    def complete_request(txn: LedgerTxn, request_id: str, completed_at: str) -> None:
        txn.execute(
            "UPDATE api_requests SET status = 'completed', completed_at = ? "
            "WHERE request_id = ? AND status = 'processing'",
            (completed_at, request_id),
        )

    # --- account movements -----------------------------------------------------------------

    @staticmethod
    def payer_account_in(txn: LedgerTxn, request_id: str) -> str:
        (account,) = txn.execute(
            "SELECT payer_account FROM api_requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        return str(account)

    @staticmethod
    def add_movement(
        txn: LedgerTxn,
        *,
        payer_account: str,
        booked_at: str,
        direction: Literal["debit", "credit"],
        amount_fen: int,
        bank_ref: str,
        batch_serial: str | None,
        file_no: int | None,
        item_serial: str | None,
        reason_code: str = "",
    ) -> str:
        """Book one movement (``booked_at``: ISO time with offset, Asia/Shanghai); returns
        its entry id ``MV<YYYYMMDD><8 digits>``."""
        (number,) = txn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM api_movements").fetchone()
        booked_on = booked_at[:10]
        entry_id = f"MV{booked_on.replace('-', '')}{int(number):08d}"
        txn.execute(
            "INSERT INTO api_movements (id, entry_id, payer_account, booked_on, booked_at, "
            "direction, amount_fen, bank_ref, batch_serial, file_no, item_serial, reason_code) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                number,
                entry_id,
                payer_account,
                booked_on,
                booked_at,
                direction,
                amount_fen,
                bank_ref,
                batch_serial,
                file_no,
                item_serial,
                reason_code,
            ),
        )
        return entry_id

    def movements(
        self, payer_account: str, booked_on: str, *, after_id: int = 0, limit: int = 1000
    ) -> list[MovementRecord]:
        """The movements of an account on a day after ``after_id``, in booking order."""
        rows = self.ledger.query(
            f"SELECT {_MOVEMENT_COLUMNS} FROM api_movements "  # noqa: S608
            "WHERE payer_account = ? AND booked_on = ? AND id > ? ORDER BY id LIMIT ?",
            (payer_account, booked_on, after_id, limit),
        )
        return [_movement(row) for row in rows]

    def all_movements(self) -> list[MovementRecord]:
        rows = self.ledger.query(f"SELECT {_MOVEMENT_COLUMNS} FROM api_movements ORDER BY id")  # noqa: S608
        return [_movement(row) for row in rows]

    # --- callback events -------------------------------------------------------------------

    @staticmethod
    def next_event_number(txn: LedgerTxn) -> int:
        (value,) = txn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM api_events").fetchone()
        return int(value)

    @staticmethod
    def add_event(
        txn: LedgerTxn,
        *,
        number: int,
        event_id: str,
        event: EventKind,
        request_id: str,
        body: bytes,
        created_at: str,
    ) -> EventRecord:
        txn.execute(
            "INSERT INTO api_events (id, event_id, event, request_id, body, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (number, event_id, event, request_id, body, created_at),
        )
        return EventRecord(number, event_id, event, request_id, body, 0, None, None)

    def undelivered_events(self) -> list[EventRecord]:
        rows = self.ledger.query(
            f"SELECT {_EVENT_COLUMNS} FROM api_events "  # noqa: S608
            "WHERE delivered_at IS NULL AND gave_up_at IS NULL ORDER BY id"
        )
        return [_event(row) for row in rows]

    def events(self) -> list[EventRecord]:
        rows = self.ledger.query(f"SELECT {_EVENT_COLUMNS} FROM api_events ORDER BY id")  # noqa: S608
        return [_event(row) for row in rows]

    def record_attempt(
        self,
        event_number: int,
        *,
        status: int | None,
        delivered_at: str | None,
        gave_up_at: str | None,
    ) -> None:
        with self.ledger.begin() as txn:
            txn.execute(
                "UPDATE api_events SET attempts = attempts + 1, last_status = ?, "
                "delivered_at = ?, gave_up_at = ? WHERE id = ?",
                (status, delivered_at, gave_up_at, event_number),
            )
