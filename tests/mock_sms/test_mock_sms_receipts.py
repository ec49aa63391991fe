"""Receipt pushes: signed, on time, late, twice, lost, forged, retried."""

from __future__ import annotations

import json
import time

from tests.mock_sms.clients import aliyun_send, receipt_signature, tencent_send
from tests.mock_sms.conftest import CentreFactory, ManualClock, Push, ReceiptSink
from tests.waits import wait_until

PHONE = "13800138000"
SECRETS = {"aliyun-style": "aliyun-secret", "tencent-style": "tencent-secret"}


def verifies(push: Push, provider: str) -> bool:
    headers = {k.lower(): v for k, v in push.headers.items()}
    expected = receipt_signature(
        SECRETS[provider], provider, headers["x-sms-timestamp"], headers["x-sms-nonce"], push.body
    )
    return expected == headers["x-sms-signature"] and (
        abs(int(headers["x-sms-timestamp"]) - time.time()) < 60
    )


def test_aliyun_receipt_is_signed_and_masked(make_centre: CentreFactory, sink: ReceiptSink) -> None:
    centre = make_centre(sink=sink)
    biz_id = aliyun_send(centre.base_url("aliyun-style"), PHONE, "r-1").json()["BizId"]
    assert centre.wait_receipts(30)
    [push] = sink.pushes
    assert push.path == "/receipts/aliyun-style" and verifies(push, "aliyun-style")
    [report] = json.loads(push.body)
    assert report["biz_id"] == biz_id and report["out_id"] == "r-1"
    assert report["success"] is True and report["err_code"] == "DELIVERED"
    assert report["phone_number"] == "138****8000"
    assert set(report) >= {"send_time", "report_time", "err_msg", "sms_size"}
    assert PHONE.encode() not in push.body
    assert centre.receipt_stats()["delivered"] == 1


def test_tencent_receipt(make_centre: CentreFactory, sink: ReceiptSink) -> None:
    centre = make_centre({"undeliverable_pattern": "8000$"}, sink=sink)
    serial = tencent_send(centre.base_url("tencent-style"), PHONE, "r-2").json()["Response"][
        "SendStatusSet"
    ][0]["SerialNo"]
    assert centre.wait_receipts(30)
    [push] = sink.pushes
    assert verifies(push, "tencent-style")
    [report] = json.loads(push.body)
    assert report["sid"] == serial and report["session_context"] == "r-2"
    assert (report["report_status"], report["errmsg"]) == ("FAIL", "UNDELIV")
    assert report["mobile"] == "138****8000" and report["nationcode"] == "86"


def test_receipt_twice(make_centre: CentreFactory, sink: ReceiptSink) -> None:
    centre = make_centre({"rules": [{"kind": "receipt_twice", "nth": [2]}]}, sink=sink)
    url = centre.base_url("aliyun-style")
    for out_id in ("t-1", "t-2", "t-3"):
        aliyun_send(url, PHONE, out_id, params={"item": out_id, "amount": "1"})
    assert centre.wait_receipts(30)
    out_ids = sorted(json.loads(p.body)[0]["out_id"] for p in sink.pushes)
    assert out_ids == ["t-1", "t-2", "t-2", "t-3"]
    assert all(verifies(p, "aliyun-style") for p in sink.pushes)
    assert centre.summary()["duplicates"] == 0  # a receipt twice is not an SMS twice


def test_receipt_late_and_the_query_agrees(make_centre: CentreFactory, sink: ReceiptSink) -> None:
    clock = ManualClock()  # the centre's time moves only when the test says so
    centre = make_centre(
        {"rules": [{"kind": "receipt_late", "nth": [1]}]},
        sink=sink,
        late_receipt_seconds=0.5,
        clock=clock,
    )
    url = centre.base_url("aliyun-style")
    aliyun_send(url, PHONE, "l-1")  # its receipt is late
    aliyun_send(url, PHONE, "l-2", params={"item": "l-2", "amount": "1"})  # on time
    late, on_time = centre.messages()
    assert late.report_due - late.accepted_epoch >= 0.5
    assert sink.pushes == []  # nothing is due while the clock stands still
    clock.advance(0.1)  # the on-time receipt is due, the late one is not
    centre.clock_moved()
    wait_until(lambda: centre.receipt_stats()["delivered"] == 1, what="the on-time receipt")
    assert [json.loads(p.body)[0]["out_id"] for p in sink.pushes] == ["l-2"]
    assert late.status(clock()) == "pending" and on_time.status(clock()) == "delivered"
    clock.advance(0.5)
    centre.clock_moved()
    assert centre.wait_receipts(30)
    # sent first, its receipt comes last: had it not been held back it would lead
    assert [json.loads(p.body)[0]["out_id"] for p in sink.pushes] == ["l-2", "l-1"]
    assert late.status(clock()) == "delivered"


def test_receipt_lost_is_still_known_to_the_query(
    make_centre: CentreFactory, sink: ReceiptSink
) -> None:
    clock = ManualClock()
    centre = make_centre({"rules": [{"kind": "receipt_lost"}]}, sink=sink, clock=clock)
    aliyun_send(centre.base_url("aliyun-style"), PHONE, "lost-1")
    clock.advance(1.0)  # well past the report's due time: a scheduled receipt would go now
    centre.clock_moved()
    assert centre.wait_receipts(30)
    assert sink.pushes == []
    [record] = centre.messages()
    assert record.status(clock()) == "delivered"


def test_forged_receipt_comes_first_with_a_bad_signature(
    make_centre: CentreFactory, sink: ReceiptSink
) -> None:
    centre = make_centre({"rules": [{"kind": "forged_receipt"}]}, sink=sink)
    sink.on_push = lambda push: 200 if verifies(push, "tencent-style") else 401
    tencent_send(centre.base_url("tencent-style"), PHONE, "f-1")
    assert centre.wait_receipts(30)
    assert [verifies(p, "tencent-style") for p in sink.pushes] == [False, True]
    assert sink.pushes[0].body == sink.pushes[1].body
    assert centre.receipt_stats() == {"delivered": 1, "refused": 0, "unsent": 0, "forged": 1}


def test_a_refused_push_is_retried(make_centre: CentreFactory, sink: ReceiptSink) -> None:
    sink.statuses = [500, 503]
    centre = make_centre(sink=sink)
    aliyun_send(centre.base_url("aliyun-style"), PHONE, "p-1")
    assert centre.wait_receipts(30)
    assert len(sink.pushes) == 3
    nonces = {p.headers["X-Sms-Nonce"] for p in sink.pushes}
    assert len(nonces) == 3  # a fresh nonce per attempt
    assert centre.receipt_stats()["delivered"] == 1


def test_no_callback_url_no_push(make_centre: CentreFactory) -> None:
    centre = make_centre()
    aliyun_send(centre.base_url("aliyun-style"), PHONE, "n-1")  # its receipt is scheduled
    assert centre.wait_receipts(30)
    assert centre.receipt_stats()["unsent"] == 1


def test_callback_url_can_be_set_after_start(make_centre: CentreFactory, sink: ReceiptSink) -> None:
    centre = make_centre()
    centre.set_callback_url("aliyun-style", sink.url("aliyun-style"))
    aliyun_send(centre.base_url("aliyun-style"), PHONE, "n-2")
    assert centre.wait_receipts(30)
    assert len(sink.pushes) == 1
