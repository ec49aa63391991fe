"""No full phone number in the centre's database files or its log, whatever happens."""

from __future__ import annotations

from pathlib import Path

from tests.mock_sms.clients import aliyun, aliyun_send, tencent, tencent_send
from tests.mock_sms.conftest import CentreFactory, ReceiptSink

NUMBERS = ["13800138000", "13912345678", "17000000001", "15098765432"]


def test_no_raw_numbers_at_rest_or_in_logs(
    make_centre: CentreFactory, sink: ReceiptSink, tmp_path: Path
) -> None:
    data_dir = tmp_path / "private"
    centre = make_centre(
        {
            "invalid_number_pattern": "^170",
            "rules": [{"kind": "fail", "nth": [2]}, {"kind": "receipt_twice"}],
        },
        sink=sink,
        data_dir=data_dir,
    )
    a_url, t_url = centre.base_url("aliyun-style"), centre.base_url("tencent-style")
    for index, phone in enumerate(NUMBERS):
        aliyun_send(a_url, phone, f"a-{index}")
        tencent_send(t_url, phone, f"t-{index}")
        aliyun(a_url, "QuerySendDetails", {
            "PhoneNumber": phone, "SendDate": "20240301", "PageSize": "10", "CurrentPage": "1",
        })  # fmt: skip
        tencent(t_url, "PullSmsSendStatusByPhoneNumber", {
            "PhoneNumber": f"+86{phone}", "SmsSdkAppId": "1400000001", "BeginTime": 0,
            "EndTime": 2**31, "Offset": 0, "Limit": 100,
        })  # fmt: skip
    assert centre.wait_receipts(30)
    assert len(centre.messages()) >= 5
    centre.stop()
    files = [p for p in data_dir.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"messages.sqlite3", "mock_sms.log", "sms.port"}
    for path in files:
        content = path.read_bytes()
        for phone in NUMBERS:
            assert phone.encode() not in content, (path.name, phone[:3])
    log = (data_dir / "mock_sms.log").read_text(encoding="utf-8")
    assert "138****8000" in log
    for push in sink.pushes:
        for phone in NUMBERS:
            assert phone.encode() not in push.body
