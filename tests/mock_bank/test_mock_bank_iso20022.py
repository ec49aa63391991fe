"""The mock bank speaking ``iso20022-v1`` (docs/formats/iso20022-v1.md).

Requests are written **by hand** here, as XML text from the usage guide (not with
``mock_bank.iso20022``), signed with ``cryptography`` directly, and the bank's answers are
read with the stdlib parser and checked field by field, so a bug in the bank's codec shows up
as a failure rather than as agreement.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mock_bank.accounts import parse_accounts
from mock_bank.config import load_config
from mock_bank.faults import FaultRule, FaultSchedule
from mock_bank.ledger import Ledger
from mock_bank.processor import SHANGHAI, Processor
from mock_bank.server import MockBank

SERIAL = "2603150000000001"
PAYER = "43001700062050500001"
PAYER_NAME = "岳阳县财政局惠民惠农资金专户"
P001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
P002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
C054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
NOW = datetime(2026, 3, 15, 14, 5, 9, tzinfo=SHANGHAI)
DATETIME_0800 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00")
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'

# --------------------------------------------------------------------------------------------
# A pain.001.001.09 by hand, element for element from the usage guide


@dataclass
class Tx:
    e2e: str
    amount: str  # decimal yuan as written in the file
    name: str
    id_number: str
    account: str
    subsidy: str = "GDBH"
    ustrd: str = "耕地地力保护补贴 2026 第一季度"


def tx_xml(instr: int | str, tx: Tx) -> str:
    return f"""
      <CdtTrfTxInf>
        <PmtId>
          <InstrId>{instr}</InstrId>
          <EndToEndId>{tx.e2e}</EndToEndId>
        </PmtId>
        <Amt>
          <InstdAmt Ccy="CNY">{tx.amount}</InstdAmt>
        </Amt>
        <Cdtr>
          <Nm>{tx.name}</Nm>
          <Id>
            <PrvtId>
              <Othr>
                <Id>{tx.id_number}</Id>
                <SchmeNm>
                  <Cd>NIDN</Cd>
                </SchmeNm>
              </Othr>
            </PrvtId>
          </Id>
        </Cdtr>
        <CdtrAcct>
          <Id>
            <Othr>
              <Id>{tx.account}</Id>
            </Othr>
          </Id>
        </CdtrAcct>
        <Purp>
          <Prtry>{tx.subsidy}</Prtry>
        </Purp>
        <RmtInf>
          <Ustrd>{tx.ustrd}</Ustrd>
        </RmtInf>
      </CdtTrfTxInf>"""


def pain001(
    txs: list[Tx],
    *,
    file_no: int = 1,
    msg_id: str | None = None,
    nb_of_txs: str | None = None,
    ctrl_sum: str | None = None,
    body: str | None = None,
    head: str = '<?xml version="1.0" encoding="UTF-8"?>\n',
    ns: str = P001,
) -> bytes:
    """The request as text; ``nb_of_txs``/``ctrl_sum`` default to the true values
    (computed here in fen with integer arithmetic)."""
    msg_id = msg_id or f"{SERIAL}{file_no:02d}"
    if ctrl_sum is None:
        fen = sum(int(t.amount.replace(".", "")) for t in txs)
        ctrl_sum = f"{fen // 100}.{fen % 100:02d}"
    nb = nb_of_txs if nb_of_txs is not None else str(len(txs))
    transactions = body if body is not None else "".join(tx_xml(i, t) for i, t in enumerate(txs, 1))
    text = f"""{head}<Document xmlns="{ns}">
  <CstmrCdtTrfInitn>
    <GrpHdr>
      <MsgId>{msg_id}</MsgId>
      <CreDtTm>2026-03-15T09:30:00+08:00</CreDtTm>
      <NbOfTxs>{nb}</NbOfTxs>
      <CtrlSum>{ctrl_sum}</CtrlSum>
      <InitgPty>
        <Nm>{PAYER_NAME}</Nm>
      </InitgPty>
    </GrpHdr>
    <PmtInf>
      <PmtInfId>{msg_id}</PmtInfId>
      <PmtMtd>TRF</PmtMtd>
      <BtchBookg>true</BtchBookg>
      <NbOfTxs>{nb}</NbOfTxs>
      <CtrlSum>{ctrl_sum}</CtrlSum>
      <PmtTpInf>
        <CtgyPurp>
          <Cd>GOVT</Cd>
        </CtgyPurp>
      </PmtTpInf>
      <ReqdExctnDt>
        <Dt>2026-03-16</Dt>
      </ReqdExctnDt>
      <Dbtr>
        <Nm>{PAYER_NAME}</Nm>
      </Dbtr>
      <DbtrAcct>
        <Id>
          <Othr>
            <Id>{PAYER}</Id>
          </Othr>
        </Id>
      </DbtrAcct>
      <DbtrAgt>
        <FinInstnId>
          <Othr>
            <Id>HNRCU</Id>
          </Othr>
        </FinInstnId>
      </DbtrAgt>{transactions}
    </PmtInf>
  </CstmrCdtTrfInitn>
</Document>
"""
    return text.encode("utf-8")


def name_of(kind: str, file_no: int = 1, suffix: str = "") -> str:
    return f"{kind}_{SERIAL}_{file_no:02d}{suffix}.xml"


def e2e(n: int) -> str:
    return f"{SERIAL}{n:08d}"


ACCOUNTS = [
    {"account_no": "6217001234567890001", "name": "王䶮", "id_number": "430621198001010011"},
    {"account_no": "6217001234567890002", "name": "李𬎆", "id_number": "43062119800101002X"},
    {
        "account_no": "6217001234567890003",
        "name": "阿依古丽·买买提",
        "id_number": "430621198001010038",
    },
    {"account_no": "6217001234567890004", "name": "龑", "id_number": "430621198001010046"},
    {"account_no": "6217001234567890005", "name": "赵六", "id_number": "430621198001010054"},
    {"account_no": "6217001234567890006", "name": "钱七", "id_number": "430621198001010062"},
]
STATUS = {"6217001234567890004": "frozen", "6217001234567890006": "closed"}


def accounts() -> list[dict[str, str]]:
    return [{**a, "status": STATUS.get(a["account_no"], "active")} for a in ACCOUNTS]


def sample_txs() -> list[Tx]:
    return [
        Tx(e2e(1), "123.45", "王䶮", "430621198001010011", "6217001234567890001"),
        Tx(e2e(2), "500.00", "李𬎆", "43062119800101002X", "6217001234567890002"),
        Tx(e2e(3), "0.07", "阿依古丽·买买提", "430621198001010038", "6217001234567890003", "YLBZ"),
        Tx(e2e(4), "350.01", "龑", "430621198001010046", "6217001234567890004"),  # frozen
        Tx(e2e(5), "88.00", "赵五", "430621198001010054", "6217001234567890005"),  # name
        Tx(e2e(6), "1.00", "钱七", "430621198001010062", "6217001234567890006"),  # closed
        Tx(e2e(7), "2.00", "孙八", "430621198001010070", "6217001234567899999"),  # no account
        Tx(e2e(8), "3.00", "赵六", "430621198001010089", "6217001234567890005"),  # ID number
    ]


# --------------------------------------------------------------------------------------------
# Reading the answers with the stdlib


def find(el: ET.Element, path: str, ns: str) -> ET.Element:
    found = el.find("/".join(f"{{{ns}}}{p}" for p in path.split("/")))
    assert found is not None, path
    return found


def text(el: ET.Element, path: str, ns: str) -> str:
    value = find(el, path, ns).text
    assert value is not None, path
    return value


def absent(el: ET.Element, path: str, ns: str) -> bool:
    return el.find("/".join(f"{{{ns}}}{p}" for p in path.split("/"))) is None


def children(el: ET.Element) -> list[str]:
    return [c.tag.split("}", 1)[1] for c in el]


def parse_doc(data: bytes, ns: str, root: str) -> ET.Element:
    assert data.startswith(DECLARATION + b"\n")
    doc = ET.fromstring(data)  # noqa: S314 - the bank's own output in a test
    assert doc.tag == f"{{{ns}}}Document"
    assert children(doc) == [root]
    assert all(e.tag.startswith(f"{{{ns}}}") for e in doc.iter())  # one namespace only
    return doc[0]


# --------------------------------------------------------------------------------------------
# Signatures by hand (RSA-PSS from conftest; ECDSA here)


def sign_ecdsa(data: bytes, key: ec.EllipticCurvePrivateKey, key_id: str = "gw-ec") -> bytes:
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return (
        f"alg=ECDSA-P256-SHA256\nkey-id={key_id}\nsha256={hashlib.sha256(data).hexdigest()}\n"
        f"sig={base64.b64encode(sig).decode()}\n"
    ).encode("ascii")


def check_ecdsa(data: bytes, sig_file: bytes, key: ec.EllipticCurvePublicKey) -> None:
    lines = sig_file.decode("ascii").rstrip("\n").split("\n")
    values = dict(line.split("=", 1) for line in lines)
    assert values["alg"] == "ECDSA-P256-SHA256"
    assert values["sha256"] == hashlib.sha256(data).hexdigest()
    try:
        key.verify(base64.b64decode(values["sig"]), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:  # pragma: no cover - failure path
        raise AssertionError("bank ECDSA signature does not verify") from exc


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def iso_bank(write_config: Any) -> Iterator[MockBank]:
    path = write_config(accounts=accounts(), delay=0.0, poll=0.02, extra='format = "iso20022-v1"\n')
    bank = MockBank(load_config(path))
    bank.start()
    try:
        yield bank
    finally:
        bank.stop()


@pytest.fixture
def sftp_client(iso_bank: MockBank, keys: Any) -> Iterator[paramiko.SFTPClient]:
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{iso_bank.sftp_port}", keys.host.get_name(), keys.host)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=iso_bank.sftp_port,
        username="gateway",
        pkey=keys.client,
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
    )
    try:
        yield client.open_sftp()
    finally:
        client.close()


def upload(sftp: paramiko.SFTPClient, name: str, data: bytes) -> None:
    temp = f"/inbox/.{name}.part"
    with sftp.open(temp, "wb") as fh:
        fh.write(data)
    sftp.rename(temp, f"/inbox/{name}")


def download(sftp: paramiko.SFTPClient, name: str) -> bytes:
    buf = io.BytesIO()
    sftp.getfo(f"/outbox/{name}", buf)
    return buf.getvalue()


class LocalBank:
    """A processor over tmp directories (no SFTP, no thread): ``tick()`` takes the files."""

    def __init__(self, root: Path, keys: Any, helpers: Any, **kwargs: Any) -> None:
        self.h = helpers
        self.inbox = root / "sftp" / "inbox"
        self.outbox = root / "sftp" / "outbox"
        self.inbox.mkdir(parents=True)
        self.outbox.mkdir(parents=True)
        self.ledger = Ledger(root / "ledger.sqlite3")
        self.keys = keys
        kwargs.setdefault("registry", parse_accounts(accounts()))
        self.processor = Processor(
            ledger=self.ledger,
            inbox=self.inbox,
            outbox=self.outbox,
            bank_key=kwargs.pop("bank_key", keys.bank),
            bank_key_id="mockbank-test",
            gateway_public_key=kwargs.pop("gateway_public_key", keys.gateway.public_key()),
            clock=lambda: NOW,
            result_delay_seconds=0.0,
            file_format="iso20022-v1",
            **kwargs,
        )

    def drop(self, data: bytes, file_no: int = 1, sig: bytes | None = None) -> str:
        name = name_of("P001", file_no)
        (self.inbox / f"{name}.sig").write_bytes(
            sig if sig is not None else self.h.sign_detached(data, self.keys.gateway)
        )
        (self.inbox / name).write_bytes(data)
        return name

    def report(self, file_no: int = 1) -> ET.Element:
        name = name_of("P002", file_no)
        data = (self.outbox / name).read_bytes()
        sig = (self.outbox / f"{name}.sig").read_bytes()
        self.h.check_detached(data, sig, self.keys.bank.public_key())
        return parse_doc(data, P002, "CstmrPmtStsRpt")


@pytest.fixture
def local_bank(tmp_path: Path, keys: Any, helpers: Any) -> Callable[..., LocalBank]:
    def make(**kwargs: Any) -> LocalBank:
        return LocalBank(tmp_path / "bank", keys, helpers, **kwargs)

    return make


# --------------------------------------------------------------------------------------------
# The whole path: SFTP → processor → pain.002 + camt.054


def test_pain001_over_sftp_field_by_field(
    iso_bank: MockBank, sftp_client: paramiko.SFTPClient, keys: Any, helpers: Any
) -> None:
    txs = sample_txs()
    data = pain001(txs)
    request = name_of("P001")
    upload(sftp_client, f"{request}.sig", helpers.sign_detached(data, keys.gateway))
    upload(sftp_client, request, data)

    report_name, notice_name = name_of("P002"), name_of("C054")
    helpers.wait_for(lambda: notice_name in sftp_client.listdir("/outbox"))
    outbox = set(sftp_client.listdir("/outbox"))
    assert outbox == {report_name, f"{report_name}.sig", notice_name, f"{notice_name}.sig"}
    report_bytes = download(sftp_client, report_name)
    notice_bytes = download(sftp_client, notice_name)
    bank_key = keys.bank.public_key()
    helpers.check_detached(report_bytes, download(sftp_client, f"{report_name}.sig"), bank_key)
    helpers.check_detached(notice_bytes, download(sftp_client, f"{notice_name}.sig"), bank_key)

    # --- pain.002.001.10 ---
    rpt = parse_doc(report_bytes, P002, "CstmrPmtStsRpt")
    assert children(rpt) == ["GrpHdr", "OrgnlGrpInfAndSts", "OrgnlPmtInfAndSts"]
    assert text(rpt, "GrpHdr/MsgId", P002)
    assert DATETIME_0800.fullmatch(text(rpt, "GrpHdr/CreDtTm", P002))
    orig = find(rpt, "OrgnlGrpInfAndSts", P002)
    assert children(orig) == [
        "OrgnlMsgId",
        "OrgnlMsgNmId",
        "OrgnlNbOfTxs",
        "OrgnlCtrlSum",
        "GrpSts",
    ]
    assert text(orig, "OrgnlMsgId", P002) == f"{SERIAL}01"
    assert text(orig, "OrgnlMsgNmId", P002) == "pain.001.001.09"
    assert text(orig, "OrgnlNbOfTxs", P002) == "8"
    assert text(orig, "OrgnlCtrlSum", P002) == "1067.53"
    assert text(orig, "GrpSts", P002) == "ACCP"
    pmt = find(rpt, "OrgnlPmtInfAndSts", P002)
    assert text(pmt, "OrgnlPmtInfId", P002) == f"{SERIAL}01"
    statuses = pmt.findall(f"{{{P002}}}TxInfAndSts")
    assert len(statuses) == 8
    expected = [
        ("ACSC", None),
        ("ACSC", None),
        ("ACSC", None),
        ("RJCT", "AC06"),  # frozen
        ("RJCT", "BE01"),  # name differs
        ("RJCT", "AC04"),  # closed
        ("RJCT", "AC01"),  # no such account
        ("RJCT", "BE16"),  # ID number differs
    ]
    refs: list[str] = []
    for index, (st, tx, (status, reason)) in enumerate(
        zip(statuses, txs, expected, strict=True), start=1
    ):
        assert text(st, "OrgnlInstrId", P002) == str(index)
        assert text(st, "OrgnlEndToEndId", P002) == tx.e2e
        assert text(st, "TxSts", P002) == status
        assert DATETIME_0800.fullmatch(text(st, "AccptncDtTm", P002))
        assert text(st, "OrgnlTxRef/Amt/InstdAmt", P002) == tx.amount
        assert find(st, "OrgnlTxRef/Amt/InstdAmt", P002).attrib == {"Ccy": "CNY"}
        assert text(st, "OrgnlTxRef/CdtrAcct/Id/Othr/Id", P002) == tx.account
        if status == "ACSC":
            assert absent(st, "StsRsnInf", P002)
            refs.append(text(st, "AcctSvcrRef", P002))
            assert children(st) == [
                "OrgnlInstrId",
                "OrgnlEndToEndId",
                "TxSts",
                "AccptncDtTm",
                "AcctSvcrRef",
                "OrgnlTxRef",
            ]
        else:
            assert text(st, "StsRsnInf/Rsn/Cd", P002) == reason
            assert absent(st, "AcctSvcrRef", P002)
            assert children(st) == [
                "OrgnlInstrId",
                "OrgnlEndToEndId",
                "TxSts",
                "StsRsnInf",
                "AccptncDtTm",
                "OrgnlTxRef",
            ]
    assert len(set(refs)) == 3 and all(re.fullmatch(r"MB\d{18}", r) for r in refs)

    # --- camt.054.001.08: the batch debit of the payer account ---
    ntf_root = parse_doc(notice_bytes, C054, "BkToCstmrDbtCdtNtfctn")
    assert children(ntf_root) == ["GrpHdr", "Ntfctn"]
    assert text(ntf_root, "GrpHdr/MsgId", C054) != text(rpt, "GrpHdr/MsgId", P002)
    ntfctn = find(ntf_root, "Ntfctn", C054)
    assert text(ntfctn, "Id", C054)
    assert DATETIME_0800.fullmatch(text(ntfctn, "CreDtTm", C054))
    assert text(ntfctn, "Acct/Id/Othr/Id", C054) == PAYER
    entries = ntfctn.findall(f"{{{C054}}}Ntry")
    assert len(entries) == 1
    entry = entries[0]
    assert children(entry) == [
        "Amt",
        "CdtDbtInd",
        "Sts",
        "BookgDt",
        "AcctSvcrRef",
        "BkTxCd",
        "NtryDtls",
    ]
    assert text(entry, "Amt", C054) == "623.52"  # 123.45 + 500.00 + 0.07
    assert find(entry, "Amt", C054).attrib == {"Ccy": "CNY"}
    assert text(entry, "CdtDbtInd", C054) == "DBIT"
    assert text(entry, "Sts/Cd", C054) == "BOOK"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", text(entry, "BookgDt/Dt", C054))
    assert text(entry, "AcctSvcrRef", C054) not in refs
    assert text(entry, "BkTxCd/Prtry/Cd", C054) == "SUBSIDY"
    assert text(entry, "NtryDtls/Btch/MsgId", C054) == f"{SERIAL}01"
    assert text(entry, "NtryDtls/Btch/PmtInfId", C054) == f"{SERIAL}01"
    assert text(entry, "NtryDtls/Btch/NbOfTxs", C054) == "3"
    details = find(entry, "NtryDtls", C054).findall(f"{{{C054}}}TxDtls")
    assert [(text(d, "Refs/EndToEndId", C054), text(d, "Amt", C054)) for d in details] == [
        (e2e(1), "123.45"),
        (e2e(2), "500.00"),
        (e2e(3), "0.07"),
    ]

    # --- the ledger: credits with the subsidy item and period of each transaction ---
    credits = iso_bank.ledger.credits()
    assert [(c.item_serial, c.amount_fen, c.subsidy_code, c.period) for c in credits] == [
        (e2e(1), 12345, "GDBH", "2026"),
        (e2e(2), 50000, "GDBH", "2026"),
        (e2e(3), 7, "YLBZ", "2026"),
    ]
    assert [c.bank_ref for c in credits] == refs
    assert {c.batch_serial for c in credits} == {SERIAL}
    summary = iso_bank.ledger.summary()
    assert summary["double_credits"] == 0 and summary["files_rejected"] == 0
    (record,) = iso_bank.ledger.request_files()
    assert (record.status, record.item_count, record.paid_count, record.failed_count) == (
        "accepted",
        8,
        3,
        5,
    )
    assert record.result_name == report_name
    codes = [r.code for r in iso_bank.ledger.item_results(request)]
    assert codes == ["ACSC", "ACSC", "ACSC", "AC06", "BE01", "AC04", "AC01", "BE16"]


def test_nothing_paid_no_camt054(local_bank: Callable[..., LocalBank]) -> None:
    bank = local_bank()
    bank.drop(pain001([sample_txs()[3]]))  # frozen only
    bank.processor.tick()
    rpt = bank.report()
    assert text(rpt, "OrgnlGrpInfAndSts/GrpSts", P002) == "ACCP"  # ACCP even when all fail
    assert text(rpt, "OrgnlPmtInfAndSts/TxInfAndSts/TxSts", P002) == "RJCT"
    assert sorted(p.name for p in bank.outbox.iterdir()) == [
        name_of("P002"),
        f"{name_of('P002')}.sig",
    ]


# --------------------------------------------------------------------------------------------
# Whole-message rejections


def _tx1() -> Tx:
    return sample_txs()[0]


REJECTIONS: dict[str, tuple[Callable[[], bytes], str, bool]] = {
    # case: (request, reason, OrgnlNbOfTxs/OrgnlCtrlSum echoed)
    "not well-formed": (lambda: pain001([_tx1()])[:-20], "FF01", False),
    "wrong namespace": (
        lambda: pain001([_tx1()], ns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"),
        "FF01",
        False,
    ),
    "schemaLocation": (
        lambda: pain001([_tx1()]).replace(
            f'<Document xmlns="{P001}">'.encode(),
            f'<Document xmlns="{P001}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{P001} pain.001.001.09.xsd">'.encode(),
        ),
        "FF01",
        False,
    ),
    "DTD with an entity": (
        lambda: pain001([_tx1()]).replace(
            b"<Document", b'<!DOCTYPE Document [<!ENTITY x "123.45">]>\n<Document', 1
        ),
        "FF01",
        False,
    ),
    "missing EndToEndId": (
        lambda: pain001([_tx1()]).replace(f"<EndToEndId>{e2e(1)}</EndToEndId>".encode(), b""),
        "FF01",
        False,
    ),
    "amount with one decimal": (
        lambda: pain001([Tx(e2e(1), "123.4", "王䶮", "430621198001010011", "6217001234567890001")]),
        "FF01",
        False,
    ),
    "currency not CNY": (
        lambda: pain001([_tx1()]).replace(b'Ccy="CNY"', b'Ccy="USD"'),
        "FF01",
        False,
    ),
    "MsgId not the file name's": (
        lambda: pain001([_tx1()], msg_id=f"{SERIAL}02"),
        "FF01",
        False,
    ),
    "InstrId out of sequence": (
        lambda: pain001([_tx1()], body=tx_xml(2, _tx1())),
        "FF01",
        False,
    ),
    "no transactions": (lambda: pain001([], ctrl_sum="0.00", nb_of_txs="0"), "FF01", False),
    "not UTF-8 declared": (
        lambda: pain001([_tx1()], head='<?xml version="1.0" encoding="GB18030"?>\n'),
        "FF01",
        False,
    ),
    "NbOfTxs wrong": (lambda: pain001(sample_txs()[:2], nb_of_txs="3"), "FF01", True),
    "CtrlSum wrong": (lambda: pain001(sample_txs()[:2], ctrl_sum="623.46"), "AM10", True),
    "CtrlSum below a fen": (lambda: pain001(sample_txs()[:2], ctrl_sum="623.451"), "AM10", True),
    "EndToEndId repeated": (
        lambda: pain001(
            [_tx1(), Tx(e2e(1), "500.00", "李𬎆", "43062119800101002X", "6217001234567890002")]
        ),
        "DU05",
        True,
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_whole_message_rejected(local_bank: Callable[..., LocalBank], case: str) -> None:
    make, reason, echoed = REJECTIONS[case]
    bank = local_bank()
    data = make()
    request = bank.drop(data)
    assert bank.processor.tick() == [request]
    rpt = bank.report()
    assert children(rpt) == ["GrpHdr", "OrgnlGrpInfAndSts"]  # no OrgnlPmtInfAndSts
    orig = find(rpt, "OrgnlGrpInfAndSts", P002)
    assert text(orig, "OrgnlMsgId", P002) == f"{SERIAL}01"  # from the file name
    assert text(orig, "OrgnlMsgNmId", P002) == "pain.001.001.09"
    assert text(orig, "GrpSts", P002) == "RJCT"
    assert text(orig, "StsRsnInf/Rsn/Cd", P002) == reason
    if echoed:
        assert children(orig) == [
            "OrgnlMsgId",
            "OrgnlMsgNmId",
            "OrgnlNbOfTxs",
            "OrgnlCtrlSum",
            "GrpSts",
            "StsRsnInf",
        ]
    else:
        assert children(orig) == ["OrgnlMsgId", "OrgnlMsgNmId", "GrpSts", "StsRsnInf"]
    assert not (bank.outbox / name_of("C054")).exists()
    assert bank.ledger.credits() == []
    (record,) = bank.ledger.request_files()
    assert (record.status, record.reject_code) == ("rejected", reason)
    assert bank.ledger.item_results() == []


def test_bad_signature_is_ds0b(local_bank: Callable[..., LocalBank], keys: Any) -> None:
    bank = local_bank()
    data = pain001(sample_txs()[:2])
    bank.drop(data, sig=bank.h.sign_detached(data, keys.bank))  # signed with the wrong key
    bank.processor.tick()
    orig = find(bank.report(), "OrgnlGrpInfAndSts", P002)
    assert (text(orig, "GrpSts", P002), text(orig, "StsRsnInf/Rsn/Cd", P002)) == ("RJCT", "DS0B")
    assert absent(orig, "OrgnlNbOfTxs", P002)  # the content is not trusted
    assert bank.ledger.summary()["credits"] == 0


def test_tampered_after_signing_is_ds0b(local_bank: Callable[..., LocalBank], keys: Any) -> None:
    bank = local_bank()
    data = pain001(sample_txs()[:2])
    bank.drop(data.replace(b"500.00", b"900.00"), sig=bank.h.sign_detached(data, keys.gateway))
    bank.processor.tick()
    orig = find(bank.report(), "OrgnlGrpInfAndSts", P002)
    assert text(orig, "StsRsnInf/Rsn/Cd", P002) == "DS0B"


def test_other_names_ignored(local_bank: Callable[..., LocalBank], keys: Any) -> None:
    bank = local_bank()
    data = pain001([_tx1()])
    for name in (f"PAY_{SERIAL}_01.txt", f"P001_{SERIAL}_00.xml", f".P001_{SERIAL}_01.xml"):
        (bank.inbox / f"{name}.sig").write_bytes(bank.h.sign_detached(data, keys.gateway))
        (bank.inbox / name).write_bytes(data)
    assert bank.processor.tick() == []
    assert list(bank.outbox.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Dedupe by EndToEndId


def test_dedupe_on_repeats_earlier_payment(local_bank: Callable[..., LocalBank]) -> None:
    bank = local_bank()
    txs = sample_txs()[:2]
    bank.drop(pain001(txs, file_no=1), file_no=1)
    bank.drop(pain001(txs, file_no=2), file_no=2)  # the same EndToEndIds again
    bank.processor.tick()
    first = bank.report(1).findall(f".//{{{P002}}}TxInfAndSts")
    second = bank.report(2).findall(f".//{{{P002}}}TxInfAndSts")
    assert [text(s, "TxSts", P002) for s in second] == ["ACSC", "ACSC"]
    assert [text(s, "AcctSvcrRef", P002) for s in second] == [
        text(s, "AcctSvcrRef", P002) for s in first
    ]
    assert len(bank.ledger.credits()) == 2
    assert bank.ledger.summary()["double_credits"] == 0
    assert [r.repeated for r in bank.ledger.item_results(name_of("P001", 2))] == [True, True]
    # the second file moved no money: no debit notification for it
    assert (bank.outbox / name_of("C054", 1)).exists()
    assert not (bank.outbox / name_of("C054", 2)).exists()


def test_dedupe_off_pays_again(local_bank: Callable[..., LocalBank]) -> None:
    bank = local_bank(dedupe_by_serial=False)
    txs = sample_txs()[:2]
    bank.drop(pain001(txs, file_no=1), file_no=1)
    bank.drop(pain001(txs, file_no=2), file_no=2)
    bank.processor.tick()
    first = bank.report(1).findall(f".//{{{P002}}}TxInfAndSts")
    second = bank.report(2).findall(f".//{{{P002}}}TxInfAndSts")
    first_refs = {text(s, "AcctSvcrRef", P002) for s in first}
    second_refs = {text(s, "AcctSvcrRef", P002) for s in second}
    assert not first_refs & second_refs
    summary = bank.ledger.summary()
    assert (summary["credits"], summary["double_credits"]) == (4, 2)
    assert (bank.outbox / name_of("C054", 2)).exists()


# --------------------------------------------------------------------------------------------
# ECDSA-P256-SHA256 profile


def _write_ec(directory: Path, stem: str) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    (directory / f"{stem}.key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / f"{stem}.pub.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key


def test_ecdsa_profile(write_config: Any, tmp_path: Path, helpers: Any) -> None:
    ec_dir = tmp_path / "ec"
    ec_dir.mkdir()
    gateway_key = _write_ec(ec_dir, "gateway")
    bank_key = _write_ec(ec_dir, "bank")
    path = write_config(accounts=accounts(), extra='format = "iso20022-v1"\n')
    text_ = path.read_text(encoding="utf-8")
    text_ = re.sub(r'bank_private_key = ".*"', f'bank_private_key = "{ec_dir}/bank.key.pem"', text_)
    text_ = re.sub(
        r'gateway_public_key = ".*"', f'gateway_public_key = "{ec_dir}/gateway.pub.pem"', text_
    )
    path.write_text(text_ + 'alg = "ECDSA-P256-SHA256"\n', encoding="utf-8")
    config = load_config(path)
    assert config.signing.alg == "ECDSA-P256-SHA256"
    bank = MockBank(config)
    bank.start()
    try:
        bank.processor.stop()  # drive it by hand
        data = pain001(sample_txs()[:1])
        request = name_of("P001")
        (bank.inbox / f"{request}.sig").write_bytes(sign_ecdsa(data, gateway_key))
        (bank.inbox / request).write_bytes(data)
        # an RSA-PSS signature is refused by an ECDSA profile
        (bank.inbox / f"{name_of('P001', 2)}.sig").write_bytes(b"alg=RSA-PSS-SHA256\n")
        (bank.inbox / name_of("P001", 2)).write_bytes(pain001(sample_txs()[:1], file_no=2))
        bank.processor.tick()
        for name in (name_of("P002"), name_of("C054"), name_of("P002", 2)):
            data_out = (bank.outbox / name).read_bytes()
            check_ecdsa(data_out, (bank.outbox / f"{name}.sig").read_bytes(), bank_key.public_key())
        rpt = parse_doc((bank.outbox / name_of("P002")).read_bytes(), P002, "CstmrPmtStsRpt")
        assert text(rpt, "OrgnlPmtInfAndSts/TxInfAndSts/TxSts", P002) == "ACSC"
        rejected = parse_doc(
            (bank.outbox / name_of("P002", 2)).read_bytes(), P002, "CstmrPmtStsRpt"
        )
        assert text(rejected, "OrgnlGrpInfAndSts/StsRsnInf/Rsn/Cd", P002) == "DS0B"
    finally:
        bank.stop()


def test_config_rejects_unknown_format_and_alg(write_config: Any) -> None:
    from mock_bank.config import ConfigError

    with pytest.raises(ConfigError, match="format"):
        load_config(write_config(extra='format = "swift-mt101"\n'))
    path = write_config()
    path.write_text(path.read_text(encoding="utf-8") + 'alg = "SM2-SM3"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="alg"):
        load_config(path)
    assert json.dumps(load_config(write_config()).format) == '"fw-gb18030-v1"'  # the default


# --------------------------------------------------------------------------------------------
# The official schemas (when lxml and the XSD files are at hand: the gateway's copies)

SCHEMAS = Path(__file__).resolve().parents[2] / "adapters" / "formats" / "schemas"


def test_answers_validate_against_the_official_schemas(
    local_bank: Callable[..., LocalBank], keys: Any
) -> None:
    etree = pytest.importorskip("lxml.etree")
    xsds = {m: SCHEMAS / f"{m}.xsd" for m in ("pain.002.001.10", "camt.054.001.08")}
    if not all(path.exists() for path in xsds.values()):
        pytest.skip("official XSD files not present")
    schemas = {m: etree.XMLSchema(etree.parse(str(path))) for m, path in xsds.items()}
    bounce = FaultSchedule(0, [FaultRule("bounce_after_paid", nth=(1,))], bounce_after_seconds=0)
    bank = local_bank(faults=bounce)
    bank.drop(pain001(sample_txs()), file_no=1)
    bank.drop(pain001(sample_txs()[:2], ctrl_sum="1.00", file_no=2), file_no=2)  # AM10
    for _ in range(3):  # the return is due once the result is written
        bank.processor.tick()
    names = {p.name for p in bank.outbox.iterdir() if not p.name.endswith(".sig")}
    assert names == {
        name_of("P002", 1),
        name_of("P002", 2),
        name_of("C054", 1),
        name_of("C054", 1, "_R1"),
    }
    for name in sorted(names):
        schema = schemas["pain.002.001.10" if name.startswith("P002") else "camt.054.001.08"]
        doc = etree.parse(str(bank.outbox / name))
        assert schema.validate(doc), (name, schema.error_log)


def test_the_hand_written_request_is_schema_valid() -> None:
    """The hand-written pain.001 of these tests is itself valid ISO 20022."""
    etree = pytest.importorskip("lxml.etree")
    sepaxml = pytest.importorskip("sepaxml")  # ships the unmodified pain.001.001.09 XSD
    import importlib.resources

    xsd = importlib.resources.files(sepaxml) / "schemas" / "pain.001.001.09.xsd"
    schema = etree.XMLSchema(etree.fromstring(xsd.read_bytes()))
    doc = etree.fromstring(pain001(sample_txs()))
    assert schema.validate(doc), schema.error_log
