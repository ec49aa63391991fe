"""The centre's own record: every message it accepted and every submission it refused.

Numbers are stored masked and as a salted SHA-256 (salt generated once per database, kept
in ``meta``), never in full. Thread-safe (one connection behind a lock).

``summary()`` answers what the demo reports:

- ``sent``: messages accepted (every accepted submission counts, duplicates included);
- ``failed``: submissions refused for good (invalid number, sign, template, parameters)
  plus accepted messages whose delivery report is a failure (once the report is due);
- ``duplicates``: accepted messages that repeat an earlier one — the same template,
  parameters and number, or the same out_id with the same provider — counted as
  ``accepted − groups`` where a group is every message linked by either relation.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    out_id TEXT NOT NULL,
    provider_ref TEXT NOT NULL UNIQUE,
    phone_masked TEXT NOT NULL,
    phone_hash TEXT NOT NULL,
    sign_name TEXT NOT NULL,
    template TEXT NOT NULL,
    params TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    accepted_epoch REAL NOT NULL,
    send_date TEXT NOT NULL,
    report_due REAL NOT NULL,
    delivered INTEGER NOT NULL,
    report_code TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_phone ON messages (phone_hash, accepted_epoch);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    out_id TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    code TEXT NOT NULL,
    permanent INTEGER NOT NULL,
    at TEXT NOT NULL
);
"""

_SELECT: Final = (
    "SELECT id, provider, out_id, provider_ref, phone_masked, phone_hash, sign_name, "
    "template, params, accepted_at, accepted_epoch, send_date, report_due, delivered, "
    "report_code FROM messages"
)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One accepted message (no full number anywhere)."""

    id: int
    provider: str
    out_id: str
    provider_ref: str
    phone_masked: str
    phone_hash: str
    sign_name: str
    template: str
    params: str  # canonical JSON
    accepted_at: str  # ISO 8601, +08:00
    accepted_epoch: float
    send_date: str  # yyyyMMdd, Asia/Shanghai
    report_due: float
    delivered: bool
    report_code: str

    def status(self, now: float) -> str:
        """``pending`` until the report is due, then ``delivered`` or ``failed``."""
        if now < self.report_due:
            return "pending"
        return "delivered" if self.delivered else "failed"


def shanghai_text(epoch: float) -> str:
    """``YYYY-MM-DD hh:mm:ss`` in Asia/Shanghai."""
    return dt.datetime.fromtimestamp(epoch, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


class MessageStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
        if row is None:
            salt = secrets.token_hex(16)
            self._db.execute("INSERT INTO meta (key, value) VALUES ('salt', ?)", (salt,))
        else:
            salt = row[0]
        self.salt = bytes.fromhex(salt)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_message(
        self,
        *,
        provider: str,
        out_id: str,
        provider_ref: str,
        phone_masked: str,
        phone_hash: str,
        sign_name: str,
        template: str,
        params: str,
        accepted_epoch: float,
        report_due: float,
        delivered: bool,
        report_code: str,
    ) -> MessageRecord:
        accepted = dt.datetime.fromtimestamp(accepted_epoch, SHANGHAI)
        values = (
            provider,
            out_id,
            provider_ref,
            phone_masked,
            phone_hash,
            sign_name,
            template,
            params,
            accepted.isoformat(timespec="milliseconds"),
            accepted_epoch,
            accepted.strftime("%Y%m%d"),
            report_due,
            int(delivered),
            report_code,
        )
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO messages (provider, out_id, provider_ref, phone_masked, "
                "phone_hash, sign_name, template, params, accepted_at, accepted_epoch, "
                "send_date, report_due, delivered, report_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            row_id = int(cursor.lastrowid or 0)
        return MessageRecord(
            id=row_id,
            provider=provider,
            out_id=out_id,
            provider_ref=provider_ref,
            phone_masked=phone_masked,
            phone_hash=phone_hash,
            sign_name=sign_name,
            template=template,
            params=params,
            accepted_at=accepted.isoformat(timespec="milliseconds"),
            accepted_epoch=accepted_epoch,
            send_date=accepted.strftime("%Y%m%d"),
            report_due=report_due,
            delivered=delivered,
            report_code=report_code,
        )

    def add_refusal(
        self, *, provider: str, out_id: str, phone_masked: str, code: str, permanent: bool
    ) -> None:
        now = dt.datetime.now(SHANGHAI).isoformat(timespec="milliseconds")
        with self._lock:
            self._db.execute(
                "INSERT INTO refusals (provider, out_id, phone_masked, code, permanent, at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (provider, out_id, phone_masked, code, int(permanent), now),
            )

    def _records(self, where: str = "", args: Sequence[object] = ()) -> list[MessageRecord]:
        sql = f"{_SELECT} {where} ORDER BY id"  # where: fixed fragments, values as ? args
        with self._lock:
            rows = self._db.execute(sql, tuple(args)).fetchall()
        return [
            MessageRecord(
                id=row[0],
                provider=row[1],
                out_id=row[2],
                provider_ref=row[3],
                phone_masked=row[4],
                phone_hash=row[5],
                sign_name=row[6],
                template=row[7],
                params=row[8],
                accepted_at=row[9],
                accepted_epoch=row[10],
                send_date=row[11],
                report_due=row[12],
                delivered=bool(row[13]),
                report_code=row[14],
            )
            for row in rows
        ]

    def messages(self) -> list[MessageRecord]:
        return self._records()

    def find(
        self,
        *,
        provider: str,
        phone_hash: str,
        since: float,
        until: float,
        out_id: str | None = None,
        provider_ref: str | None = None,
    ) -> list[MessageRecord]:
        """Accepted messages to a number within ``[since, until)``, optionally filtered."""
        where = (
            "WHERE provider = ? AND phone_hash = ? AND accepted_epoch >= ? AND accepted_epoch < ?"
        )
        args: list[object] = [provider, phone_hash, since, until]
        if out_id is not None:
            where += " AND out_id = ?"
            args.append(out_id)
        if provider_ref is not None:
            where += " AND provider_ref = ?"
            args.append(provider_ref)
        return self._records(where, args)

    def refusals(self) -> list[tuple[str, str, str, str, bool]]:
        """``(provider, out_id, phone_masked, code, permanent)`` of every refusal."""
        with self._lock:
            rows = self._db.execute(
                "SELECT provider, out_id, phone_masked, code, permanent FROM refusals ORDER BY id"
            ).fetchall()
        return [(p, o, m, c, bool(k)) for p, o, m, c, k in rows]

    def summary(self, now: float | None = None) -> dict[str, int]:
        now = time.time() if now is None else now
        records = self.messages()
        with self._lock:
            (refused,) = self._db.execute(
                "SELECT COUNT(*) FROM refusals WHERE permanent = 1"
            ).fetchone()
        undelivered = sum(1 for r in records if r.status(now) == "failed")
        return {
            "sent": len(records),
            "failed": int(refused) + undelivered,
            "duplicates": len(records) - _groups(records),
        }


def _groups(records: Sequence[MessageRecord]) -> int:
    """How many groups the messages form when linked by same content or same out_id."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, ...], int] = {}
    for index, record in enumerate(records):
        for key in (
            ("content", record.template, record.params, record.phone_hash),
            ("out_id", record.provider, record.out_id),
        ):
            other = first.setdefault(key, index)
            if other != index:
                parent[find(index)] = find(other)
    return sum(1 for i in range(len(records)) if find(i) == i)


def canonical_params(params: object) -> str:
    """Parameters as canonical JSON (objects with sorted keys, arrays as given)."""
    return json.dumps(params, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
