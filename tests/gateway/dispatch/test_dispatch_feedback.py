"""Dispatch and feedback against the mock bank over real SFTP on loopback, with real
signatures, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.batches.models import Batch, ItemEventRecord, PaymentItem
from gateway.certs import DEV_KEY_FILES
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.dispatch.service import deliver_one, plan_one
from gateway.feedback.models import InboundFile, ItemResult, OperatorCase
from gateway.feedback.service import take_result_file
from gateway.payments.states import BatchState, FileState, ItemState
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit


def _registry(ps: list[Any], faults: dict[int, str]) -> list[dict[str, str]]:
    out = []
    for i, p in enumerate(ps):
        kind = faults.get(i, "active")
        if kind == "missing":
            continue
        out.append(
            {
                "account_no": p.account_no,
                "name": p.name + "某" if kind == "name" else p.name,
                "id_number": p.id_number,
                "status": kind if kind in {"frozen", "closed"} else "active",
            }
        )
    return out


PEOPLE = persons(12)
FAULTS = {2: "missing", 4: "name", 6: "frozen", 8: "closed"}


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    return _registry(PEOPLE, FAULTS)


def test_batch_goes_to_the_bank_and_every_result_comes_back(ctx: Context, bank: Any) -> None:
    submit(ctx, payload("D-1", PEOPLE))
    final = drive(ctx)
    assert final == {"paid": 8, "failed": 4}
    with ctx.sessions() as s:
        failed = dict(
            s.execute(
                select(PaymentItem.seq, PaymentItem.reason_code).where(
                    PaymentItem.state == ItemState.FAILED
                )
            ).all()
        )
        batch = s.scalar(select(Batch))
        paid = s.scalars(select(PaymentItem).where(PaymentItem.state == ItemState.PAID)).all()
        f = s.scalar(select(OutboundFile))
    assert failed == {
        3: "account_not_found",
        5: "name_mismatch",
        7: "account_frozen",
        9: "account_closed",
    }
    assert batch is not None and BatchState(batch.state).is_settled()
    assert all(p.bank_ref and p.paid_at for p in paid)
    assert f is not None and f.state == FileState.DELIVERED
    # the bank's own ledger agrees: each paid item credited once
    summary = bank.ledger.summary()
    assert summary["credits"] == 8
    assert summary["double_credits"] == 0
    assert summary["amount_credited_fen"] == sum(p.amount_fen for p in paid)
    # the file on the far side is byte-identical to what we recorded
    remote = (bank.inbox / f.file_name).read_bytes()
    assert remote == ctx.pii.decrypt_bytes("outbound-file", f.content_enc)


def test_every_transition_has_an_event(ctx: Context, bank: Any) -> None:
    submit(ctx, payload("D-2", PEOPLE[:3]))
    drive(ctx)
    with ctx.sessions() as s:
        for item in s.scalars(select(PaymentItem)):
            trail = [
                (e.from_state, e.to_state)
                for e in s.scalars(
                    select(ItemEventRecord)
                    .where(ItemEventRecord.item_id == item.id)
                    .order_by(ItemEventRecord.id)
                )
            ]
            assert trail[0] == (None, "accepted")
            for (_, a), (b, _) in itertools.pairwise(trail):
                assert a == b  # an unbroken chain
            assert trail[-1][1] == item.state


def test_result_file_applied_twice_changes_nothing(ctx: Context, bank: Any) -> None:
    submit(ctx, payload("D-3", PEOPLE[:5]))
    drive(ctx)
    name = next(p.name for p in bank.outbox.iterdir() if p.name.startswith("RET_"))
    name = name.removesuffix(".sig")
    data = (bank.outbox / name).read_bytes()
    sig = (bank.outbox / (name + ".sig")).read_bytes()
    before = states(ctx)
    profile = ctx.profiles["hnrcu"]
    assert take_result_file(ctx, profile, name, data, sig, "test") is None
    assert take_result_file(ctx, profile, "RENAMED_" + name, data, sig, "test") is None
    # polling again finds nothing new
    run_cycle(ctx, "test")
    assert states(ctx) == before
    with ctx.sessions() as s:
        # the result file and the account movements file (ACT_…), each once
        assert s.scalar(select(func.count()).select_from(InboundFile)) == 2
        assert s.scalar(select(func.count()).select_from(ItemResult)) == 5


def _bank_signed(keys: Path, data: bytes) -> bytes:
    from mock_bank.signing import load_private_key, sign_file

    return sign_file(data, load_private_key(keys / DEV_KEY_FILES.bank_signing_key), "mockbank-dev")


def _paid_result_for_queued_items(ctx: Context) -> bytes:
    """A result file reporting every stored item paid (bytes from the mock bank's codec)."""
    from mock_bank import fileformat

    with ctx.sessions() as s:
        items = s.scalars(select(PaymentItem).order_by(PaymentItem.seq)).all()
        serial = s.scalar(select(Batch.serial)) or ""
    return fileformat.render_result(
        batch_serial=serial,
        file_no=1,
        items=[
            fileformat.ResultItem(
                sequence=it.seq,
                item_serial=it.serial,
                account_no=ctx.pii.decrypt("account_no", it.account_enc),
                amount_fen=it.amount_fen,
                status="S",
                code="0000",
                message="成功",
                bank_ref=f"R{it.seq}",
                processed_at=dt.datetime(2026, 11, 28, 10, 0, 0),
            )
            for it in items
        ],
        processing_date=dt.date(2026, 11, 28),
    )


def _result_lines(bank: Any) -> tuple[str, list[bytes]]:
    name = next(p.name for p in bank.outbox.iterdir() if p.name.startswith("RET_"))
    name = name.removesuffix(".sig")
    return name, (bank.outbox / name).read_bytes().split(b"\r\n")


def test_conflicting_result_is_recorded_not_applied(
    ctx: Context, bank: Any, dev_keys: Path
) -> None:
    submit(ctx, payload("D-4", PEOPLE[:2]))
    drive(ctx)
    from mock_bank import fileformat

    name, _ = _result_lines(bank)
    parsed = ctx.profiles["hnrcu"].format.parse_result((bank.outbox / name).read_bytes())
    flipped = [
        fileformat.ResultItem(
            sequence=r.seq,
            item_serial=r.serial,
            account_no=r.account_no,
            amount_fen=r.amount_fen,
            status="F",
            code="E104",
            message="账户已销户",
            bank_ref="",
            processed_at=dt.datetime(2026, 11, 28, 10, 0, 0),
        )
        for r in parsed.items
    ]
    data = fileformat.render_result(
        batch_serial=parsed.batch_serial,
        file_no=1,
        items=flipped,
        processing_date=dt.date(2026, 11, 28),
    )
    applied = take_result_file(
        ctx, ctx.profiles["hnrcu"], "RET_late.txt", data, _bank_signed(dev_keys, data), "test"
    )
    assert applied == 0
    assert states(ctx) == {"paid": 2}
    with ctx.sessions() as s:
        cases = s.scalars(select(OperatorCase)).all()
        dispositions = s.scalars(select(ItemResult.disposition).order_by(ItemResult.id)).all()
    assert [c.kind for c in cases] == ["conflicting_result", "conflicting_result"]
    assert dispositions == ["applied", "applied", "conflict", "conflict"]


def test_forged_result_file_is_refused(ctx: Context, bank: Any, tmp_path: Path) -> None:
    """A result signed by anyone but the bank changes nothing."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mock_bank.signing import sign_file

    bank.stop()  # the bank never answers: the forger tries to
    submit(ctx, payload("D-5", PEOPLE[:2]))
    plan_one(ctx, "t")
    data = _paid_result_for_queued_items(ctx)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sig = sign_file(data, forger, "mockbank-dev")
    assert take_result_file(ctx, ctx.profiles["hnrcu"], "RET_x.txt", data, sig, "t") == -1
    # tampered bytes under the bank's real signature are refused too
    assert states(ctx) == {"queued": 2}
    with ctx.sessions() as s:
        assert s.scalar(select(InboundFile.state)) == "rejected"
        assert s.scalar(select(OperatorCase.kind)) == "result_file_invalid"
    del tmp_path, serialization


def test_tampered_result_under_real_signature_refused(ctx: Context, bank: Any) -> None:
    submit(ctx, payload("D-6", PEOPLE[:2]))
    drive(ctx)
    name, lines = _result_lines(bank)
    data = b"\r\n".join(lines).replace(b"0000", b"0001", 1)
    sig = (bank.outbox / (name + ".sig")).read_bytes()
    assert take_result_file(ctx, ctx.profiles["hnrcu"], name + "2", data, sig, "t") == -1


def test_changed_host_key_refuses_to_connect_and_escalates(
    ctx: Context, bank: Any, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    wrong = tmp_path / "wrong_host.pub"
    wrong.write_bytes(other + b" impostor\n")
    profile = ctx.profiles["hnrcu"]
    ctx.profiles["hnrcu"] = dataclasses.replace(
        profile, transport_config={**profile.transport_config, "host_public_key": str(wrong)}
    )
    submit(ctx, payload("D-7", PEOPLE[:2]))
    plan_one(ctx, "t")
    assert deliver_one(ctx, "t")
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
        case = s.scalar(select(OperatorCase))
    assert f is not None and f.state == FileState.ESCALATED
    assert case is not None and case.kind == "host_key"
    assert "host key" in (case.evidence or "").lower()
    assert list(bank.inbox.iterdir()) == []  # nothing was sent
    assert states(ctx) == {"operator_case": 2}


def test_bank_down_is_retried_later_not_lost(ctx: Context, bank: Any) -> None:
    bank.stop()
    submit(ctx, payload("D-8", PEOPLE[:2]))
    plan_one(ctx, "t")
    assert deliver_one(ctx, "t")
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
    assert f is not None and f.state == FileState.PLANNED
    assert f.attempts == 1 and "NeverSent" in (f.last_error or "")
    assert f.next_attempt_at > f.created_at
    assert states(ctx) == {"queued": 2}


def test_split_into_files_when_the_bank_caps_items(ctx: Context, bank: Any) -> None:
    profile = ctx.profiles["hnrcu"]
    ctx.profiles["hnrcu"] = dataclasses.replace(
        profile, format_config={**profile.format_config, "max_items_per_file": 5}, _format=None
    )
    submit(ctx, payload("D-9", PEOPLE))
    assert drive(ctx) == {"paid": 8, "failed": 4}
    with ctx.sessions() as s:
        files = s.scalars(select(OutboundFile).order_by(OutboundFile.file_no)).all()
    assert [(f.file_no, f.item_count) for f in files] == [(1, 5), (2, 5), (3, 2)]
    assert bank.ledger.summary()["double_credits"] == 0


def test_result_under_another_files_name_refused(ctx: Context, bank: Any, dev_keys: Path) -> None:
    bank.stop()
    submit(ctx, payload("D-10", PEOPLE[:2]))
    plan_one(ctx, "t")
    data = _paid_result_for_queued_items(ctx)
    sig = _bank_signed(dev_keys, data)
    profile = ctx.profiles["hnrcu"]
    other = "RET_0000000000000000_01.txt"
    assert take_result_file(ctx, profile, other, data, sig, "t") == -1
    assert states(ctx) == {"queued": 2}
    with ctx.sessions() as s:
        error = s.scalar(select(InboundFile.error)) or ""
    assert "names batch 0000000000000000" in error
