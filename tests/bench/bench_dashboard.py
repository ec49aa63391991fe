"""``make bench``: the operators' dashboard on a county's ten years of data. Prints figures;
asserts nothing about time (only that every page answers 200).

A synthetic county (20 townships 430621101…430621120, three banks, ten years of batches of
~250 items, ``BENCH_DASH_ITEMS`` items in all, default 500,000) is written straight into a
migrated database with bulk inserts (PostgreSQL: ``COPY``): batches and their events and
bank files, payment items (~96% paid, ~3% failed, ~1% returned, a handful unknown or with
an operator in the newest batches) and their events, correction lists, treasury refunds,
operator cases, a year of SMS notices, self-check reports and ~200,000 audit rows. Personal
data: one real ciphertext (it decrypts) for every row, blind indexes distinct per person,
plausible masks.

Then each page is requested in-process (``TestClient`` over https, logged in through the
real login form) as a county operator, a township operator and an auditor: one warm-up and
``BENCH_DASH_RUNS`` (5) timed runs; the median and the maximum in ms, the response size and
the number of SQL statements of one request are printed and saved to
``.bench/dashboard.json``. A page whose median exceeds ``BENCH_DASH_SLOW_MS`` (1000) has its
SELECTs re-run one by one: the slowest are printed with the database's plan.

Runs on SQLite and, when reachable, on PostgreSQL (``GATEWAY_BENCH_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``; a fresh database, dropped afterwards).
PostgreSQL gets ``VACUUM ANALYZE`` after the load (autovacuum would); SQLite gets no
``ANALYZE`` (the gateway never runs one). ``BENCH_DASH_KEEP=1`` keeps both databases for a
closer look (the temporary directory and the PostgreSQL database are named at the end).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway import models  # noqa: E402
from gateway.certs import init_dev_keys  # noqa: E402
from gateway.context import Context  # noqa: E402
from gateway.demo.banks import write_profiles  # noqa: E402
from gateway.kit.clock import utcnow  # noqa: E402
from gateway.kit.db import make_engine, session_scope  # noqa: E402
from gateway.kit.identity import id_check_char, luhn_check_digit  # noqa: E402
from gateway.kit.migrate import upgrade  # noqa: E402
from gateway.kit.pii import mask_account, mask_id_number, mask_name, mask_phone  # noqa: E402
from gateway.settings import Settings  # noqa: E402

N = int(os.environ.get("BENCH_DASH_ITEMS", "500000"))
RUNS = int(os.environ.get("BENCH_DASH_RUNS", "5"))
SLOW_MS = float(os.environ.get("BENCH_DASH_SLOW_MS", "1000"))
PG = os.environ.get("GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CHUNK = 10_000

PER_BATCH = 250
YEARS = 10
COUNTY = "430621"
REGIONS = [f"{COUNTY}{n}" for n in range(101, 121)]
TOWNSHIP = "430621105"
BANKS = ("hnrcu", "psbc", "abc")
SUBSIDIES = (
    ("GDBH", "耕地地力保护补贴"),
    ("DBBZ", "农村最低生活保障金"),
    ("GLBT", "高龄津贴"),
    ("CJBT", "困难残疾人生活补贴"),
    ("ZLBT", "森林生态效益补偿"),
)
REASONS = ("name_mismatch", "account_not_found", "account_frozen", "account_closed")
BANK_CODES = {
    "name_mismatch": ("E102", "户名不符"),
    "account_not_found": ("E101", "账户不存在"),
    "account_frozen": ("E103", "账户冻结"),
    "account_closed": ("E104", "账户已销户"),
}
SURNAMES = "王李张刘陈杨黄赵周吴徐孙马胡朱郭何罗高林"
PAYER_ACCOUNT = "43001700062050500001"
PAYER_NAME = "岳阳县财政局"
SENT_BATCHES = 4  # the newest batches: still with the bank, a few outcomes open
PASSWORD = "Bench-Pass-2026!"
AUDIT_ACTOR = "op105"  # an actor of the synthetic audit history, for the actor filter

# who looks: username → (real name, role, regions)
VIEWERS: dict[str, tuple[str, str, list[str]]] = {
    "county": ("孙县级", "operator", [COUNTY]),
    "township": ("李乡镇", "operator", [TOWNSHIP]),
    "auditor": ("吴审计", "auditor", []),
}
ALL = ("county", "township", "auditor")
# the pages: path ({batch}, {item}, {actor} filled in) and who requests it
PAGES: list[tuple[str, tuple[str, ...]]] = [
    ("/overview", ALL),
    ("/batches", ALL),
    (f"/batches?region={TOWNSHIP}", ALL),
    ("/batches?state=rejected", ALL),
    ("/batches/{batch}", ALL),
    ("/batches/{batch}?page=3", ALL),
    ("/failed", ALL),
    ("/failed?reason=name_mismatch", ALL),
    ("/failed?page=20", ALL),
    ("/items/{item}", ALL),
    ("/sms", ALL),
    ("/audit", ("auditor",)),
    ("/audit?actor={actor}", ("auditor",)),
    ("/refunds", ALL),
    ("/cases", ALL),
    ("/selfcheck", ALL),
]


# --- loading ---------------------------------------------------------------------------------


def _copy_value(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


class Loader:
    """Bulk-writes rows (tuples in ``columns`` order) into one table: ``COPY`` on PostgreSQL,
    SQLAlchemy Core ``executemany`` in chunks on SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def put(self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        table: Table = models.Base.metadata.tables[name]
        missing = [
            c.name
            for c in table.columns
            if not c.nullable
            and c.server_default is None
            and c.default is None
            and c.name not in columns
        ]
        assert not missing, f"{name}: NOT NULL columns without a value: {missing}"
        t0 = time.perf_counter()
        n = self._copy(name, columns, rows) if self.pg else self._insert(table, columns, rows)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        self.counts[name] = self.counts.get(name, 0) + n

    def _insert(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        n = 0
        stmt = table.insert()
        with self.engine.begin() as conn:
            chunk: list[dict[str, Any]] = []
            for row in rows:
                chunk.append(dict(zip(columns, row, strict=True)))
                if len(chunk) >= CHUNK:
                    conn.execute(stmt, chunk)
                    n += len(chunk)
                    chunk = []
            if chunk:
                conn.execute(stmt, chunk)
                n += len(chunk)
        return n

    def _copy(self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        n = 0
        raw = self.engine.raw_connection()
        try:
            pg: Any = raw.driver_connection
            with (
                pg.cursor() as cur,
                cur.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as cp,
            ):
                for row in rows:
                    cp.write_row([_copy_value(v) for v in row])
                    n += 1
            pg.commit()
        finally:
            raw.close()
        return n

    def finish(self) -> None:
        """PostgreSQL: move the id sequences past the explicit ids, then VACUUM ANALYZE."""
        if not self.pg:
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in self.counts:
                # table names of our own metadata, not input
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'),"  # noqa: S608
                        f" (SELECT max(id) FROM {name}))"
                    )
                )
            conn.execute(text("VACUUM ANALYZE"))


# --- the synthetic county --------------------------------------------------------------------


@dataclass
class Person:
    id_bidx: str
    id_masked: str
    account_bidx: str
    account_masked: str
    name_masked: str
    phone_masked: str


@dataclass
class BatchPlan:
    id: int
    region: str
    bank: str
    subsidy: tuple[str, str]
    received_at: dt.datetime
    state: str
    serial: str | None
    first_item: int = 0  # id of its first item (0: none)
    count: int = 0
    total_fen: int = 0


@dataclass
class Dataset:
    """What the measurements need to know about the data written."""

    counts: dict[str, int]
    build_s: float
    seconds: dict[str, float]
    batch_id: int
    item_id: int


def amount_of(item_id: int) -> int:
    return 5_000 + (item_id * 7_919) % 200_000  # 50.00 … 2,049.99 yuan, integer fen


def fate_of(item_id: int, seq: int, sent_batch: bool) -> tuple[str, str | None]:
    """(state, reason code): ~96% paid, ~3% failed, ~1% returned for correction; in the
    newest batches a few items whose outcome is still open."""
    if sent_batch and seq % 100 == 7:
        return "unknown", None
    if sent_batch and seq % 100 == 57:
        return "operator_case", None
    h = (item_id * 2_654_435_761) & 0xFFFFFFFF
    r = h % 10_000
    why = REASONS[(h >> 16) % len(REASONS)]
    if r < 9_600:
        return "paid", None
    if r < 9_900:
        return "failed", why
    return "returned", why


def make_people(pii: Any, count: int) -> list[Person]:
    rng = random.Random(3)
    out = []
    for p in range(count):
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=p // 900)
        first17 = f"{COUNTY}{birth:%Y%m%d}{p % 900 + 100:03d}"
        id_number = first17 + id_check_char(first17)
        card = f"621799{p:012d}"
        account = card + luhn_check_digit(card)
        name = rng.choice(SURNAMES) + "秋菊"
        out.append(
            Person(
                id_bidx=pii.blind_index("id_number", id_number),
                id_masked=mask_id_number(id_number),
                account_bidx=pii.blind_index("account_no", account),
                account_masked=mask_account(account),
                name_masked=mask_name(name),
                phone_masked=mask_phone(f"138{p:08d}"),
            )
        )
    return out


def plan_batches(now: dt.datetime) -> list[BatchPlan]:
    rng = random.Random(1)
    with_items = -(-N // PER_BATCH)
    rejected = max(3, with_items // 100)
    total = with_items + rejected
    rejected_at = set(rng.sample(range(total - SENT_BATCHES), rejected))
    start = now - dt.timedelta(days=365 * YEARS)
    span = (now - start).total_seconds()
    plans: list[BatchPlan] = []
    for k in range(total):
        at = start + dt.timedelta(seconds=span * (k + rng.random()) / total)
        at = min(at, now - dt.timedelta(minutes=5))
        state = "rejected" if k in rejected_at else "reconciled"
        if k >= total - SENT_BATCHES:
            state = "sent"
        serial = None if state == "rejected" else f"{at:%y%m%d}{k:010d}"
        plans.append(
            BatchPlan(
                id=k + 1,
                region=rng.choice(REGIONS),
                bank=rng.choice(BANKS),
                subsidy=rng.choice(SUBSIDIES),
                received_at=at,
                state=state,
                serial=serial,
            )
        )
    next_item = 1
    left = N
    for b in plans:
        if b.state == "rejected" or left <= 0:
            continue
        b.first_item = next_item
        b.count = min(PER_BATCH, left)
        b.total_fen = sum(amount_of(i) for i in range(next_item, next_item + b.count))
        next_item += b.count
        left -= b.count
    subject_of(plans, now).region = TOWNSHIP
    return plans


def subject_of(plans: list[BatchPlan], now: dt.datetime) -> BatchPlan:
    """The batch the detail pages show: the newest full batch settled over a month ago (in
    the township, once planned), and so one with three pages of items and SMS notices."""
    return next(
        b
        for b in reversed(plans)
        if b.state == "reconciled"
        and b.count == PER_BATCH
        and b.received_at < now - dt.timedelta(days=30)
    )


BATCH_COLUMNS = (
    "id", "client_id", "batch_no", "content_sha256", "state", "serial", "region_code",
    "subsidy_code", "subsidy_name", "period", "fiscal_year", "payer_account", "payer_name",
    "bank_profile", "declared_count", "declared_total_fen", "item_count", "total_fen",
    "error_count", "received_at", "updated_at", "completed_at", "dispatch_on",
)  # fmt: skip
ITEM_COLUMNS = (
    "id", "batch_id", "seq", "serial", "state", "amount_fen", "name_enc", "name_masked",
    "id_number_enc", "id_number_bidx", "id_number_masked", "account_enc", "account_bidx",
    "account_masked", "phone_enc", "phone_masked", "claim_key", "outbound_file_id",
    "bank_code", "bank_message", "bank_ref", "reason_code", "paid_at", "updated_at",
)  # fmt: skip
EVENT_COLUMNS = ("id", "{owner}", "event", "from_state", "to_state", "actor", "at", "detail")


def batch_rows(plans: list[BatchPlan]) -> Iterator[tuple[Any, ...]]:
    for b in plans:
        year = b.received_at.year
        rejected = b.state == "rejected"
        declared = b.count or PER_BATCH
        yield (
            b.id, "county-finance", f"{year}-{b.region[-3:]}-{b.id:06d}",
            hashlib.sha256(f"batch-{b.id}".encode()).hexdigest(), b.state, b.serial, b.region,
            b.subsidy[0], b.subsidy[1], str(year), year, PAYER_ACCOUNT, PAYER_NAME, b.bank,
            declared, b.total_fen or declared * 10_000, b.count, b.total_fen,
            3 if rejected else 0, b.received_at, b.received_at + dt.timedelta(days=3),
            None if b.state == "sent" else b.received_at + dt.timedelta(days=3),
            (b.received_at + dt.timedelta(hours=8)).date(),
        )  # fmt: skip


def batch_event_rows(plans: list[BatchPlan]) -> Iterator[tuple[Any, ...]]:
    n = 0
    steps = (
        ("receive", None, "received", "upstream:county-finance", 0),
        ("accept", "received", "accepted", "worker", 1),
        ("plan", "accepted", "dispatching", "worker", 60),
        ("all_delivered", "dispatching", "sent", "worker", 120),
        ("all_final", "sent", "completed", "worker", 2_880),
        ("reconcile", "completed", "reconciled", "worker", 4_320),
    )
    for b in plans:
        if b.state == "rejected":
            n += 1
            yield (n, b.id, "reject", "received", "rejected", "upstream:county-finance",
                   b.received_at, {"errors": 3})  # fmt: skip
            continue
        for event_, from_, to, actor, minutes in steps:
            if b.state == "sent" and event_ in {"all_final", "reconcile"}:
                break
            n += 1
            at = b.received_at + dt.timedelta(minutes=minutes)
            yield n, b.id, event_, from_, to, actor, at, None


def batch_error_rows(plans: list[BatchPlan]) -> Iterator[tuple[Any, ...]]:
    n = 0
    for b in plans:
        if b.state != "rejected":
            continue
        for seq in (3, 17, 42):
            n += 1
            yield (n, b.id, seq, "id_number", "id_number_check_digit",
                   "身份证号码校验位不符", "the check character does not match")  # fmt: skip


def outbound_rows(plans: list[BatchPlan]) -> Iterator[tuple[Any, ...]]:
    signature = b"alg=rsa-pss-sha256\nkey-id=gw-dev-2026\n"
    for b in plans:
        if not b.count:
            continue
        delivered = b.received_at + dt.timedelta(hours=2)
        yield (
            b.id, b.id, b.bank, 1, f"{b.bank.upper()}_{b.serial}_001.txt",
            f"{b.bank.upper()}_{b.serial}_001.sig", b.count, b.total_fen,
            hashlib.sha256(f"out-{b.id}".encode()).hexdigest(), b.count * 180,
            b"\x01" + b"\x00" * 63, signature, "delivered", 1, 0, delivered, b.received_at,
            delivered, 0,
        )  # fmt: skip


OUTBOUND_COLUMNS = (
    "id", "batch_id", "bank_profile", "file_no", "file_name", "signature_name", "item_count",
    "total_fen", "sha256", "size", "content_enc", "signature", "state", "attempts", "inquiries",
    "next_attempt_at", "created_at", "delivered_at", "polls",
)  # fmt: skip


def inbound_rows(plans: list[BatchPlan]) -> Iterator[tuple[Any, ...]]:
    for b in plans:
        if not b.count or b.state == "sent":
            continue
        yield (
            b.id, b.bank, f"RET_{b.serial}_001.txt",
            hashlib.sha256(f"in-{b.id}".encode()).hexdigest(), b.count * 200, "result",
            "applied", b.serial, b.count, b.count, b.received_at + dt.timedelta(days=2),
        )  # fmt: skip


INBOUND_COLUMNS = (
    "id", "bank_profile", "file_name", "sha256", "size", "kind", "state", "batch_serial",
    "item_count", "applied_count", "received_at",
)  # fmt: skip


@dataclass
class ItemFacts:
    """Collected while the items are written: what the follow-up tables are made of."""

    returned: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)
    failed: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)
    open_cases: list[tuple[int, int]] = field(default_factory=list)  # (item, batch)
    sms: list[tuple[int, str, dt.datetime]] = field(default_factory=list)  # item, state, at


def item_rows(
    plans: list[BatchPlan], people: list[Person], enc: dict[str, str], facts: ItemFacts, now: Any
) -> Iterator[tuple[Any, ...]]:
    per_region = max(1, len(people) // len(REGIONS))
    seen_in_region = dict.fromkeys(REGIONS, 0)
    sms_since = now - dt.timedelta(days=365)
    for b in plans:
        if not b.count:
            continue
        r = REGIONS.index(b.region)
        sent_batch = b.state == "sent"
        paid_at = b.received_at + dt.timedelta(days=2)
        for seq in range(1, b.count + 1):
            item_id = b.first_item + seq - 1
            k = seen_in_region[b.region]
            seen_in_region[b.region] = k + 1
            person = people[r * per_region + k % per_region]
            state, why = fate_of(item_id, seq, sent_batch)
            code: str | None = "0000"
            message: str | None = "成功"
            if why:
                code, message = BANK_CODES[why]
            elif state in {"unknown", "operator_case"}:
                code, message = None, None
            key = (b.received_at.year, b.region)
            if state == "returned":
                facts.returned.setdefault(key, []).append((item_id, amount_of(item_id)))
            elif state == "failed":
                facts.failed.setdefault(key, []).append((item_id, amount_of(item_id)))
            elif state == "operator_case":
                facts.open_cases.append((item_id, b.id))
            if b.received_at >= sms_since and state in {"paid", "failed", "returned"}:
                facts.sms.append((item_id, "paid" if state == "paid" else "failed", paid_at))
            yield (
                item_id, b.id, seq, f"{b.serial}{seq:08d}", state, amount_of(item_id),
                enc["name"], person.name_masked, enc["id_number"], person.id_bidx,
                person.id_masked, enc["account_no"], person.account_bidx, person.account_masked,
                enc["phone"], person.phone_masked,
                hashlib.sha256(f"claim-{item_id}".encode()).hexdigest(), b.id, code, message,
                f"MB{item_id:012d}" if state == "paid" else None, why,
                paid_at if state == "paid" else None,
                paid_at + dt.timedelta(days=30) if state == "returned" else paid_at,
            )  # fmt: skip


def item_event_rows(plans: list[BatchPlan]) -> Iterator[tuple[Any, ...]]:
    """Two events per item (delivered, the bank's result), a third for a returned one."""
    n = 0
    for b in plans:
        if not b.count:
            continue
        delivered = b.received_at + dt.timedelta(hours=2)
        result_at = b.received_at + dt.timedelta(days=2)
        for seq in range(1, b.count + 1):
            item_id = b.first_item + seq - 1
            state, _ = fate_of(item_id, seq, b.state == "sent")
            n += 1
            yield n, item_id, "deliver", "queued", "sent", "worker", delivered, None
            if state in {"unknown", "operator_case"}:
                continue
            n += 1
            paid = state == "paid"
            yield (n, item_id, "result_paid" if paid else "result_failed", "sent",
                   "paid" if paid else "failed", f"bank:{b.bank}", result_at, None)  # fmt: skip
            if state == "returned":
                n += 1
                yield (n, item_id, "return", "failed", "returned", f"op{b.region[-3:]}",
                       result_at + dt.timedelta(days=30), None)  # fmt: skip


def audit_rows(count: int, now: dt.datetime, items: int, batches: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(7)
    actors = [f"op{r[-3:]}" for r in REGIONS] + ["sup", "sup2", "aud", "admin"]
    weights = [4] * len(REGIONS) + [6, 6, 2, 1]
    actions = (
        ("view.batches", "batch", 20), ("view.batch", "batch", 25), ("view.item", "item", 20),
        ("view.failed", "failed_queue", 15), ("view.overview", "overview", 10),
        ("login.ok", "account", 6), ("logout", "account", 4), ("pii.unmask", "item", 1),
        ("correction_list.export", "correction_list", 1), ("refund.propose", "treasury_refund", 1),
        ("account.password_changed", "account", 1),
    )  # fmt: skip
    names = [a for a, _, _ in actions]
    targets = {a: t for a, t, _ in actions}
    action_weights = [w for _, _, w in actions]
    start = now - dt.timedelta(days=365 * YEARS)
    span = (now - start).total_seconds()
    step = span / max(1, count)
    for n in range(1, count + 1):
        at = start + dt.timedelta(seconds=step * (n - 1) + rng.random() * step)
        action = rng.choices(names, action_weights)[0]
        target = targets[action]
        target_id: str | None = None
        if target == "item":
            target_id = str(rng.randint(1, items))
        elif target == "batch" and action == "view.batch":
            target_id = str(rng.randint(1, batches))
        yield (n, at, rng.choices(actors, weights)[0], action, target, target_id,
               "核对户名" if action == "pii.unmask" else None,
               {"session": n // 20 + 1, "page": 1})  # fmt: skip


def build(ctx: Context, engine: Engine) -> Dataset:
    loader = Loader(engine)
    now = utcnow()
    t0 = time.perf_counter()
    people = make_people(ctx.pii, max(len(REGIONS), N // 10))
    enc = {
        "name": ctx.pii.encrypt("name", "王秋菊"),
        "id_number": ctx.pii.encrypt("id_number", "430621194001011008"),
        "account_no": ctx.pii.encrypt("account_no", "6217990000000000013"),
        "phone": ctx.pii.encrypt("phone", "13800000001"),
    }
    plans = plan_batches(now)
    loader.put("batches", BATCH_COLUMNS, batch_rows(plans))
    loader.put("batch_events", [c.format(owner="batch_id") for c in EVENT_COLUMNS],
               batch_event_rows(plans))  # fmt: skip
    loader.put("batch_errors", ("id", "batch_id", "seq", "field", "code", "message_zh",
                                "message_en"), batch_error_rows(plans))  # fmt: skip
    loader.put("outbound_files", OUTBOUND_COLUMNS, outbound_rows(plans))
    loader.put("inbound_files", INBOUND_COLUMNS, inbound_rows(plans))
    facts = ItemFacts()
    loader.put("payment_items", ITEM_COLUMNS, item_rows(plans, people, enc, facts, now))
    loader.put("item_events", [c.format(owner="item_id") for c in EVENT_COLUMNS],
               item_event_rows(plans))  # fmt: skip
    follow_ups(loader, facts, plans, now)
    batches = len(plans)
    loader.put("audit_log", ("id", "at", "actor", "action", "target_type", "target_id",
                             "reason", "detail"),
               audit_rows(max(1_000, N * 2 // 5), now, N, batches))  # fmt: skip
    selfcheck_rows(loader, people, now)
    loader.finish()
    build_s = time.perf_counter() - t0

    batch = subject_of(plans, now)
    item = next(
        (
            i
            for i in range(batch.first_item, batch.first_item + batch.count)
            if fate_of(i, i - batch.first_item + 1, False)[0] == "failed"
        ),
        batch.first_item,
    )
    return Dataset(loader.counts, build_s, loader.seconds, batch.id, item)


def follow_ups(loader: Loader, facts: ItemFacts, plans: list[BatchPlan], now: Any) -> None:
    """Correction lists (the returned items), treasury refunds (some failed items), operator
    cases (the open items, and closed ones over the years), SMS notices (the last year)."""
    lists: list[tuple[Any, ...]] = []
    list_items: list[tuple[Any, ...]] = []
    for n, ((year, region), items) in enumerate(sorted(facts.returned.items()), start=1):
        at = dt.datetime(year, 12, 20, 2, 0, 0)
        lists.append(
            (n, min(at, now), f"op{region[-3:]}", False, f"更正清单_{region}_{year}.xlsx",
             hashlib.sha256(f"list-{n}".encode()).hexdigest(), 1, len(items),
             sum(f for _, f in items), min(at, now), f"op{region[-3:]}", len(items))
        )  # fmt: skip
        list_items += [(len(list_items) + k + 1, n, i) for k, (i, _) in enumerate(items)]
    loader.put("correction_lists", ("id", "created_at", "created_by", "unmasked", "file_name",
               "sha256", "sheet_count", "item_count", "amount_fen", "returned_at",
               "returned_by", "returned_count"), lists)  # fmt: skip
    loader.put("correction_list_items", ("id", "list_id", "item_id"), list_items)

    refunds: list[tuple[Any, ...]] = []
    refund_items: list[tuple[Any, ...]] = []
    groups = [(k, v) for k, v in sorted(facts.failed.items()) if k[1] in REGIONS[:3]]
    for n, ((year, region), items) in enumerate(groups, start=1):
        proposed = n > len(groups) - 2  # the newest two still wait for a supervisor
        chosen = items[:25]
        at = min(dt.datetime(year, 12, 28, 2, 0, 0), now)
        refunds.append(
            (n, "proposed" if proposed else "rejected", year, PAYER_ACCOUNT, at.date(),
             sum(f for _, f in chosen), len(chosen), "逾期未更正，退回国库", f"op{region[-3:]}",
             at, None if proposed else "sup", None if proposed else at + dt.timedelta(days=1))
        )  # fmt: skip
        for i, fen in chosen:
            refund_items.append(
                (len(refund_items) + 1, n, i, fen, "failed", i if proposed else None)
            )
    loader.put("treasury_refunds", ("id", "state", "fiscal_year", "payer_account", "cutoff",
               "amount_fen", "item_count", "reason", "proposed_by", "proposed_at", "decided_by",
               "decided_at"), refunds)  # fmt: skip
    loader.put("treasury_refund_items", ("id", "refund_id", "item_id", "amount_fen",
               "from_state", "active_item_id"), refund_items)  # fmt: skip

    cases: list[tuple[Any, ...]] = []
    for item_id, batch_id in facts.open_cases:
        cases.append((len(cases) + 1, "outcome_unknown", "open", item_id, batch_id, batch_id,
                      "多次查询仍无法确认文件是否送达", now - dt.timedelta(hours=6), None, None,
                      None))  # fmt: skip
    rng = random.Random(11)
    old = [b for b in plans if b.count and b.state == "reconciled"]
    for b in rng.sample(old, min(300, len(old))):
        at = b.received_at + dt.timedelta(days=1)
        cases.append((len(cases) + 1, "outcome_unknown", "closed", None, b.id, b.id,
                      "多次查询仍无法确认文件是否送达", at, at + dt.timedelta(days=1), "sup",
                      "银行确认已收到文件"))  # fmt: skip
    cases.sort(key=lambda c: c[7])
    cases = [(n, *c[1:]) for n, c in enumerate(cases, start=1)]
    loader.put("operator_cases", ("id", "kind", "state", "item_id", "batch_id",
               "outbound_file_id", "summary", "opened_at", "closed_at", "closed_by",
               "close_reason"), cases)  # fmt: skip

    def sms() -> Iterator[tuple[Any, ...]]:
        for n, (item_id, kind, at) in enumerate(facts.sms, start=1):
            roll = n % 200
            state = "delivered"
            code, error = "DELIVRD", None
            if roll == 1:
                state, code, error = "failed", "UNDELIV", None
            elif roll == 2:
                state, code, error = "rejected", "isv.MOBILE_NUMBER_ILLEGAL", "recipient: 号码无效"
            elif n % 5_000 == 3:  # refused for our own configuration: the page's banner
                state, code = "rejected", "isv.SMS_TEMPLATE_ILLEGAL"
                error = "configuration: 模板不合法"
            sent = at + dt.timedelta(minutes=5)
            yield (n, item_id, kind, f"SMS{n:012d}", state, "aliyun", "SMS_000001",
                   f"P{n:012d}", 1, 0, sent, at, sent, code, error, sent)  # fmt: skip

    loader.put("sms_notices", SMS_COLUMNS, sms())


SMS_COLUMNS = (
    "id", "item_id", "notice_type", "out_id", "state", "provider", "template_id",
    "provider_ref", "attempts", "queries", "next_attempt_at", "created_at", "sent_at",
    "last_code", "last_error", "final_at",
)  # fmt: skip


def selfcheck_rows(loader: Loader, people: list[Person], now: dt.datetime) -> None:
    """Quarterly self-check reports of the last ten years, ~100 findings each."""
    rng = random.Random(13)
    reports: list[tuple[Any, ...]] = []
    findings: list[tuple[Any, ...]] = []
    for q in range(4 * YEARS):
        until = (now - dt.timedelta(days=91 * (4 * YEARS - 1 - q))).date()
        since = until - dt.timedelta(days=365)
        counts = {"shared_account": 0, "duplicate_claim": 0, "repeated_name_mismatch": 0,
                  "account_changed": 0, "implausible_age": 0}  # fmt: skip
        for _ in range(100):
            kind = rng.choice(("shared_account", "repeated_name_mismatch"))
            counts[kind] += 1
            p = rng.choice(people)
            region = rng.choice(REGIONS)
            ids = sorted(rng.sample(range(1, N + 1), 3))
            detail = (
                {"people": 3, "items": 3, "batches": 2}
                if kind == "shared_account"
                else {"failures": 3, "batches": 3, "people": 1}
            )
            findings.append((len(findings) + 1, q + 1, kind, p.account_masked, p.account_bidx,
                             ids, [region], 3 * 20_000, detail))  # fmt: skip
        at = dt.datetime.combine(until, dt.time(18, 0))
        reports.append((q + 1, "quarterly", "worker", at, at + dt.timedelta(minutes=3), since,
                        until, counts, 100))  # fmt: skip
    loader.put("selfcheck_reports", ("id", "trigger", "requested_by", "started_at",
               "finished_at", "period_from", "period_to", "counts", "total_findings"),
               reports)  # fmt: skip
    loader.put("selfcheck_findings", ("id", "report_id", "kind", "subject_masked",
               "subject_bidx", "item_ids", "region_codes", "amount_fen", "detail"),
               findings)  # fmt: skip


# --- measuring -------------------------------------------------------------------------------


def login(ctx: Context, username: str) -> Any:
    from tests.gateway.dashboard.support import DashClient

    client = DashClient(ctx)
    answer = client.login(username, PASSWORD)
    assert answer.status_code == 303, answer.text[:500]
    assert "/login" not in answer.headers["location"], answer.headers["location"]
    return client


def get_page(client: Any, path: str) -> Any:
    """One request; anything but a 200 (a redirect to the login, an error page) fails."""
    answer = client.http.get("/dashboard" + path, follow_redirects=False)
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"
    return answer


@dataclass
class Statement:
    ms: float
    sql: str
    params: Any


def record_sql(ctx: Context, client: Any, path: str) -> list[tuple[str, Any]]:
    """Every SQL statement (and its parameters) one more request of ``path`` executes."""
    recorded: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        recorded.append((statement, parameters))

    event.listen(ctx.engine, "before_cursor_execute", record)
    try:
        get_page(client, path)
    finally:
        event.remove(ctx.engine, "before_cursor_execute", record)
    return recorded


def slowest_statements(
    ctx: Context, recorded: list[tuple[str, Any]], top: int = 3
) -> list[Statement]:
    """A page's slowest queries: each SELECT it ran is run again on its own and timed to its
    last row (SQLite does most of an aggregate's work while the rows are fetched, not in
    ``execute``)."""
    timed: list[Statement] = []
    with ctx.engine.connect() as conn:
        for statement, parameters in recorded:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            t0 = time.perf_counter()
            conn.exec_driver_sql(statement, parameters).all()
            timed.append(Statement((time.perf_counter() - t0) * 1000, statement, parameters))
        conn.rollback()
    return sorted(timed, key=lambda s: -s.ms)[:top]


def explain(ctx: Context, st: Statement) -> list[str]:
    sqlite = ctx.engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    with ctx.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + st.sql, st.params).all()
    return [" ".join(str(c) for c in r[-1:]) if sqlite else str(r[0]) for r in rows]


def measure(ctx: Context, data: Dataset) -> list[dict[str, Any]]:
    with session_scope(ctx.sessions) as s:
        from gateway.dashboard.accounts import create_account

        for username, (name, role, regions) in VIEWERS.items():
            create_account(
                s, ctx.settings, username=username, real_name=name, role=role, regions=regions,
                password=PASSWORD, created_by="bench", must_change_password=False,
            )  # fmt: skip
    clients = {username: login(ctx, username) for username in VIEWERS}
    results: list[dict[str, Any]] = []
    for template, viewers in PAGES:
        path = template.format(batch=data.batch_id, item=data.item_id, actor=AUDIT_ACTOR)
        for viewer in viewers:
            client = clients[viewer]
            get_page(client, path)  # warm-up
            times = []
            size = 0
            for _ in range(RUNS):
                t0 = time.perf_counter()
                answer = get_page(client, path)
                times.append((time.perf_counter() - t0) * 1000)
                size = len(answer.content)
            row: dict[str, Any] = {
                "page": template,
                "path": path,
                "viewer": viewer,
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "bytes": size,
            }
            statements = record_sql(ctx, client, path)
            row["queries"] = len(statements)
            if row["median_ms"] > SLOW_MS:
                row["slowest_sql"] = [
                    {"ms": st.ms, "sql": st.sql, "plan": explain(ctx, st)}
                    for st in slowest_statements(ctx, statements)
                ]
            results.append(row)
            print(
                f"  {template:<30} {viewer:<9} median {row['median_ms']:8.1f} ms"
                f"  max {row['max_ms']:8.1f} ms  {size:>9,} B  {row['queries']:>4} SQL",
                flush=True,
            )
    return results


# --- the run ---------------------------------------------------------------------------------


def pg_available() -> bool:
    try:
        engine = create_engine(make_url(PG).set(drivername="postgresql+psycopg"))
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def _big_cache(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA cache_size=-262144")  # 256 MiB


def bench_backend(label: str, url: str, profiles: Path) -> dict[str, Any]:
    print(f"== {label}: building a county's ten years ({N:,} items) …", flush=True)
    upgrade(url, "heads")
    ctx = Context.build(Settings(environment="test", database_url=url, bank_profiles_file=profiles))
    try:
        # a separate engine for the load (a big page cache on SQLite), disposed before the
        # pages are measured on the context's own
        load_engine = make_engine(url)
        if load_engine.dialect.name == "sqlite":
            event.listen(load_engine, "connect", _big_cache)
        try:
            data = build(ctx, load_engine)
        finally:
            load_engine.dispose()
        print(f"  built in {data.build_s:.1f} s")
        for name, n in data.counts.items():
            print(f"    {name:<24} {n:>10,} rows  {data.seconds[name]:6.1f} s")
        print(f"  pages (batch {data.batch_id}, item {data.item_id}; {RUNS} runs after a warm-up)")
        pages = measure(ctx, data)
    finally:
        ctx.close()
    return {
        "backend": label,
        "items": N,
        "build_s": data.build_s,
        "rows": data.counts,
        "load_s": data.seconds,
        "batch_id": data.batch_id,
        "item_id": data.item_id,
        "pages": pages,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    viewers = list(VIEWERS)
    for r in results:
        print(f"\n== {r['backend']}: {r['items']:,} items, built in {r['build_s']:.1f} s")
        rows = ", ".join(f"{k} {v:,}" for k, v in r["rows"].items())
        print(f"  rows: {rows}")
        print("  per viewer: median / max ms, response bytes, SQL statements per request")
        head = "".join(f" | {v:>24} {'bytes':>7} {'SQL':>3}" for v in viewers)
        print(f"  {'page':<30}{head}")
        by_page: dict[str, dict[str, dict[str, Any]]] = {}
        for p in r["pages"]:
            by_page.setdefault(p["page"], {})[p["viewer"]] = p
        for page, cells in by_page.items():
            line = f"  {page:<30}"
            for v in viewers:
                c = cells.get(v)
                line += (
                    f" | {c['median_ms']:>11.1f} / {c['max_ms']:>8.1f}"
                    f" {c['bytes']:>7,} {c['queries']:>3}"
                    if c
                    else f" | {'-':>24} {'':>7} {'':>3}"
                )
            print(line)
        for p in r["pages"]:
            if "slowest_sql" not in p:
                continue
            print(
                f"\n  SLOW {p['path']} ({p['viewer']}): median {p['median_ms']:.0f} ms,"
                f" {p['queries']} SQL statements; the slowest SELECTs run alone:"
            )
            for st in p["slowest_sql"]:
                print(f"  -- {st['ms']:.1f} ms\n    {st['sql']}")
                for plan_line in st["plan"]:
                    print(f"      {plan_line}")


def main() -> None:
    from gateway.kit.logging import configure_logging

    configure_logging(json=False, level="WARNING")
    warnings.filterwarnings("ignore", message=".*starlette.testclient")
    work = Path(tempfile.mkdtemp(prefix="gw-bench-dash-"))
    try:
        run(work)
    finally:
        if os.environ.get("BENCH_DASH_KEEP"):
            print(f"kept the SQLite database and keys in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> None:
    keys = work / "keys"
    init_dev_keys(keys)
    profiles = write_profiles(work, keys, 9)
    results = [bench_backend("sqlite", f"sqlite:///{work / 'dashboard.db'}", profiles)]
    if pg_available():
        from tests.databases import PostgresDatabases

        databases = PostgresDatabases(PG)
        name = databases.create_empty()
        try:
            results.append(bench_backend("postgresql", databases.url_of(name), profiles))
        finally:
            if os.environ.get("BENCH_DASH_KEEP"):
                print(f"kept the PostgreSQL database {name}")
            else:
                databases.drop(name)
            databases.close()
    else:
        print("PostgreSQL not reachable: skipping its figures\n")
    print_table(results)
    out = ROOT / ".bench" / "dashboard.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"results": results}, indent=1, ensure_ascii=False, default=str))
    print(f"\nfigures saved to {out}")


if __name__ == "__main__":
    main()
