"""The bank's own ledger: a SQLite database (WAL) in ``data_dir``.

It records every request file the bank took (accepted or rejected, with the result file it
answered with), every item result, and every **credit** it made to a beneficiary's account,
so that tests can ask the bank "was anyone paid twice?" (:meth:`Ledger.summary`).

Tables:

- ``request_files``: one row per request file name taken; ``status`` is ``accepted`` or
  ``rejected``; the result file and its signature are stored with it in the same transaction
  as the credits, and ``result_written_at`` is set once they are in ``/outbox`` (so a
  restart writes results that were decided but not yet written).
- ``item_results``: one row per detail record of an accepted file, ``repeated`` = 1 when the
  result repeats an earlier credit of the same item serial (dedupe) instead of crediting.
- ``credits``: one row per credit (money moved). ``double_credits`` in the summary counts the
  extra ones.
- ``counters``: the sequence behind bank references ``MB<YYYYMMDD><10 digits>``.
- ``reversals``: credits whose money came back after payment (退票, code ``R001``); a
  reversed credit no longer counts towards ``double_credits``.

Other channels (the HTTPS API, :mod:`mock_bank.api.store`) keep their own tables in the same
database (:meth:`Ledger.ensure_schema`) and write them in the same transaction as the credits
(:meth:`LedgerTxn.execute`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final, Literal, TypedDict

FileStatus = Literal["accepted", "rejected"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS request_files (
    name              TEXT PRIMARY KEY,
    sha256            TEXT NOT NULL,
    batch_serial      TEXT NOT NULL,
    file_no           INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reject_code       TEXT,
    reject_reason     TEXT,
    item_count        INTEGER NOT NULL DEFAULT 0,
    paid_count        INTEGER NOT NULL DEFAULT 0,
    paid_amount_fen   INTEGER NOT NULL DEFAULT 0,
    failed_count      INTEGER NOT NULL DEFAULT 0,
    failed_amount_fen INTEGER NOT NULL DEFAULT 0,
    processed_at      TEXT NOT NULL,
    result_name       TEXT NOT NULL,
    result_bytes      BLOB NOT NULL,
    result_sig        BLOB NOT NULL,
    result_written_at TEXT
);
CREATE TABLE IF NOT EXISTS item_results (
    file_name    TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    item_serial  TEXT NOT NULL,
    account_no   TEXT NOT NULL,
    amount_fen   INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('S', 'F')),
    code         TEXT NOT NULL,
    message      TEXT NOT NULL,
    bank_ref     TEXT,
    repeated     INTEGER NOT NULL DEFAULT 0,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (file_name, sequence)
);
CREATE TABLE IF NOT EXISTS credits (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    item_serial  TEXT NOT NULL,
    account_no   TEXT NOT NULL,
    amount_fen   INTEGER NOT NULL CHECK (amount_fen > 0),
    subsidy_code TEXT NOT NULL,
    period       TEXT NOT NULL,
    batch_serial TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    bank_ref     TEXT NOT NULL UNIQUE,
    credited_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS credits_by_serial ON credits (item_serial, id);
CREATE INDEX IF NOT EXISTS credits_by_payee ON credits (account_no, subsidy_code, period, id);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reversals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    credit_id   INTEGER NOT NULL UNIQUE REFERENCES credits (id),
    item_serial TEXT NOT NULL,
    amount_fen  INTEGER NOT NULL CHECK (amount_fen > 0),
    code        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    reversed_at TEXT NOT NULL
);
"""

#: A credit is *extra* when an earlier credit (lower id) has the same item serial or the same
#: (account, subsidy item, period). Each extra credit counts once even if it matches both.
#: A reversed credit (退票: the money came back, ``reversals``) is no longer money paid: it
#: neither counts as extra nor makes a later credit extra.
_DOUBLE_CREDITS_SQL: Final = """
SELECT COUNT(*) FROM credits AS c
WHERE c.id NOT IN (SELECT credit_id FROM reversals)
  AND (EXISTS (SELECT 1 FROM credits AS p
               WHERE p.item_serial = c.item_serial AND p.id < c.id
                 AND p.id NOT IN (SELECT credit_id FROM reversals))
    OR EXISTS (SELECT 1 FROM credits AS p
               WHERE p.account_no = c.account_no AND p.subsidy_code = c.subsidy_code
                 AND p.period = c.period AND p.id < c.id
                 AND p.id NOT IN (SELECT credit_id FROM reversals)))
"""

_CREDIT_COLUMNS: Final = (
    "id, item_serial, account_no, amount_fen, subsidy_code, period, batch_serial, file_name, "
    "bank_ref, credited_at"
)


class LedgerSummary(TypedDict):
    credits: int
    double_credits: int
    amount_credited_fen: int
    files_processed: int
    files_rejected: int
    returned: int


@dataclass(frozen=True, slots=True)
class Credit:
    id: int
    item_serial: str
    account_no: str
    amount_fen: int
    subsidy_code: str
    period: str
    batch_serial: str
    file_name: str
    bank_ref: str
    credited_at: str


@dataclass(frozen=True, slots=True)
class RequestFileRecord:
    name: str
    sha256: str
    batch_serial: str
    file_no: int
    status: FileStatus
    reject_code: str | None
    reject_reason: str | None
    item_count: int
    paid_count: int
    paid_amount_fen: int
    failed_count: int
    failed_amount_fen: int
    processed_at: str
    result_name: str
    result_written_at: str | None


@dataclass(frozen=True, slots=True)
class ItemResultRecord:
    file_name: str
    sequence: int
    item_serial: str
    account_no: str
    amount_fen: int
    status: Literal["S", "F"]
    code: str
    message: str
    bank_ref: str | None
    repeated: bool
    processed_at: str


@dataclass(frozen=True, slots=True)
class Reversal:
    """A credit whose money came back after it was paid (退票)."""

    id: int
    credit_id: int
    item_serial: str
    amount_fen: int
    code: str
    reason: str
    reversed_at: str


@dataclass(frozen=True, slots=True)
class PendingResult:
    """A result decided and stored but not yet written to ``/outbox``."""

    request_name: str
    result_name: str
    result_bytes: bytes
    result_sig: bytes


def _credit(row: sqlite3.Row) -> Credit:
    return Credit(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - Row has no iter


class LedgerTxn:
    """Writes inside one ``BEGIN IMMEDIATE`` transaction (see :meth:`Ledger.begin`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def is_processed(self, name: str) -> bool:
        row = self._conn.execute("SELECT 1 FROM request_files WHERE name = ?", (name,))
        return row.fetchone() is not None

    def credit_for_serial(self, item_serial: str) -> Credit | None:
        """The earliest credit of this item serial that was not reversed (退票: its money
        came back, so the serial may be paid again), if any."""
        row = self._conn.execute(
            f"SELECT {_CREDIT_COLUMNS} FROM credits WHERE item_serial = ? "  # noqa: S608
            "AND id NOT IN (SELECT credit_id FROM reversals) ORDER BY id LIMIT 1",
            (item_serial,),
        ).fetchone()
        return None if row is None else _credit(row)

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Run one statement in this transaction: for channel-specific tables (the HTTPS
        API's, ``mock_bank.api.store``) written atomically with the credits."""
        return self._conn.execute(sql, params)

    def add_reversal(self, *, credit_id: int, code: str, reason: str, reversed_at: str) -> Reversal:
        """Record that a credit's money came back (退票); a credit is reversed at most once."""
        row = self._conn.execute(
            "SELECT item_serial, amount_fen FROM credits WHERE id = ?", (credit_id,)
        ).fetchone()
        if row is None:
            raise ValueError(f"no credit {credit_id}")
        cursor = self._conn.execute(
            "INSERT INTO reversals (credit_id, item_serial, amount_fen, code, reason, "
            "reversed_at) VALUES (?, ?, ?, ?, ?, ?)",
            (credit_id, row["item_serial"], row["amount_fen"], code, reason, reversed_at),
        )
        return Reversal(
            id=int(cursor.lastrowid or 0),
            credit_id=credit_id,
            item_serial=row["item_serial"],
            amount_fen=row["amount_fen"],
            code=code,
            reason=reason,
            reversed_at=reversed_at,
        )

    def next_bank_ref(self, day: date) -> str:
        """A new, never reused bank reference ``MB<YYYYMMDD><10-digit counter>``."""
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES ('bank_ref', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1"
        )
        (value,) = self._conn.execute(
            "SELECT value FROM counters WHERE name = 'bank_ref'"
        ).fetchone()
        return f"MB{day:%Y%m%d}{int(value):010d}"

    def add_credit(
        self,
        *,
        item_serial: str,
        account_no: str,
        amount_fen: int,
        subsidy_code: str,
        period: str,
        batch_serial: str,
        file_name: str,
        bank_ref: str,
        credited_at: str,
    ) -> None:
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
            raise ValueError("a credit is a positive integer number of fen")
        self._conn.execute(
            "INSERT INTO credits (item_serial, account_no, amount_fen, subsidy_code, period, "
            "batch_serial, file_name, bank_ref, credited_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item_serial,
                account_no,
                amount_fen,
                subsidy_code,
                period,
                batch_serial,
                file_name,
                bank_ref,
                credited_at,
            ),
        )

    def add_item_result(
        self,
        *,
        file_name: str,
        sequence: int,
        item_serial: str,
        account_no: str,
        amount_fen: int,
        status: Literal["S", "F"],
        code: str,
        message: str,
        bank_ref: str | None,
        repeated: bool,
        processed_at: str,
    ) -> None:
        self._conn.execute(
            "INSERT INTO item_results (file_name, sequence, item_serial, account_no, amount_fen, "
            "status, code, message, bank_ref, repeated, processed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                file_name,
                sequence,
                item_serial,
                account_no,
                amount_fen,
                status,
                code,
                message,
                bank_ref,
                int(repeated),
                processed_at,
            ),
        )

    def add_request_file(
        self,
        *,
        name: str,
        sha256: str,
        batch_serial: str,
        file_no: int,
        status: FileStatus,
        processed_at: str,
        result_name: str,
        result_bytes: bytes,
        result_sig: bytes,
        reject_code: str | None = None,
        reject_reason: str | None = None,
        item_count: int = 0,
        paid_count: int = 0,
        paid_amount_fen: int = 0,
        failed_count: int = 0,
        failed_amount_fen: int = 0,
    ) -> None:
        self._conn.execute(
            "INSERT INTO request_files (name, sha256, batch_serial, file_no, status, "
            "reject_code, reject_reason, item_count, paid_count, paid_amount_fen, failed_count, "
            "failed_amount_fen, processed_at, result_name, result_bytes, result_sig) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                sha256,
                batch_serial,
                file_no,
                status,
                reject_code,
                reject_reason,
                item_count,
                paid_count,
                paid_amount_fen,
                failed_count,
                failed_amount_fen,
                processed_at,
                result_name,
                result_bytes,
                result_sig,
            ),
        )


class Ledger:
    """The bank's SQLite ledger; safe to share between threads (one connection, a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")  # a credit must survive a crash
        with self._lock:
            self._conn.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def begin(self) -> Iterator[LedgerTxn]:
        """One write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on
        any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield LedgerTxn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """Read rows (for channel-specific tables, like :meth:`LedgerTxn.execute`)."""
        return self._query(sql, params)

    def ensure_schema(self, script: str) -> None:
        """Create channel-specific tables (an idempotent ``CREATE … IF NOT EXISTS`` script)."""
        with self._lock:
            self._conn.executescript(script)

    # --- reads -------------------------------------------------------------------------------

    def is_processed(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM request_files WHERE name = ?", (name,)))

    def processed_names(self) -> set[str]:
        return {row[0] for row in self._query("SELECT name FROM request_files")}

    def summary(self) -> LedgerSummary:
        """``credits``: credits made; ``double_credits``: extra credits (same item serial, or
        same account + subsidy item + period, as an earlier credit); ``amount_credited_fen``:
        sum of all credits; ``files_processed``: request files taken (accepted or rejected);
        ``files_rejected``: of which rejected; ``returned``: credits whose money came back
        (退票, ``reversals``)."""
        with self._lock:
            credits, amount = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(amount_fen), 0) FROM credits"
            ).fetchone()
            (double,) = self._conn.execute(_DOUBLE_CREDITS_SQL).fetchone()
            files, rejected = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(status = 'rejected'), 0) FROM request_files"
            ).fetchone()
            (returned,) = self._conn.execute("SELECT COUNT(*) FROM reversals").fetchone()
        return LedgerSummary(
            credits=int(credits),
            double_credits=int(double),
            amount_credited_fen=int(amount),
            files_processed=int(files),
            files_rejected=int(rejected),
            returned=int(returned),
        )

    def reversals(self) -> list[Reversal]:
        rows = self._query(
            "SELECT id, credit_id, item_serial, amount_fen, code, reason, reversed_at "
            "FROM reversals ORDER BY id"
        )
        return [Reversal(**{k: row[k] for k in row.keys()}) for row in rows]  # noqa: SIM118

    def credits(self) -> list[Credit]:
        rows = self._query(f"SELECT {_CREDIT_COLUMNS} FROM credits ORDER BY id")  # noqa: S608
        return [_credit(row) for row in rows]

    def request_files(self) -> list[RequestFileRecord]:
        rows = self._query(
            "SELECT name, sha256, batch_serial, file_no, status, reject_code, reject_reason, "
            "item_count, paid_count, paid_amount_fen, failed_count, failed_amount_fen, "
            "processed_at, result_name, result_written_at FROM request_files "
            "ORDER BY processed_at, name"
        )
        return [RequestFileRecord(**{k: row[k] for k in row.keys()}) for row in rows]  # noqa: SIM118

    def item_results(self, file_name: str | None = None) -> list[ItemResultRecord]:
        sql = (
            "SELECT file_name, sequence, item_serial, account_no, amount_fen, status, code, "
            "message, bank_ref, repeated, processed_at FROM item_results"
        )
        params: tuple[object, ...] = ()
        if file_name is not None:
            sql += " WHERE file_name = ?"
            params = (file_name,)
        rows = self._query(sql + " ORDER BY processed_at, file_name, sequence", params)
        return [
            ItemResultRecord(
                file_name=row["file_name"],
                sequence=row["sequence"],
                item_serial=row["item_serial"],
                account_no=row["account_no"],
                amount_fen=row["amount_fen"],
                status=row["status"],
                code=row["code"],
                message=row["message"],
                bank_ref=row["bank_ref"],
                repeated=bool(row["repeated"]),
                processed_at=row["processed_at"],
            )
            for row in rows
        ]

    def pending_results(self) -> list[PendingResult]:
        rows = self._query(
            "SELECT name, result_name, result_bytes, result_sig FROM request_files "
            "WHERE result_written_at IS NULL ORDER BY processed_at, name"
        )
        return [
            PendingResult(
                request_name=row["name"],
                result_name=row["result_name"],
                result_bytes=bytes(row["result_bytes"]),
                result_sig=bytes(row["result_sig"]),
            )
            for row in rows
        ]

    def mark_result_written(self, request_name: str, written_at: str) -> None:
        with self._lock:  # a single statement: its own transaction in autocommit mode
            self._conn.execute(
                "UPDATE request_files SET result_written_at = ? WHERE name = ?",
                (written_at, request_name),
            )
