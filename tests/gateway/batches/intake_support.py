"""Support of the intake tests: a gateway with all three demo bank profiles (fixed-width
``hnrcu``, ISO 20022 ``psbc``, open API ``abc``) on a real database, the signed HTTP API,
and what the planner renders for an accepted batch (decoded per format)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import select

from adapters.formats.fixed_width import FixedWidthGb18030Format
from gateway.api.app import create_app
from gateway.auth.hmac_auth import sign_headers
from gateway.batches.models import Batch
from gateway.context import Context
from gateway.demo.banks import write_profiles
from gateway.dispatch.models import OutboundFile
from gateway.dispatch.service import FILE_PURPOSE, plan_one
from gateway.settings import DEV_API_CLIENTS
from tests.conftest import make_settings

CLIENT = "county-finance"
SECRET = DEV_API_CLIENTS[CLIENT].encode()
PROFILES = ("hnrcu", "psbc", "abc")
_numbers = itertools.count(1)


def new_batch_no(prefix: str = "T") -> str:
    return f"{prefix}-{next(_numbers)}"


class Api:
    """The upstream API through the real app, every request signed."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def post(self, body: dict[str, Any] | bytes, *, ascii_only: bool = False) -> Any:
        raw = (
            body
            if isinstance(body, bytes)
            else json.dumps(body, ensure_ascii=ascii_only).encode("utf-8")
        )
        headers = sign_headers(CLIENT, SECRET, "POST", "/v1/batches", raw)
        headers["Content-Type"] = "application/json"
        return self.client.post("/v1/batches", content=raw, headers=headers)


@pytest.fixture
def ctx(db_url: str, tmp_path: Path, dev_keys: Path) -> Iterator[Context]:
    """A gateway context with all three demo bank profiles (their servers are not needed:
    intake and planning never call a bank)."""
    profiles = write_profiles(tmp_path, dev_keys, 9, ports={"psbc": 9, "abc": 9})
    context = Context.build(make_settings(db_url, profiles))  # type: ignore[arg-type]
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def api(ctx: Context) -> Iterator[Api]:
    with TestClient(create_app(ctx)) as client:
        yield Api(client)


def assert_clean_refusal(response: Any) -> list[dict[str, Any]]:
    """A 4xx whose every error has a field, a code and messages in both languages."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    errors = response.json()["errors"]
    assert errors
    for e in errors:
        assert isinstance(e["field"], str), e
        assert isinstance(e["code"], str) and e["code"], e
        assert isinstance(e["message_zh"], str) and e["message_zh"], e
        assert isinstance(e["message_en"], str) and e["message_en"], e
    return list(errors)


# --- what the bank receives -----------------------------------------------------------------


def rendered(ctx: Context, batch_no: str) -> dict[str, Any]:
    """Plan the (accepted) batch with the real planner and decode what it rendered:
    ``{"names": [...], "payer_name": str | None, "subsidy_name": str, "raw": bytes}``."""
    while plan_one(ctx, "intake-test"):
        pass
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch).where(Batch.batch_no == batch_no))
        assert batch is not None
        files = s.scalars(
            select(OutboundFile).where(OutboundFile.batch_id == batch.id).order_by(OutboundFile.id)
        ).all()
        assert files, f"batch {batch_no} was not rendered (state {batch.state})"
        datas = [ctx.pii.decrypt_bytes(FILE_PURPOSE, f.content_enc) for f in files]
        profile = ctx.profiles[batch.bank_profile]
    out: dict[str, Any] = {"names": [], "payer_name": None, "subsidy_name": None, "raw": datas}
    for data in datas:
        if profile.is_api:
            assert profile.api.encryption is not None  # type: ignore[attr-defined]
            plain = profile.api.encryption.open(data)  # type: ignore[attr-defined]
            doc = json.loads(plain.decode("utf-8"))
            out["names"] += [it["name"] for it in doc["items"]]
            out["payer_name"] = doc["payer_name"]
            out["subsidy_name"] = doc["subsidy_name"]
        elif isinstance(profile.format, FixedWidthGb18030Format):
            header, items = profile.format.parse_request(data)
            out["names"] += [it.name for it in items]
            out["subsidy_name"] = header.subsidy_name
        else:
            root = etree.fromstring(data)
            ns = {"p": root.nsmap[None]}
            out["names"] += [e.text for e in root.iterfind(".//p:Cdtr/p:Nm", ns)]
            out["payer_name"] = root.findtext(".//p:InitgPty/p:Nm", namespaces=ns)
            ustrd = root.findtext(".//p:RmtInf/p:Ustrd", namespaces=ns)
            out["subsidy_name"] = ustrd
    return out
