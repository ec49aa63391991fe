"""Bank messages a test needs to inject: result files and camt.054 notices built with the
mock bank's own codecs and signed with the mock bank's development keys (so the gateway
verifies and records them exactly as if the bank had sent them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.batches.models import Batch, PaymentItem
from gateway.certs import DEV_KEY_FILES
from gateway.context import Context
from gateway.feedback.service import take_account_notice, take_result_file
from gateway.kit.clock import CHINA
from tests.waits import wait_until

BANK_NOW = dt.datetime(2026, 11, 28, 10, 0, 0)


def _sign(keys: Path, data: bytes, *, ecdsa: bool) -> bytes:
    from mock_bank.signing import ECDSA_P256_SHA256, RSA_PSS_SHA256, load_private_key, sign_file

    if ecdsa:
        key = load_private_key(keys / DEV_KEY_FILES.bank_ecdsa_key, ECDSA_P256_SHA256)
    else:
        key = load_private_key(keys / DEV_KEY_FILES.bank_signing_key, RSA_PSS_SHA256)
    return sign_file(data, key, "mockbank-dev")


def items_of(ctx: Context, batch_no: str) -> tuple[Batch, list[PaymentItem]]:
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch).where(Batch.batch_no == batch_no))
        assert batch is not None
        items = list(
            s.scalars(
                select(PaymentItem)
                .where(PaymentItem.batch_id == batch.id)
                .order_by(PaymentItem.seq)
            )
        )
    return batch, items


def fixed_width_result(
    ctx: Context,
    keys: Path,
    name: str,
    batch_serial: str,
    lines: list[dict[str, Any]],
) -> int | None:
    """A fixed-width result file with ``lines`` (serial, seq, account_no, amount_fen,
    status S/F, code), signed by the bank and taken by the gateway."""
    from mock_bank import fileformat

    data = fileformat.render_result(
        batch_serial=batch_serial,
        file_no=1,
        items=[
            fileformat.ResultItem(
                sequence=line["seq"],
                item_serial=line["serial"],
                account_no=line["account_no"],
                amount_fen=line["amount_fen"],
                status=line.get("status", "S"),
                code=line.get("code", "0000"),
                message=line.get("message", "成功"),
                bank_ref=line.get("bank_ref", f"X{line['seq']}"),
                processed_at=BANK_NOW,
            )
            for line in lines
        ],
        processing_date=BANK_NOW.date(),
    )
    sig = _sign(keys, data, ecdsa=False)
    return take_result_file(ctx, ctx.profiles["hnrcu"], name, data, sig, "test-bank")


def camt054_debit(
    ctx: Context,
    keys: Path,
    batch_serial: str,
    paid: list[tuple[str, int]],
    *,
    msg: str = "X1",
    booked_on: dt.date | None = None,
    account: str | None = None,
) -> int | None:
    """A camt.054 debit of the payer account for ``paid`` (serial, fen), as the ISO bank
    would send it, signed by the bank and taken by the gateway."""
    from mock_bank import iso20022 as iso

    request = iso.Pain001(
        msg_id=iso.message_id(batch_serial, 1),
        created=BANK_NOW.replace(tzinfo=CHINA),
        nb_of_txs=len(paid),
        ctrl_sum_fen=sum(f for _, f in paid),
        initiating_party="test",
        pmt_inf_id=iso.message_id(batch_serial, 1),
        requested_date=BANK_NOW.date(),
        debtor_name="test",
        debtor_account=account or _payer_account(ctx, batch_serial),
        debtor_agent="PSBCCNBJ",
        transactions=(),
    )
    data = iso.render_debit_notification(
        msg_id=f"C054{batch_serial}{msg}",
        created=BANK_NOW.replace(tzinfo=CHINA),
        payer_account=request.debtor_account,
        booking_date=booked_on or BANK_NOW.date(),
        bank_ref=f"REF{msg}",
        request=request,
        paid=paid,
    )
    name = iso.notification_name(batch_serial, 1)
    return take_account_notice(
        ctx, ctx.profiles["psbc"], name, data, _sign(keys, data, ecdsa=True), "test-bank"
    )


def _payer_account(ctx: Context, batch_serial: str) -> str:
    with ctx.sessions() as s:
        account = s.scalar(select(Batch.payer_account).where(Batch.serial == batch_serial))
    return account or "9999000011112222"


def wait_for_outbox(bank: Any, prefix: str, timeout: float = 30.0) -> list[Path]:
    """The bank's outbox files starting with ``prefix`` (signature files excluded), once
    there is one."""

    def found() -> list[Path]:
        return sorted(
            p for p in bank.outbox.iterdir() if p.name.startswith(prefix) and p.suffix != ".sig"
        )

    return wait_until(found, timeout=timeout, what=f"{prefix}* in the bank's outbox")
