"""The open-API bank end to end: mutual TLS, SM2-signed requests and responses, SM4
bodies, status inquiries, and callbacks that are only hints — against the mock bank's own
HTTPS implementation."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.auth.models import RequestNonce
from gateway.context import Context
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import InboundFile
from gateway.payments.states import FileState
from gateway.worker import run_cycle
from tests.gateway.helpers import payload, persons
from tests.gateway.pipeline import drive, states, submit
from tests.waits import wait_until

PEOPLE = persons(6, seed=21)


def api_payload(no: str, ps: list[Any]) -> dict[str, Any]:
    body = payload(no, ps)
    body["header"]["bank_profile"] = "abc"
    return body


@pytest.fixture
def accounts() -> list[dict[str, str]]:
    return [
        {
            "account_no": p.account_no,
            "name": p.name,
            "id_number": p.id_number,
            "status": "frozen" if i == 2 else "active",
        }
        for i, p in enumerate(PEOPLE)
    ]


def test_api_bank_pays_and_reports(ctx: Context, api_bank: Any, gateway_http: str) -> None:
    submit(ctx, api_payload("API-1", PEOPLE))
    assert drive(ctx) == {"paid": 5, "failed": 1}
    with ctx.sessions() as s:
        f = s.scalar(select(OutboundFile))
        kinds = s.scalars(select(InboundFile.kind)).all()
    assert f is not None and f.state == FileState.DELIVERED
    # the stored body is the SM4-CBC-HMAC-SM3 envelope: no name or account in it
    body = ctx.pii.decrypt_bytes("outbound-file", f.content_enc)
    envelope = json.loads(body)["encrypted"]
    assert envelope["alg"] == "SM4-CBC-HMAC-SM3" and envelope["mac"]
    assert PEOPLE[0].account_no.encode() not in body
    # status answers, and (issue 12) pages of the payer account's movements
    assert "api_status" in kinds and set(kinds) <= {"api_status", "account_movements"}
    summary = api_bank.ledger.summary()
    assert summary["credits"] == 5 and summary["double_credits"] == 0


def test_forged_and_replayed_callbacks_change_nothing(
    ctx: Context, api_bank: Any, gateway_http: str
) -> None:
    submit(ctx, api_payload("API-2", PEOPLE[:2]))
    drive(ctx)
    before = states(ctx)
    # a forged callback: signed by nobody the gateway trusts
    forged = httpx.post(
        f"{gateway_http}/v1/bank-callbacks/abc",
        content=b'{"event_id":"EV1","event":"item.returned","batch_serial":"X","file_no":1,'
        b'"sent_at":"2026-11-28T10:00:00+08:00"}',
        headers={
            "X-Timestamp": str(int(time.time())),
            "X-Nonce": "n" * 20,
            "X-Key-Id": "mockbank-dev",
            "X-Signature": "AAAA",
        },
    )
    assert forged.status_code == 401
    assert states(ctx) == before


class TestCallbackFaults:
    @pytest.fixture
    def bank_extra(self) -> str:
        rules = "".join(
            f'[[faults.rules]]\nkind = "{k}"\nnth = [1]\n'
            for k in (
                "duplicate_callback",
                "out_of_order_callback",
                "forged_callback",
                "replayed_callback",
            )
        )
        return "\n[faults]\nseed = 3\n" + rules

    def test_duplicate_out_of_order_forged_replayed(
        self, ctx: Context, api_bank: Any, gateway_http: str
    ) -> None:
        submit(ctx, api_payload("API-3", PEOPLE))
        assert drive(ctx) == {"paid": 5, "failed": 1}
        # let the bank's callbacks (genuine, duplicated, forged, replayed, out of order)
        # arrive, and the worker react to them: every event delivered, and the duplicate
        # accepted as well (one more bank nonce; the forged and the replayed are refused)
        store = api_bank.api.bank.store

        def bank_nonces() -> int:
            with ctx.sessions() as s:
                count = s.scalar(
                    select(func.count())
                    .select_from(RequestNonce)
                    .where(RequestNonce.client_id == "bank:abc")
                )
            return int(count or 0)

        def callbacks_in() -> bool:
            run_cycle(ctx, "t")
            fired = {kind for kind, _ in api_bank.faults.fired()}
            return (
                {"forged_callback", "replayed_callback", "duplicate_callback"} <= fired
                and not store.undelivered_events()
                and bank_nonces() >= len(store.events()) + 1
            )

        wait_until(callbacks_in, what="the bank's callbacks, the duplicate among them")
        run_cycle(ctx, "t")  # the worker's inquiry after the last of them
        assert states(ctx) == {"paid": 5, "failed": 1}
        fired = {kind for kind, _ in api_bank.faults.fired()}
        assert {"forged_callback", "replayed_callback", "duplicate_callback"} <= fired
        assert api_bank.ledger.summary()["double_credits"] == 0
