"""The seeded fault schedule: deterministic by seed, and each fault as the client sees it."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from mock_sms.faults import FaultConfigError, FaultSchedule, parse_faults
from tests.mock_sms.clients import aliyun_send, tencent_send
from tests.mock_sms.conftest import CentreFactory
from tests.waits import join_thread, wait_until

PHONE = "13800138000"


def run(config: dict[str, Any], calls: list[tuple[str, str]]) -> list[bool]:
    schedule = FaultSchedule(parse_faults(config))
    return [schedule.should(kind, provider) for kind, provider in calls]


def test_same_seed_same_faults_other_seed_other_faults() -> None:
    config = {
        "seed": 11,
        "rules": [
            {"kind": "fail", "probability": 0.3},
            {"kind": "receipt_twice", "probability": 0.5},
        ],
    }
    calls = [("fail", "aliyun-style"), ("receipt_twice", "tencent-style")] * 200
    first, second = run(config, calls), run(config, calls)
    assert first == second
    assert 0 < sum(first[0::2]) < 200 and 0 < sum(first[1::2]) < 200
    assert run({**config, "seed": 12}, calls) != first


def test_kinds_do_not_perturb_each_other() -> None:
    config = {"seed": 3, "rules": [{"kind": "fail", "probability": 0.5}]}
    alone = run(config, [("fail", "aliyun-style")] * 50)
    mixed = run(config, [("fail", "aliyun-style"), ("throttle", "aliyun-style")] * 50)
    assert alone == mixed[0::2]


def test_nth_max_and_provider() -> None:
    assert run({"rules": [{"kind": "fail", "nth": [2, 4]}]}, [("fail", "aliyun-style")] * 5) == [
        False, True, False, True, False,
    ]  # fmt: skip
    assert run({"rules": [{"kind": "fail", "max": 2}]}, [("fail", "aliyun-style")] * 4) == [
        True, True, False, False,
    ]  # fmt: skip
    only_tencent = {"rules": [{"kind": "fail", "provider": "tencent-style"}]}
    assert run(only_tencent, [("fail", "aliyun-style"), ("fail", "tencent-style")]) == [False, True]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"rules": [{"kind": "explode"}]}, "unknown fault kind"),
        ({"rules": [{"kind": "fail", "nth": [1], "probability": 0.5}]}, "not both"),
        ({"rules": [{"kind": "fail", "probability": 2}]}, "within 0..1"),
        ({"rules": [{"kind": "fail", "provider": "x"}]}, "provider"),
        ({"rules": [{"kind": "fail", "colour": 1}]}, "unknown keys"),
        ({"invalid_number_pattern": "("}, "invalid_number_pattern"),
        ({"seed": "one"}, "seed"),
    ],
)
def test_bad_fault_tables(config: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultConfigError, match=message):
        parse_faults(config)


def test_fail_is_a_busy_answer_and_takes_nothing(make_centre: CentreFactory) -> None:
    centre = make_centre({"rules": [{"kind": "fail", "nth": [1]}]})
    a = aliyun_send(centre.base_url("aliyun-style"), PHONE, "f-1")
    assert (a.status_code, a.json()["Code"]) == (503, "ServiceUnavailable")
    assert centre.messages() == []
    assert aliyun_send(centre.base_url("aliyun-style"), PHONE, "f-1").json()["Code"] == "OK"
    assert centre.summary() == {"sent": 1, "failed": 0, "duplicates": 0}
    assert centre.faults.fired() == [("fail", 1)]


def test_throttle_answers_with_retry_after(make_centre: CentreFactory) -> None:
    centre = make_centre({"rules": [{"kind": "throttle", "nth": [1, 2]}]})
    a = aliyun_send(centre.base_url("aliyun-style"), PHONE, "t-1")
    assert a.json()["Code"] == "isv.BUSINESS_LIMIT_CONTROL" and a.headers["Retry-After"] == "1"
    t = tencent_send(centre.base_url("tencent-style"), PHONE, "t-2")
    assert t.json()["Response"]["Error"]["Code"] == "RequestLimitExceeded"
    assert centre.messages() == []
    assert [(p, code, permanent) for p, _, _, code, permanent in centre.refusals()] == [
        ("aliyun-style", "isv.BUSINESS_LIMIT_CONTROL", False),
        ("tencent-style", "RequestLimitExceeded", False),
    ]


def test_timeout_after_accept_records_then_holds(make_centre: CentreFactory) -> None:
    centre = make_centre({"rules": [{"kind": "timeout_after_accept", "nth": [1]}]}, hold_seconds=5)
    with pytest.raises(httpx.ReadTimeout):
        tencent_send(centre.base_url("tencent-style"), PHONE, "h-1", timeout=0.3)
    [record] = centre.messages()
    assert record.out_id == "h-1"
    answer = tencent_send(centre.base_url("tencent-style"), PHONE, "h-2")
    assert answer.json()["Response"]["SendStatusSet"][0]["Code"] == "Ok"


def test_stop_releases_held_answers(make_centre: CentreFactory) -> None:
    centre = make_centre({"rules": [{"kind": "timeout_after_accept"}]}, hold_seconds=3600)
    url = centre.base_url("aliyun-style")
    with pytest.raises(httpx.ReadTimeout):
        aliyun_send(url, PHONE, "h-3", timeout=0.2)
    # a client that waits as long as it takes: only stop() can end its wait
    outcome: list[httpx.Response | httpx.HTTPError] = []

    def patient() -> None:
        try:
            outcome.append(aliyun_send(url, PHONE, "h-4", timeout=120))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    client = threading.Thread(target=patient, name="patient-sms-client", daemon=True)
    client.start()
    wait_until(lambda: len(centre.messages()) == 2, what="the held message to be recorded")
    centre.stop()
    join_thread(client, what="stop() to release the held answer")
    [answer] = outcome  # dropped with the connection, never answered
    assert isinstance(answer, httpx.RemoteProtocolError), answer


def test_the_same_seed_gives_the_same_run(make_centre: CentreFactory) -> None:
    faults = {
        "seed": 5,
        "rules": [
            {"kind": "fail", "probability": 0.3},
            {"kind": "receipt_twice", "probability": 0.4},
            {"kind": "receipt_lost", "probability": 0.2},
        ],
    }

    def one_run() -> tuple[list[int], list[tuple[str, int]]]:
        centre = make_centre(faults)
        url = centre.base_url("aliyun-style")
        statuses = [
            aliyun_send(url, PHONE, f"s-{i}", params={"item": str(i), "amount": "1"}).status_code
            for i in range(30)
        ]
        fired = centre.faults.fired()
        centre.stop()
        return statuses, fired

    first = one_run()
    assert first == one_run()
    assert 503 in first[0] and 200 in first[0]
