"""A bank result file is known by its content, not by its name and size (issue 12): the
mock bank publishes a file again under the same name and with the same size — a signed new
version with a paid line now failed, or the genuine file after a tampered one — over real
SFTP on loopback, with real signatures, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.batches.models import PaymentItem
from gateway.certs import DEV_KEY_FILES
from gateway.context import Context
from gateway.feedback.models import InboundFile, ItemResult, OperatorCase, OutboxEntry
from gateway.feedback.service import poll_profile, take_result_file
from gateway.notifications.models import SmsNotice
from gateway.rework.models import AuditRecord
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

PEOPLE = persons(3, seed=1212)
OWNER = "test-worker"
RESULT_KIND = {"hnrcu": "RET_", "psbc": "P002_"}


def _faults(kind: str) -> str:
    # the later version waits for the test (MockBank.processor.republish_now)
    return (
        "\n[faults]\nseed = 12\nrepublish_after_seconds = 3600.0\n"
        f'[[faults.rules]]\nkind = "{kind}"\nnth = [1]\n'
    )


@pytest.fixture
def profile_name() -> str:
    return "hnrcu"


@pytest.fixture
def fault() -> str:
    return ""


@pytest.fixture
def bank_extra(fault: str) -> str:
    return _faults(fault) if fault else ""


@pytest.fixture
def any_bank(profile_name: str, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue({"hnrcu": "bank", "psbc": "iso_bank"}[profile_name])


@pytest.fixture
def gw(any_bank: Any, db_url: str, request: pytest.FixtureRequest) -> Context:
    """The gateway context (on each database backend), built after the bank so its profile
    points at the bank."""
    ctx: Context = request.getfixturevalue("ctx")
    return ctx


def _submit(ctx: Context, profile: str, no: str) -> None:
    body = payload(no, PEOPLE)
    body["header"]["bank_profile"] = profile
    submit(ctx, body)


def _versions(ctx: Context) -> list[InboundFile]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(InboundFile).where(InboundFile.kind == "result").order_by(InboundFile.id)
            )
        )


def _cycles_until_versions(ctx: Context, n: int) -> list[InboundFile]:
    def enough() -> list[InboundFile] | None:
        run_cycle(ctx, OWNER)
        found = _versions(ctx)
        return found if len(found) >= n else None

    return wait_until(
        enough,
        timeout=20.0,
        max_interval=0.05,
        what=lambda: f"{n} versions of the result file (have {len(_versions(ctx))})",
    )


def _cases(ctx: Context) -> list[OperatorCase]:
    with ctx.sessions() as s:
        return list(s.scalars(select(OperatorCase).order_by(OperatorCase.id)))


@pytest.mark.parametrize("profile_name", ["hnrcu", "psbc"])
@pytest.mark.parametrize("fault", ["republish_result_file"])
def test_a_new_version_with_a_paid_line_now_failed_is_read_and_opens_a_conflict(
    gw: Context, any_bank: Any, profile_name: str, fault: str
) -> None:
    _submit(gw, profile_name, f"V-{profile_name}")
    assert drive(gw, OWNER) == {"paid": 3}
    (first,) = _versions(gw)
    assert first.file_name.startswith(RESULT_KIND[profile_name])
    assert any_bank.processor.republish_now() == [first.file_name]
    assert (any_bank.outbox / first.file_name).stat().st_size == first.size

    first, second = _cycles_until_versions(gw, 2)
    # the same name and the same size, other bytes: a new version, read and applied by the
    # usual rules — the paid line now failed is a conflict, never a silent overwrite
    assert (second.file_name, second.size, second.state) == (first.file_name, first.size, "applied")
    assert second.sha256 != first.sha256 and second.applied_count == 0
    assert states(gw) == {"paid": 3}
    with gw.sessions() as s:
        rows = s.execute(
            select(ItemResult.serial, ItemResult.status, ItemResult.disposition)
            .where(ItemResult.inbound_file_id == second.id)
            .order_by(ItemResult.serial)
        ).all()
        first_item = s.scalar(select(PaymentItem).where(PaymentItem.seq == 1))
    assert first_item is not None
    assert [(r.status, r.disposition) for r in rows if r.serial == first_item.serial] == [
        ("failed", "conflict")
    ]
    assert sorted(r.disposition for r in rows if r.serial != first_item.serial) == [
        "duplicate",
        "duplicate",
    ]
    (case,) = _cases(gw)
    assert (case.kind, case.state, case.item_id) == ("conflicting_result", "open", first_item.id)
    assert case.inbound_file_id == second.id
    # the same version seen again changes nothing: no third version
    for _ in range(3):
        run_cycle(gw, OWNER)
    assert len(_versions(gw)) == 2
    assert any_bank.ledger.summary()["double_credits"] == 0


@pytest.mark.parametrize("profile_name", ["hnrcu", "psbc"])
@pytest.mark.parametrize("fault", ["tampered_result_file"])
def test_a_tampered_file_then_the_genuine_one_settles_every_item_without_an_operator(
    gw: Context, any_bank: Any, profile_name: str, fault: str
) -> None:
    _submit(gw, profile_name, f"T-{profile_name}")

    def escalated() -> bool:
        run_cycle(gw, OWNER)
        return states(gw) == {"operator_case": 3}

    wait_until(escalated, timeout=20.0, max_interval=0.05, what="the tampered file refused")
    (refused,) = _versions(gw)
    assert refused.state == "rejected" and "SignatureError" in (refused.error or "")
    (case,) = _cases(gw)
    assert (case.kind, case.state, case.inbound_file_id) == (
        "result_file_invalid",
        "open",
        refused.id,
    )

    assert any_bank.processor.republish_now() == [refused.file_name]
    assert drive(gw, OWNER) == {"paid": 3}  # no operator action
    refused, genuine = _versions(gw)
    assert (genuine.file_name, genuine.size) == (refused.file_name, refused.size)
    assert (genuine.state, genuine.applied_count) == ("applied", 3)
    (case,) = _cases(gw)  # closed by itself, saying why; no other case
    assert (case.state, case.closed_by) == ("closed", OWNER)
    assert case.close_reason is not None and refused.file_name in case.close_reason
    with gw.sessions() as s:
        audit = s.scalar(select(AuditRecord).where(AuditRecord.action == "case.auto_close"))
        sms = s.scalars(select(SmsNotice.notice_type)).all()
    assert audit is not None and audit.target_id == str(case.id) and audit.actor == OWNER
    assert sorted(sms) == ["paid", "paid", "paid"]
    assert any_bank.ledger.summary()["double_credits"] == 0


@pytest.mark.parametrize("fault", ["republish_result_file"])
def test_a_rewrite_within_the_same_second_is_found_by_its_signature(
    gw: Context, any_bank: Any, fault: str
) -> None:
    """SFTP times are whole seconds: a new version with the same size and the same time is
    found by reading the .sig once more a little later."""
    _submit(gw, "hnrcu", "S-1")
    assert drive(gw, OWNER) == {"paid": 3}
    (first,) = _versions(gw)
    data, sig = any_bank.outbox / first.file_name, any_bank.outbox / f"{first.file_name}.sig"
    before = {p: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (data, sig)}
    assert any_bank.processor.republish_now() == [first.file_name]
    for path, times in before.items():
        os.utime(path, ns=times)  # the listing now says exactly what it said
    _, second = _cycles_until_versions(gw, 2)
    assert (second.size, second.state) == (first.size, "applied")
    assert len([c for c in _cases(gw) if c.kind == "conflicting_result"]) == 1


def test_the_same_version_again_is_a_no_op_and_a_settled_outbox_is_not_downloaded(
    gw: Context, any_bank: Any
) -> None:
    _submit(gw, "hnrcu", "N-1")
    assert drive(gw, OWNER) == {"paid": 3}
    (first,) = _versions(gw)
    profile = gw.profiles["hnrcu"]
    with gw.sessions() as s:
        results = s.scalar(select(func.count()).select_from(ItemResult))
    path = any_bank.outbox / first.file_name
    st = path.stat()
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))  # touched: same bytes
    touched = poll_profile(gw, profile, OWNER)
    assert touched.files_seen == 1 and touched.files_applied == 0
    assert len(_versions(gw)) == 1  # recorded once
    with gw.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ItemResult)) == results

    # once settled (each file's .sig read once more, a little later), nothing is read
    def settled() -> bool:
        out = poll_profile(gw, profile, OWNER)
        assert out.files_seen == 0
        with gw.sessions() as s:
            return not s.scalar(
                select(func.count()).select_from(OutboxEntry).where(OutboxEntry.settled.is_(False))
            )

    wait_until(settled, timeout=20.0, max_interval=0.1, what="the settle checks")
    for _ in range(3):
        quiet = poll_profile(gw, profile, OWNER)
        assert (quiet.files_seen, quiet.signatures_checked) == (0, 0)
    assert len(_versions(gw)) == 1


def _bank_sign(keys: Path, data: bytes) -> bytes:
    from mock_bank.signing import load_private_key, sign_file

    return sign_file(data, load_private_key(keys / DEV_KEY_FILES.bank_signing_key), "mockbank-dev")


def test_a_version_refused_under_one_signature_is_judged_again_under_another(
    gw: Context, any_bank: Any, dev_keys: Path
) -> None:
    """A bank that writes the file before its .sig: read in between, the new bytes come
    with the old signature and are refused; with their own signature they are applied."""
    _submit(gw, "hnrcu", "G-1")
    assert drive(gw, OWNER) == {"paid": 3}
    (first,) = _versions(gw)
    from mock_bank import fileformat

    profile = gw.profiles["hnrcu"]
    parsed = profile.format.parse_result((any_bank.outbox / first.file_name).read_bytes())
    changed = fileformat.render_result(  # a new version: other bank references
        batch_serial=parsed.batch_serial,
        file_no=parsed.file_no,
        items=[
            fileformat.ResultItem(
                sequence=r.seq,
                item_serial=r.serial,
                account_no=r.account_no or "",
                amount_fen=r.amount_fen,
                status="S",
                code="0000",
                message="成功",
                bank_ref=f"NEWREF{r.seq}",
                processed_at=dt.datetime(2026, 11, 28, 10, 0, 0),
            )
            for r in parsed.items
        ],
        processing_date=dt.date(2026, 11, 28),
    )
    name = first.file_name.replace("RET_", "RET_X")  # any result name: the bytes count
    stale = (any_bank.outbox / f"{first.file_name}.sig").read_bytes()
    assert take_result_file(gw, profile, name, changed, stale, OWNER) == -1
    assert take_result_file(gw, profile, name, changed, stale, OWNER) is None  # once
    signed = _bank_sign(dev_keys, changed)
    assert take_result_file(gw, profile, name, changed, signed, OWNER) == 0  # duplicates
    versions = _versions(gw)
    assert len(versions) == 2 and versions[1].state == "applied"
    assert all(c.state == "closed" for c in _cases(gw) if c.kind == "result_file_invalid")
