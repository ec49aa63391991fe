"""The seeded fault schedule (mock_bank/faults.py) and the SFTP and processor faults, each
observed from a plain paramiko client the way the gateway would see it."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import paramiko
import pytest

from mock_bank.config import ConfigError, load_config
from mock_bank.faults import (
    KINDS,
    FaultConfigError,
    FaultRule,
    FaultSchedule,
    FaultsConfig,
    parse_faults_config,
)
from mock_bank.server import MockBank

# --------------------------------------------------------------------------------------------
# The schedule


def run(schedule: FaultSchedule, calls: list[str]) -> list[bool]:
    return [schedule.should(kind) for kind in calls]


def test_same_seed_same_faults() -> None:
    cfg = {
        "seed": 42,
        "rules": [
            {"kind": "drop_mid_upload", "probability": 0.5},
            {"kind": "lose_rename_reply", "probability": 0.3, "max": 4},
            {"kind": "restart", "nth": [2, 5]},
        ],
    }
    calls = ["drop_mid_upload", "lose_rename_reply", "restart", "rate_limit"] * 50
    first, second = FaultSchedule.from_config(cfg), FaultSchedule.from_config(cfg)
    assert run(first, calls) == run(second, calls)
    assert first.fired() == second.fired()
    assert first.fired("restart") == [("restart", 2), ("restart", 5)]
    assert len(first.fired("lose_rename_reply")) == 4
    assert 10 < len(first.fired("drop_mid_upload")) < 40
    other = FaultSchedule.from_config({**cfg, "seed": 43})
    run(other, calls)
    assert other.fired("drop_mid_upload") != first.fired("drop_mid_upload")


def test_kinds_do_not_perturb_each_other() -> None:
    rules = [FaultRule("drop_mid_upload", probability=0.5), FaultRule("rate_limit", 0.5)]
    alone = FaultSchedule(7, rules)
    run(alone, ["drop_mid_upload"] * 100)
    mixed = FaultSchedule(7, rules)
    run(mixed, ["rate_limit", "drop_mid_upload", "rate_limit", "rate_limit"] * 100)
    assert mixed.fired("drop_mid_upload") == alone.fired("drop_mid_upload")


def test_stream_is_the_documented_one() -> None:
    """One ``random.Random(f"{seed}:{kind}")`` per kind, one draw per call."""
    import random

    stream = random.Random("42:delay_results")  # reproducing the schedule
    expected = [n for n in range(1, 201) if stream.random() < 0.25]
    schedule = FaultSchedule(42, [FaultRule("delay_results", probability=0.25)])
    run(schedule, ["delay_results"] * 200)
    assert schedule.fired() == [("delay_results", n) for n in expected]


def test_nth_and_max() -> None:
    schedule = FaultSchedule(0, [FaultRule("refuse_connection", nth=(1, 3, 4), max=2)])
    assert run(schedule, ["refuse_connection"] * 5) == [True, False, True, False, False]
    assert schedule.reached("refuse_connection") == 5
    always = FaultSchedule(0, [FaultRule("restart", max=1)])  # neither: every time, max 1
    assert run(always, ["restart"] * 3) == [True, False, False]
    never = FaultSchedule(0, [FaultRule("restart", probability=0.0)])
    assert not any(run(never, ["restart"] * 50))
    certain = FaultSchedule(0, [FaultRule("restart", probability=1.0, max=3)])
    assert run(certain, ["restart"] * 5) == [True, True, True, False, False]


def test_several_rules_for_one_kind() -> None:
    schedule = FaultSchedule(
        1, [FaultRule("rate_limit", nth=(2,)), FaultRule("rate_limit", nth=(2, 4), max=1)]
    )
    # 2: the first rule fires (the second keeps its budget); 4: the second fires
    assert run(schedule, ["rate_limit"] * 4) == [False, True, False, True]


def test_unconfigured_and_unknown_kinds() -> None:
    schedule = FaultSchedule.never()
    assert not any(run(schedule, sorted(KINDS)))
    assert schedule.fired() == []
    with pytest.raises(ValueError, match="unknown fault kind"):
        schedule.should("meteor_strike")


def test_thread_safe() -> None:
    schedule = FaultSchedule(3, [FaultRule("duplicate_callback", probability=0.5)])
    reference = FaultSchedule(3, [FaultRule("duplicate_callback", probability=0.5)])
    run(reference, ["duplicate_callback"] * 4000)
    threads = [
        threading.Thread(target=run, args=(schedule, ["duplicate_callback"] * 500))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert schedule.reached("duplicate_callback") == 4000
    # the same draws happened, whichever thread made them
    assert schedule.fired() == reference.fired()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"rules": [{"kind": "nope"}]}, "unknown fault kind"),
        ({"rules": [{"kind": "restart", "nth": [1], "probability": 0.5}]}, "not both"),
        ({"rules": [{"kind": "restart", "probability": 1.5}]}, "within 0..1"),
        ({"rules": [{"kind": "restart", "nth": [0]}]}, "from 1"),
        ({"rules": [{"kind": "restart", "max": -1}]}, "max"),
        ({"rules": [{"kind": "restart", "when": 1}]}, "unknown keys"),
        ({"seed": "42"}, "integer"),
        ({"colour": 1}, "unknown keys"),
        ({"delay_results_seconds": -1}, "seconds"),
    ],
)
def test_bad_config(table: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultConfigError, match=message):
        parse_faults_config(table)


def test_config_file(write_config: Any) -> None:
    extra = (
        "[faults]\nseed = 9\ndelay_results_seconds = 5\n"
        '[[faults.rules]]\nkind = "drop_mid_upload"\nnth = [1, 3]\nmax = 2\n'
    )
    config = load_config(write_config(extra=extra))
    assert config.faults == FaultsConfig(
        seed=9,
        rules=(FaultRule("drop_mid_upload", nth=(1, 3), max=2),),
        delay_results_seconds=5.0,
    )
    schedule = FaultSchedule.from_config(config)
    assert (schedule.seed, schedule.delay_results_seconds) == (9, 5.0)
    assert FaultSchedule.from_config(config.faults).rules == schedule.rules
    assert FaultSchedule.from_config(None).rules == ()
    with pytest.raises(ConfigError, match="unknown fault kind"):
        load_config(write_config(extra='[faults]\n[[faults.rules]]\nkind = "x"\n'))


# --------------------------------------------------------------------------------------------
# A bank with faults, and a plain paramiko client


BankFactory = Callable[..., MockBank]


@pytest.fixture
def make_bank(write_config: Any) -> Iterator[BankFactory]:
    banks: list[MockBank] = []

    def make(
        rules: str,
        *,
        faults: str = "",
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> MockBank:
        kwargs.setdefault("poll", 0.02)
        extra = kwargs.pop("extra", "") + f"[faults]\nseed = 1\n{faults}{rules}"
        bank = MockBank(load_config(write_config(extra=extra, **kwargs)), monotonic=monotonic)
        bank.start()
        banks.append(bank)
        return bank

    yield make
    for bank in banks:
        bank.stop()


def rule(kind: str, **fields: Any) -> str:
    lines = [f'kind = "{kind}"'] + [f"{k} = {v}" for k, v in fields.items()]
    return "[[faults.rules]]\n" + "\n".join(lines) + "\n"


def connect(bank: MockBank, keys: Any) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{bank.sftp_port}", keys.host.get_name(), keys.host)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=bank.sftp_port,
        username="gateway",
        pkey=keys.client,
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
        banner_timeout=5,
        auth_timeout=5,
    )
    return client, client.open_sftp()


@pytest.fixture
def clients() -> Iterator[list[paramiko.SSHClient]]:
    opened: list[paramiko.SSHClient] = []
    yield opened
    for client in opened:
        client.close()


def open_sftp(bank: MockBank, keys: Any, clients: list[paramiko.SSHClient]) -> paramiko.SFTPClient:
    client, sftp = connect(bank, keys)
    clients.append(client)
    return sftp


def upload(sftp: paramiko.SFTPClient, name: str, data: bytes) -> None:
    temp = f"/inbox/.{name}.part"
    with sftp.open(temp, "wb") as fh:
        fh.write(data)
    sftp.rename(temp, f"/inbox/{name}")


def send_request(
    sftp: paramiko.SFTPClient, helpers: Any, keys: Any, data: bytes, name: str
) -> None:
    upload(sftp, f"{name}.sig", helpers.sign_detached(data, keys.gateway))
    upload(sftp, name, data)


def fetch(sftp: paramiko.SFTPClient, name: str) -> bytes:
    buf = io.BytesIO()
    sftp.getfo(f"/outbox/{name}", buf)
    return buf.getvalue()


CONNECTION_LOST = (paramiko.SSHException, EOFError, OSError)

# --------------------------------------------------------------------------------------------
# SFTP faults


def test_refuse_connection(
    make_bank: BankFactory, keys: Any, clients: list[paramiko.SSHClient]
) -> None:
    bank = make_bank(rule("refuse_connection", nth=[1]))
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{bank.sftp_port}", keys.host.get_name(), keys.host)
    clients.append(client)
    with pytest.raises(CONNECTION_LOST):
        client.connect(
            "127.0.0.1",
            port=bank.sftp_port,
            username="gateway",
            pkey=keys.client,
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
            banner_timeout=5,
        )
    sftp = open_sftp(bank, keys, clients)  # the next connection works
    assert sorted(sftp.listdir("/")) == ["inbox", "outbox"]
    assert bank.faults.fired() == [("refuse_connection", 1)]


def test_refuse_connection_happens_before_the_banner(make_bank: BankFactory) -> None:
    bank = make_bank(rule("refuse_connection", nth=[1]))
    # reset (perhaps while connecting), or closed, without a byte of the SSH banner
    with (
        contextlib.suppress(ConnectionResetError),
        socket.create_connection(("127.0.0.1", bank.sftp_port), timeout=5) as sock,
    ):
        assert sock.recv(64) == b""
    assert bank.faults.fired() == [("refuse_connection", 1)]


def test_drop_mid_upload_leaves_the_partial_temp_file(
    make_bank: BankFactory, keys: Any, clients: list[paramiko.SSHClient]
) -> None:
    bank = make_bank(rule("drop_mid_upload", nth=[2]))
    sftp = open_sftp(bank, keys, clients)
    upload(sftp, "first.txt", b"a" * 100)  # 1st file opened for writing: untouched
    data = bytes(range(256)) * 40
    with pytest.raises(CONNECTION_LOST):
        with sftp.open("/inbox/.second.txt.part", "wb") as fh:
            fh.write(data)
        sftp.rename("/inbox/.second.txt.part", "/inbox/second.txt")
    again = open_sftp(bank, keys, clients)
    names = again.listdir("/inbox")
    assert "second.txt" not in names and ".second.txt.part" in names
    size = again.stat("/inbox/.second.txt.part").st_size
    assert size is not None and 0 < size < len(data)
    with again.open("/inbox/.second.txt.part", "rb") as fh:
        assert data.startswith(fh.read())
    assert bank.faults.fired() == [("drop_mid_upload", 2)]


def test_lose_rename_reply(
    make_bank: BankFactory, keys: Any, clients: list[paramiko.SSHClient]
) -> None:
    bank = make_bank(rule("lose_rename_reply", nth=[1]))
    sftp = open_sftp(bank, keys, clients)
    with sftp.open("/inbox/.a.txt.part", "wb") as fh:
        fh.write(b"payload")
    with pytest.raises(CONNECTION_LOST):
        sftp.rename("/inbox/.a.txt.part", "/inbox/a.txt")
    # the rename was done: an inquiry (list the directory) shows it
    again = open_sftp(bank, keys, clients)
    assert again.listdir("/inbox") == ["a.txt"]
    with again.open("/inbox/a.txt", "rb") as fh:
        assert fh.read() == b"payload"
    again.rename("/inbox/a.txt", "/inbox/b.txt")  # the 2nd rename answers normally
    assert bank.faults.fired() == [("lose_rename_reply", 1)]


# --------------------------------------------------------------------------------------------
# Processor faults


class HandClock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delay_results(
    make_bank: BankFactory, keys: Any, helpers: Any, clients: list[paramiko.SSHClient]
) -> None:
    clock = HandClock()  # the processor's delays run on it: they pass when the test says
    bank = make_bank(
        rule("delay_results", nth=[1]), faults="delay_results_seconds = 1.0\n", monotonic=clock
    )
    sftp = open_sftp(bank, keys, clients)
    first = helpers.build_request(
        [helpers.Item("S1" + "0" * 22, "6217000000000001", "王䶮", "430621198001010011", 100)]
    )
    second = helpers.build_request(
        [helpers.Item("S2" + "0" * 22, "6217000000000002", "李𬎆", "43062119800101002X", 200)],
        file_no=2,
    )
    send_request(sftp, helpers, keys, first, helpers.request_name(file_no=1))
    helpers.wait_for(lambda: bank.processor.pending_count == 1)
    send_request(sftp, helpers, keys, second, helpers.request_name(file_no=2))
    ret1, ret2 = (helpers.request_name(file_no=n).replace("PAY_", "RET_") for n in (1, 2))
    helpers.wait_for(lambda: ret2 in sftp.listdir("/outbox"))
    assert ret1 not in sftp.listdir("/outbox")  # the other file is not held up
    clock.now += 0.9
    bank.processor.tick()
    assert ret1 not in sftp.listdir("/outbox")  # held for the whole delay
    clock.now += 0.2  # and no longer
    helpers.wait_for(lambda: ret1 in sftp.listdir("/outbox"))
    assert helpers.parse_result(fetch(sftp, ret1))["paid_count"] == 1
    assert bank.faults.fired() == [("delay_results", 1)]


def _one_item_request(helpers: Any, serial: str = "S3" + "0" * 22) -> bytes:
    data: bytes = helpers.build_request(
        [helpers.Item(serial, "6217000000000003", "阿依古丽·买买提", "430621198001010038", 300)]
    )
    return data


def test_malformed_result_file(
    make_bank: BankFactory, keys: Any, helpers: Any, clients: list[paramiko.SSHClient]
) -> None:
    bank = make_bank(rule("malformed_result_file", nth=[1]))
    sftp = open_sftp(bank, keys, clients)
    name = helpers.request_name()
    send_request(sftp, helpers, keys, _one_item_request(helpers), name)
    ret = name.replace("PAY_", "RET_")
    helpers.wait_for(lambda: ret in sftp.listdir("/outbox"))
    data = fetch(sftp, ret)
    helpers.check_detached(data, fetch(sftp, f"{ret}.sig"), keys.bank.public_key())  # signed
    with pytest.raises(AssertionError):
        helpers.parse_result(data)  # but it does not parse: the header is one byte short
    assert len(data.split(b"\r\n")[0]) == 127
    assert bank.ledger.summary()["credits"] == 1  # the item was paid all the same


def test_partial_result_file(
    make_bank: BankFactory, keys: Any, helpers: Any, clients: list[paramiko.SSHClient]
) -> None:
    bank = make_bank(rule("partial_result_file", nth=[1]))
    sftp = open_sftp(bank, keys, clients)
    items = [
        helpers.Item(f"S4{n:022d}", f"621700000000004{n}", "龑", "430621198001010046", 10 * n)
        for n in range(1, 5)
    ]
    name = helpers.request_name()
    send_request(sftp, helpers, keys, helpers.build_request(items), name)
    ret = name.replace("PAY_", "RET_")
    helpers.wait_for(lambda: ret in sftp.listdir("/outbox"))
    data = fetch(sftp, ret)
    helpers.check_detached(data, fetch(sftp, f"{ret}.sig"), keys.bank.public_key())
    records = data.split(b"\r\n")
    assert records[-1] == b""  # whole records only ...
    assert [r[:1] for r in records[:-1]] == [b"H", b"D", b"D"]  # ... but no trailer
    assert bank.ledger.summary()["credits"] == 4


ISO_SERIAL = "2603150000000009"
CAMT = "{urn:iso:std:iso:20022:tech:xsd:camt.054.001.08}"


def one_pain001(e2e: str, amount: str) -> bytes:
    """A one-transaction pain.001.001.09, by hand (see test_mock_bank_iso20022.py)."""
    msg_id = f"{ISO_SERIAL}01"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn>
<GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>2026-03-15T09:30:00+08:00</CreDtTm>
<NbOfTxs>1</NbOfTxs><CtrlSum>{amount}</CtrlSum><InitgPty><Nm>岳阳县财政局</Nm></InitgPty></GrpHdr>
<PmtInf><PmtInfId>{msg_id}</PmtInfId><PmtMtd>TRF</PmtMtd><BtchBookg>true</BtchBookg>
<NbOfTxs>1</NbOfTxs><CtrlSum>{amount}</CtrlSum><PmtTpInf><CtgyPurp><Cd>GOVT</Cd></CtgyPurp></PmtTpInf>
<ReqdExctnDt><Dt>2026-03-16</Dt></ReqdExctnDt><Dbtr><Nm>岳阳县财政局</Nm></Dbtr>
<DbtrAcct><Id><Othr><Id>43001700062050500001</Id></Othr></Id></DbtrAcct>
<DbtrAgt><FinInstnId><Othr><Id>HNRCU</Id></Othr></FinInstnId></DbtrAgt>
<CdtTrfTxInf><PmtId><InstrId>1</InstrId><EndToEndId>{e2e}</EndToEndId></PmtId>
<Amt><InstdAmt Ccy="CNY">{amount}</InstdAmt></Amt>
<Cdtr><Nm>李𬎆</Nm><Id><PrvtId><Othr><Id>43062119800101002X</Id>
<SchmeNm><Cd>NIDN</Cd></SchmeNm></Othr></PrvtId></Id></Cdtr>
<CdtrAcct><Id><Othr><Id>6217001234567890002</Id></Othr></Id></CdtrAcct>
<Purp><Prtry>GDBH</Prtry></Purp><RmtInf><Ustrd>耕地地力保护补贴 2026</Ustrd></RmtInf>
</CdtTrfTxInf></PmtInf></CstmrCdtTrfInitn></Document>
""".encode()


def test_iso_faulty_files_and_bounce(
    make_bank: BankFactory, keys: Any, helpers: Any, clients: list[paramiko.SSHClient]
) -> None:
    """Each file written counts once: the pain.002 (1st) is malformed, the camt.054 (2nd)
    truncated; the paid item then bounces with a camt.054 RETURN credit."""
    rules = (
        rule("malformed_result_file", nth=[1])
        + rule("partial_result_file", nth=[2])
        + rule("bounce_after_paid", nth=[1])
    )
    bank = make_bank(rules, faults="bounce_after_seconds = 0.2\n", extra='format = "iso20022-v1"\n')
    sftp = open_sftp(bank, keys, clients)
    e2e = f"{ISO_SERIAL}00000001"
    send_request(sftp, helpers, keys, one_pain001(e2e, "350.01"), f"P001_{ISO_SERIAL}_01.xml")
    ret = f"C054_{ISO_SERIAL}_01_R1.xml"
    helpers.wait_for(lambda: ret in sftp.listdir("/outbox"))
    assert sorted(sftp.listdir("/outbox")) == sorted(
        f"{kind}_{ISO_SERIAL}_01{suffix}.xml{sig}"
        for kind, suffix in (("P002", ""), ("C054", ""), ("C054", "_R1"))
        for sig in ("", ".sig")
    )
    bank_key = keys.bank.public_key()
    files = {}
    for name in (f"P002_{ISO_SERIAL}_01.xml", f"C054_{ISO_SERIAL}_01.xml", ret):
        files[name] = fetch(sftp, name)
        helpers.check_detached(files[name], fetch(sftp, f"{name}.sig"), bank_key)  # all signed
    report, notice, returned = files.values()
    with pytest.raises(ET.ParseError):
        ET.fromstring(report)  # noqa: S314 - the bank's output in a test
    with pytest.raises(ET.ParseError):
        ET.fromstring(notice)  # noqa: S314
    assert (
        notice.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        and b"</Document>" not in notice
    )

    doc = ET.fromstring(returned)  # noqa: S314
    assert doc.findtext(f".//{CAMT}Acct/{CAMT}Id/{CAMT}Othr/{CAMT}Id") == "43001700062050500001"
    (entry,) = doc.iter(f"{CAMT}Ntry")
    assert entry.findtext(f"{CAMT}Amt") == "350.01"
    assert entry.findtext(f"{CAMT}CdtDbtInd") == "CRDT"
    assert entry.findtext(f"{CAMT}Sts/{CAMT}Cd") == "BOOK"
    assert entry.findtext(f"{CAMT}BkTxCd/{CAMT}Prtry/{CAMT}Cd") == "RETURN"
    assert entry.findtext(f"{CAMT}NtryDtls/{CAMT}TxDtls/{CAMT}Refs/{CAMT}EndToEndId") == e2e
    assert entry.findtext(f"{CAMT}NtryDtls/{CAMT}TxDtls/{CAMT}Amt") == "350.01"
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["returned"], summary["double_credits"]) == (1, 1, 0)
    assert bank.faults.fired() == [  # the credit is decided before the files are rendered
        ("bounce_after_paid", 1),
        ("malformed_result_file", 1),
        ("partial_result_file", 2),
    ]


def test_restart_between_taking_and_writing(
    make_bank: BankFactory, keys: Any, helpers: Any, clients: list[paramiko.SSHClient]
) -> None:
    bank = make_bank(rule("restart", nth=[1]), delay=0.3)
    sftp = open_sftp(bank, keys, clients)
    name = helpers.request_name()
    send_request(sftp, helpers, keys, _one_item_request(helpers), name)
    ret = name.replace("PAY_", "RET_")
    helpers.wait_for(lambda: ret in sftp.listdir("/outbox"))
    assert bank.faults.fired() == [("restart", 1)]
    result = helpers.parse_result(fetch(sftp, ret))
    assert (result["status"], result["paid_count"]) == ("A", 1)
    # the restarted bank remembers the file: a scan now does not take it again (the file is
    # still in the inbox), nobody is paid twice
    assert name in sftp.listdir("/inbox") and bank.processor.tick() == []
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["double_credits"], summary["files_processed"]) == (1, 0, 1)
    assert [r.name for r in bank.ledger.request_files()] == [name]


def test_bounce_after_paid_fixed_width(
    make_bank: BankFactory, keys: Any, helpers: Any, clients: list[paramiko.SSHClient]
) -> None:
    bank = make_bank(rule("bounce_after_paid", nth=[2]), faults="bounce_after_seconds = 0.2\n")
    sftp = open_sftp(bank, keys, clients)
    items = [
        helpers.Item(f"S5{n:022d}", f"621700000000005{n}", "王䶮", "430621198001010011", 100 * n)
        for n in range(1, 4)
    ]
    name = helpers.request_name()
    send_request(sftp, helpers, keys, helpers.build_request(items), name)
    ret = name.replace("PAY_", "RET_")
    helpers.wait_for(lambda: ret in sftp.listdir("/outbox"))
    result = helpers.parse_result(fetch(sftp, ret))
    assert [i["status"] for i in result["items"]] == ["S", "S", "S"]  # reported paid
    helpers.wait_for(lambda: bank.ledger.summary()["returned"] == 1)
    (reversal,) = bank.ledger.reversals()
    assert (reversal.item_serial, reversal.amount_fen, reversal.code, reversal.reason) == (
        items[1].serial,
        200,
        "R001",
        "退票",
    )
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["double_credits"]) == (3, 0)
    # the 退票 is on the payer account: a movements file crediting the item back, after
    # the one debiting the three payments (written before the result file)
    act, returned = name.replace("PAY_", "ACT_"), name.replace("PAY_", "ACT_")[:-4] + "_R1.txt"
    helpers.wait_for(lambda: returned in sftp.listdir("/outbox"))
    bank.processor.tick()
    assert bank.processor.pending_count == 0
    assert sorted(sftp.listdir("/outbox")) == sorted(
        [ret, f"{ret}.sig", act, f"{act}.sig", returned, f"{returned}.sig"]
    )
    bank_key = keys.bank.public_key()
    debits = fetch(sftp, act)
    helpers.check_detached(debits, fetch(sftp, f"{act}.sig"), bank_key)
    booked = helpers.parse_movements(debits)
    assert (booked["debit_count"], booked["debit_amount"], booked["credit_count"]) == (3, 600, 0)
    assert [(e["direction"], e["serial"], e["amount"], e["code"]) for e in booked["entries"]] == [
        ("D", i.serial, i.amount, "0000") for i in items
    ]
    assert len({e["bank_ref"] for e in booked["entries"]}) == 1  # one booking: the batch
    credit = fetch(sftp, returned)
    helpers.check_detached(credit, fetch(sftp, f"{returned}.sig"), bank_key)
    back = helpers.parse_movements(credit)
    assert back["notice_id"] == f"ACT{helpers.SERIAL}01R1" and back["serial"] == helpers.SERIAL
    assert (back["record_count"], back["credit_count"], back["credit_amount"]) == (1, 1, 200)
    [entry] = back["entries"]
    assert (entry["direction"], entry["serial"], entry["amount"], entry["code"]) == (
        "C",
        items[1].serial,
        200,
        "R001",
    )
    assert entry["description"] == "退票" and entry["bank_ref"] != booked["entries"][0]["bank_ref"]
    assert (back["trailer_count"], back["trailer_total"]) == (1, 200)

    # a corrected re-issue of the returned serial is paid again (dedupe skips reversed credits)
    again = helpers.build_request([items[1]], file_no=2)
    send_request(sftp, helpers, keys, again, helpers.request_name(file_no=2))
    ret2 = helpers.request_name(file_no=2).replace("PAY_", "RET_")
    helpers.wait_for(lambda: ret2 in sftp.listdir("/outbox"))
    (item,) = helpers.parse_result(fetch(sftp, ret2))["items"]
    assert item["status"] == "S" and item["bank_ref"] != result["items"][1]["bank_ref"]
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["double_credits"], summary["returned"]) == (4, 0, 1)
