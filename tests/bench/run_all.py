"""``make bench``: throughput baselines for a 100,000-item batch. Prints figures; asserts
nothing about time.

1. intake — the upstream JSON streamed, validated, encrypted and written in bulk
   (``IntakeService.submit``, the same code the API endpoint calls);
2. render + sign — the bank file for all items (format + RSA-PSS signature), and the whole
   planning step (decrypt, render, sign, encrypt, persist, move states);
3. apply results — a signed result file for every item verified, parsed and applied;
4. PostgreSQL's own ``COPY`` of the same payment rows, as the floor to compare intake with.

Each runs on SQLite and, when reachable, on PostgreSQL (``GATEWAY_BENCH_POSTGRES_URL``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway.batches.models import Batch, PaymentItem  # noqa: E402
from gateway.batches.service import IntakeService  # noqa: E402
from gateway.certs import DEV_KEY_FILES, init_dev_keys  # noqa: E402
from gateway.context import Context  # noqa: E402
from gateway.demo.banks import write_profiles  # noqa: E402
from gateway.dispatch.service import plan_one  # noqa: E402
from gateway.feedback.service import take_result_file  # noqa: E402
from gateway.kit.identity import id_check_char, luhn_check_digit  # noqa: E402
from gateway.kit.migrate import upgrade  # noqa: E402
from gateway.payments.states import ItemEvent  # noqa: E402
from gateway.payments.transitions import move_items  # noqa: E402
from gateway.ports import RequestHeader, RequestItem  # noqa: E402
from gateway.settings import Settings  # noqa: E402

N = int(os.environ.get("BENCH_ITEMS", "100000"))
PG = os.environ.get("GATEWAY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SURNAMES = "王李张刘陈杨黄赵周吴徐孙马胡朱郭何罗高林"
GIVEN = "秋菊建国桂英德华淑芬志强玉兰红梅春生冬梅海燕"


def make_payload(n: int) -> bytes:
    rng = random.Random(1)
    items = []
    for seq in range(1, n + 1):
        # unique people: one birth date per thousand, the sequence code within it
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=seq // 1000)
        first17 = f"430621{birth:%Y%m%d}{seq % 1000:03d}"
        card = f"621799{seq:012d}"
        items.append(
            {
                "seq": seq,
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                "id_number": first17 + id_check_char(first17),
                "account_no": card + luhn_check_digit(card),
                "amount_fen": 10000 + seq % 100,
                "phone": f"138{seq:08d}",
            }
        )
    header = {
        "batch_no": f"BENCH-{uuid.uuid4().hex[:8]}",
        "region_code": "430621101",
        "subsidy_code": "GDBH",
        "subsidy_name": "耕地地力保护补贴",
        "period": "2026",
        "fiscal_year": 2026,
        "payer_account": "43001700062050500001",
        "payer_name": "岳阳县财政局",
        "bank_profile": "hnrcu",
        "item_count": n,
        "total_amount_fen": sum(i["amount_fen"] for i in items),
    }
    return json.dumps({"header": header, "items": items}, ensure_ascii=False).encode()


def pg_available() -> bool:
    try:
        engine = create_engine(make_url(PG).set(drivername="postgresql+psycopg"))
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} items/s  ({seconds:6.2f} s)"


def bench_backend(label: str, url: str, keys: Path, work: Path, raw: bytes) -> dict[str, Any]:
    upgrade(url)
    profiles = write_profiles(work, keys, 9)
    ctx = Context.build(Settings(environment="test", database_url=url, bank_profiles_file=profiles))
    out: dict[str, Any] = {"backend": label, "items": N}
    sha = hashlib.sha256(raw).hexdigest()
    t0 = time.perf_counter()
    answer = IntakeService(ctx.sessions, ctx.pii, ctx.profiles).submit(
        "county-finance", io.BytesIO(raw), sha
    )
    out["intake_s"] = time.perf_counter() - t0
    assert answer.status_code == 201, answer.body["errors"][:3]

    # render + sign alone, on decrypted items (what the planning step feeds the format)
    profile = ctx.profiles["hnrcu"]
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch))
        assert batch is not None
        rows = s.execute(
            select(
                PaymentItem.seq,
                PaymentItem.serial,
                PaymentItem.account_enc,
                PaymentItem.name_enc,
                PaymentItem.id_number_enc,
                PaymentItem.amount_fen,
            ).order_by(PaymentItem.seq)
        ).all()
    items = [
        RequestItem(
            seq=r[0],
            serial=r[1],
            account_no=ctx.pii.decrypt("account_no", r[2]),
            name=ctx.pii.decrypt("name", r[3]),
            id_number=ctx.pii.decrypt("id_number", r[4]),
            amount_fen=r[5],
        )
        for r in rows
    ]
    per_file = profile.format.max_items_per_file
    chunks = [items[i : i + per_file] for i in range(0, len(items), per_file)]

    def header_for(file_no: int, chunk: list[RequestItem]) -> RequestHeader:
        assert batch is not None
        return RequestHeader(
            batch_serial=batch.serial or "",
            file_no=file_no,
            payer_account=batch.payer_account,
            subsidy_code=batch.subsidy_code,
            subsidy_name=batch.subsidy_name,
            period=batch.period,
            item_count=len(chunk),
            total_fen=sum(i.amount_fen for i in chunk),
            created_on=dt.date.today(),
        )

    t0 = time.perf_counter()
    size = 0
    for file_no, chunk in enumerate(chunks, start=1):
        numbered = [dataclasses.replace(it, seq=n) for n, it in enumerate(chunk, start=1)]
        data = profile.format.render_request(header_for(file_no, chunk), numbered)
        profile.signer.sign(data)
        size += len(data)
    out["render_sign_s"] = time.perf_counter() - t0
    out["file_bytes"] = size
    out["files"] = len(chunks)

    t0 = time.perf_counter()
    assert plan_one(ctx, "bench")
    out["plan_s"] = time.perf_counter() - t0
    with ctx.sessions() as s:
        move_items(s, PaymentItem.batch_id == batch.id, ItemEvent.DELIVER, "bench")
        s.commit()

    # the bank's answer, written by the mock bank's own codec and signed with its key
    from mock_bank import fileformat
    from mock_bank.signing import load_private_key, sign_file

    now = dt.datetime(2026, 11, 28, 10, 0, 0)
    bank_key = load_private_key(keys / DEV_KEY_FILES.bank_signing_key)
    signed = []
    for file_no, chunk in enumerate(chunks, start=1):
        results = [
            fileformat.ResultItem(
                sequence=n,
                item_serial=i.serial,
                account_no=i.account_no,
                amount_fen=i.amount_fen,
                status="S" if i.seq % 50 else "F",
                code="0000" if i.seq % 50 else "E104",
                message="成功" if i.seq % 50 else "账户已销户",
                bank_ref=f"MB{i.seq:012d}",
                processed_at=now,
            )
            for n, i in enumerate(chunk, start=1)
        ]
        result = fileformat.render_result(
            batch_serial=batch.serial or "",
            file_no=file_no,
            items=results,
            processing_date=now.date(),
        )
        signed.append((file_no, result, sign_file(result, bank_key, "mockbank-dev")))
    t0 = time.perf_counter()
    applied = 0
    for file_no, result, sig in signed:
        applied += take_result_file(ctx, profile, f"RET_{file_no}.txt", result, sig, "bench") or 0
    out["apply_s"] = time.perf_counter() - t0
    assert applied == N, applied
    ctx.close()
    return out


def copy_baseline(url: str, raw: bytes) -> float:
    """COPY the same number of payment rows (same column shapes) into a scratch table."""
    import psycopg

    from gateway.kit.pii import mask_account, mask_id_number, mask_name

    settings = Settings(environment="test")
    pii = settings.pii
    data = json.loads(raw)
    rows = [
        (
            i["seq"],
            f"BENCHSERIAL{i['seq']:013d}",
            "accepted",
            i["amount_fen"],
            pii.encrypt("name", i["name"]),
            mask_name(i["name"]),
            pii.encrypt("id_number", i["id_number"]),
            pii.blind_index("id_number", i["id_number"]),
            mask_id_number(i["id_number"]),
            pii.encrypt("account_no", i["account_no"]),
            pii.blind_index("account_no", i["account_no"]),
            mask_account(i["account_no"]),
        )
        for i in data["items"]
    ]
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "CREATE TEMP TABLE copy_bench (seq int, serial text, state text, amount_fen bigint,"
            " name_enc text, name_masked text, id_enc text, id_bidx text, id_masked text,"
            " acct_enc text, acct_bidx text, acct_masked text)"
        )
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY copy_bench FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        conn.commit()
        return time.perf_counter() - t0


def main() -> None:
    from gateway.kit.logging import configure_logging

    configure_logging(json=False, level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    keys = work / "keys"
    init_dev_keys(keys)
    print(f"building a {N:,}-item batch …", flush=True)
    raw = make_payload(N)
    print(f"payload: {len(raw) / 1e6:.1f} MB of JSON\n", flush=True)
    results = [bench_backend("sqlite", f"sqlite:///{work / 'bench.db'}", keys, work, raw)]
    copy_s: float | None = None
    if pg_available():
        from tests.databases import PostgresDatabases

        databases = PostgresDatabases(PG)
        name = databases.create_empty()
        url = databases.url_of(name)
        try:
            results.append(bench_backend("postgresql", url, keys, work, raw))
            copy_s = copy_baseline(url, raw)
        finally:
            databases.drop(name)
            databases.close()
    else:
        print("PostgreSQL not reachable: skipping its figures and the COPY baseline\n")
    for r in results:
        print(
            f"== {r['backend']} ({r['items']:,} items, {r['files']} bank files,"
            f" {r['file_bytes'] / 1e6:.1f} MB)"
        )
        print(f"  intake (stream, validate, encrypt, bulk insert) {rate(N, r['intake_s'])}")
        print(f"  render + sign bank file                          {rate(N, r['render_sign_s'])}")
        print(f"  plan step (decrypt, render, sign, persist)       {rate(N, r['plan_s'])}")
        print(f"  apply results (verify, parse, apply)             {rate(N, r['apply_s'])}")
    if copy_s is not None:
        print(f"== postgresql COPY of the same {N:,} rows (pre-encrypted) {rate(N, copy_s)}")
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"results": results, "pg_copy_s": copy_s}, indent=1))
    print(f"\nfigures saved to {out}")


if __name__ == "__main__":
    main()
