"""The gateway's SMS adapters against the mock SMS centre: two independent implementations
of docs/formats/sms-v1.md meeting over loopback. The exactly-once rule is exercised the way
the gateway applies it: an unknown outcome is settled by ``query``, never by a resend."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from adapters.registry import build_sms_provider
from gateway.ports import (
    NeverSentError,
    OutcomeUnknownError,
    SignatureError,
    SmsMessage,
    SmsProvider,
    SmsReceipt,
    SmsRejectedError,
    SmsStatus,
    TransportError,
)
from mock_sms import MockSmsCentre
from tests.mock_sms.conftest import CentreFactory, ManualClock, Push, ReceiptSink

PROVIDERS = ["aliyun-style", "tencent-style"]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def client(centre: MockSmsCentre, name: str, **overrides: object) -> SmsProvider:
    config: dict[str, object] = {
        "provider": name,
        "base_url": centre.base_url(name),
        "access_key_id": "ak-mock" if name == "aliyun-style" else "sid-mock",
        "access_key_secret": "aliyun-secret" if name == "aliyun-style" else "tencent-secret",
        "read_timeout": 2.0,
    }
    if name == "tencent-style":
        config["sdk_app_id"] = "1400000001"
    config.update(overrides)
    return build_sms_provider(config)


def paid_notice(out_id: str, phone: str = "13800138000") -> SmsMessage:
    return SmsMessage(
        out_id=out_id,
        phone=phone,
        sign_name="岳阳县财政局",
        template_id="SMS_460001",
        params={
            "item": "耕地地力保护补贴",
            "amount": "1,234.50",
            "date": "3月1日",
            "last4": "0102",
        },
    )


def today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


def collect(sink: ReceiptSink, provider: SmsProvider) -> tuple[list[SmsReceipt], list[str]]:
    """Make the sink answer like the gateway: 200 for a verified push, 401 otherwise."""
    receipts: list[SmsReceipt] = []
    refused: list[str] = []

    def on_push(push: Push) -> int:
        try:
            receipts.extend(provider.parse_receipts(push.headers, push.body))
        except SignatureError as exc:
            refused.append(str(exc))
            return 401
        return 200

    sink.on_push = on_push
    return receipts, refused


@pytest.mark.parametrize("name", PROVIDERS)
def test_send_receipt_and_query(make_centre: CentreFactory, sink: ReceiptSink, name: str) -> None:
    centre = make_centre(sink=sink)
    sms = client(centre, name)
    receipts, refused = collect(sink, sms)
    result = sms.send(paid_notice("b1-0001-paid"))
    assert centre.wait_receipts(30)
    [receipt] = receipts
    assert refused == []
    assert (receipt.out_id, receipt.provider_ref) == ("b1-0001-paid", result.provider_ref)
    assert receipt.status is SmsStatus.DELIVERED and receipt.phone_masked == "138****8000"
    assert receipt.at is not None and receipt.at.tzinfo is not None
    [queried] = sms.query("b1-0001-paid", today(), phone="13800138000")
    assert queried.status is SmsStatus.DELIVERED and queried.provider_ref == result.provider_ref
    assert sms.query("never-sent", today(), phone="13800138000") == []
    sms.close()
    assert centre.summary() == {"sent": 1, "failed": 0, "duplicates": 0}


@pytest.mark.parametrize("name", PROVIDERS)
def test_timeout_after_accept_is_settled_by_query_not_resend(
    make_centre: CentreFactory, name: str
) -> None:
    centre = make_centre({"rules": [{"kind": "timeout_after_accept", "nth": [1]}]}, hold_seconds=5)
    sms = client(centre, name, read_timeout=0.3)
    message = paid_notice("b1-0002-paid")
    with pytest.raises(OutcomeUnknownError):
        sms.send(message)
    found = sms.query(message.out_id, today(), phone=message.phone)
    assert len(found) == 1  # the provider has it: the ledger records it, nothing is resent
    sms.close()
    assert centre.summary() == {"sent": 1, "failed": 0, "duplicates": 0}


@pytest.mark.parametrize("name", PROVIDERS)
def test_busy_and_throttled_are_retried_with_the_same_out_id(
    make_centre: CentreFactory, name: str
) -> None:
    centre = make_centre(
        {"rules": [{"kind": "fail", "nth": [1]}, {"kind": "throttle", "nth": [2]}]}
    )
    sms = client(centre, name)
    message = paid_notice("b1-0003-paid")
    with pytest.raises(TransportError) as busy:
        sms.send(message)
    assert type(busy.value) is TransportError and busy.value.retry_after == 5.0
    with pytest.raises(TransportError) as throttled:
        sms.send(message)
    assert type(throttled.value) is TransportError and throttled.value.retry_after == 1.0
    sms.send(message)
    sms.close()
    assert centre.summary() == {"sent": 1, "failed": 0, "duplicates": 0}


@pytest.mark.parametrize("name", PROVIDERS)
def test_invalid_number_is_a_final_recipient_rejection(
    make_centre: CentreFactory, name: str
) -> None:
    centre = make_centre({"invalid_number_pattern": "^170"})
    sms = client(centre, name)
    with pytest.raises(SmsRejectedError) as info:
        sms.send(paid_notice("b1-0004-paid", phone="17000000001"))
    sms.close()
    assert info.value.scope == "recipient"
    assert "17000000001" not in str(info.value)
    assert centre.summary() == {"sent": 0, "failed": 1, "duplicates": 0}


@pytest.mark.parametrize("name", PROVIDERS)
def test_configuration_rejections(make_centre: CentreFactory, name: str) -> None:
    allow = frozenset({"别的县财政局"})
    centre = make_centre(aliyun={"sign_names": allow}, tencent={"sign_names": allow})
    sms = client(centre, name)
    with pytest.raises(SmsRejectedError) as info:
        sms.send(paid_notice("b1-0005-paid"))
    assert info.value.scope == "configuration"
    sms.close()
    wrong_key = client(centre, name, access_key_secret="not-the-secret")
    with pytest.raises(SmsRejectedError) as info:
        wrong_key.send(paid_notice("b1-0006-paid"))
    assert info.value.scope == "configuration"
    wrong_key.close()


@pytest.mark.parametrize("name", PROVIDERS)
def test_forged_and_duplicate_receipts(
    make_centre: CentreFactory, sink: ReceiptSink, name: str
) -> None:
    centre = make_centre(
        {"rules": [{"kind": "forged_receipt"}, {"kind": "receipt_twice"}]}, sink=sink
    )
    sms = client(centre, name)
    receipts, refused = collect(sink, sms)
    sms.send(paid_notice("b1-0007-paid"))
    assert centre.wait_receipts(30)
    sms.close()
    assert len(refused) == 1  # the forged copy
    assert len(receipts) == 2 and receipts[0] == receipts[1]  # the real one, twice
    assert centre.summary()["duplicates"] == 0


@pytest.mark.parametrize("name", PROVIDERS)
def test_late_receipt_is_pending_in_the_query_until_it_comes(
    make_centre: CentreFactory, sink: ReceiptSink, name: str
) -> None:
    clock = ManualClock()  # pending for as long as the test keeps the centre's clock still
    centre = make_centre(
        {"rules": [{"kind": "receipt_late"}]}, sink=sink, late_receipt_seconds=0.5, clock=clock
    )
    sms = client(centre, name)
    receipts, _ = collect(sink, sms)
    sms.send(paid_notice("b1-0008-paid"))
    [pending] = sms.query("b1-0008-paid", today(), phone="13800138000")
    assert pending.status is SmsStatus.PENDING and not pending.final
    assert receipts == []
    clock.advance(0.6)
    centre.clock_moved()
    assert centre.wait_receipts(30)
    assert [r.status for r in receipts] == [SmsStatus.DELIVERED]
    sms.close()


def test_a_stopped_centre_is_never_sent(make_centre: CentreFactory) -> None:
    centre = make_centre()
    sms = client(centre, "aliyun-style", connect_timeout=1.0)
    centre.stop()  # its listening socket is closed when stop() returns
    with pytest.raises(NeverSentError):
        sms.send(paid_notice("b1-0009-paid"))
    sms.close()
