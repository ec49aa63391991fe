"""``gateway demo``: the whole pipeline, end to end, on SQLite and the mock bank.

It starts real processes — the mock bank (SFTP on loopback), the gateway API and a worker —
submits batches over the HTTP API exactly as the upstream finance system would, waits until
every item is final, and prints a summary built from the gateway's database and from the
mock bank's own ledger (so ``double_credits`` is the bank's fact, not our belief).
Everything it writes stays under ``.demo/``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, true

from gateway.auth.client import GatewayClient
from gateway.batches.models import Batch, PaymentItem
from gateway.certs import init_dev_keys
from gateway.context import Context
from gateway.demo.banks import ABC, BANKS, HNRCU, PSBC, write_bank_config, write_profiles
from gateway.demo.data import RoundTwo, bank_accounts, batch_payload, people, round_two
from gateway.demo.sms import point_gateway_at, write_sms_configs
from gateway.dispatch.models import OutboundFile
from gateway.feedback.models import InboundFile, OperatorCase
from gateway.kit.logging import configure_logging
from gateway.kit.migrate import upgrade
from gateway.kit.money import format_yuan
from gateway.notifications.service import sms_summary
from gateway.payments.states import BatchState, ItemState
from gateway.reconciliation.service import summary as reconciliation_summary
from gateway.rework.refunds import refund_summary
from gateway.selfcheck.service import KINDS, get_report, run_selfcheck
from gateway.settings import DEV_API_CLIENTS, Settings
from gateway.upstream.delivery import summary as upstream_summary
from gateway.upstream.demo_receiver import UpstreamReceiver

CLIENT_ID = "county-finance"


def listening_socket() -> socket.socket:
    """A loopback socket bound to a port the kernel picks, already listening: the port is
    held from this moment, so nothing else can take it before the process that serves it
    starts (it inherits the socket, ``gateway serve --fd``)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.set_inheritable(True)
    return listener


@contextmanager
def process(
    cmd: list[str], env: dict[str, str], log: Path, *, pass_fds: tuple[int, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, pass_fds=pass_fds
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def _port_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _healthy(url: str) -> bool:
    import httpx  # noqa: PLC0415

    try:
        return httpx.get(url + "/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def bank_ledger(bank_config: Path) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "mock_bank.cli", "ledger", "--config", str(bank_config), "--json"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ledger: dict[str, Any] = json.loads(out.stdout)
    return ledger


def summarize(ctx: Context, profile: str | None = None) -> dict[str, Any]:
    """The gateway's side of the summary, from its own database (one bank, or all)."""
    only_batches = Batch.bank_profile == profile if profile else Batch.id.is_not(None)
    with ctx.sessions() as s:
        batches = {
            st: int(n)
            for st, n in s.execute(
                select(Batch.state, func.count()).where(only_batches).group_by(Batch.state)
            )
        }
        by_state_rows = s.execute(
            select(
                PaymentItem.state, func.count(), func.coalesce(func.sum(PaymentItem.amount_fen), 0)
            )
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(only_batches)
            .group_by(PaymentItem.state)
        ).all()
        files_out = (
            s.scalar(
                select(func.count())
                .select_from(OutboundFile)
                .where(OutboundFile.bank_profile == profile if profile else true())
            )
            or 0
        )
        files_in = (
            s.scalar(
                select(func.count())
                .select_from(InboundFile)
                .where(InboundFile.bank_profile == profile if profile else true())
            )
            or 0
        )
        open_cases = (
            s.scalar(
                select(func.count()).select_from(OperatorCase).where(OperatorCase.state == "open")
            )
            or 0
        )
        reasons = {
            str(code): int(n)
            for code, n in s.execute(
                select(PaymentItem.reason_code, func.count())
                .join(Batch, Batch.id == PaymentItem.batch_id)
                .where(PaymentItem.state == ItemState.FAILED, only_batches)
                .group_by(PaymentItem.reason_code)
            )
        }
    by_state = {st: int(n) for st, n, _ in by_state_rows}
    amounts = {st: int(a) for st, _, a in by_state_rows}
    out: dict[str, Any] = {
        "batches": sum(batches.values()),
        "batches_by_state": batches,
        "items": sum(by_state.values()),
        "by_state": by_state,
        "amount_fen": {
            "submitted": sum(amounts.values()),
            "paid": amounts.get(ItemState.PAID, 0),
            "failed": amounts.get(ItemState.FAILED, 0),
        },
        "failed_by_reason": reasons,
        "files": {"sent": files_out, "received": files_in},
        "all_final": bool(by_state) and all(ItemState(s).is_final() for s in by_state),
    }
    if profile is None:
        out["open_operator_cases"] = open_cases
    return out


def _ledger_part(ledger: dict[str, Any]) -> dict[str, Any]:
    return {
        "credits": ledger["credits"],
        "double_credits": ledger["double_credits"],
        "amount_credited_fen": ledger["amount_credited_fen"],
        "files_processed": ledger.get("files_processed", 0),
    }


def _reconciled(ctx: Context) -> bool:
    result: bool = reconciliation_summary(ctx)["ok"]
    return result


def _quiet_after_payments(ctx: Context) -> bool:
    sms = sms_summary(ctx)
    return sms["pending"] == 0 and upstream_summary(ctx)["pending"] == 0


def _sms_centre_summary(centre_config: Path) -> dict[str, Any]:
    """The mock SMS centre's own record (not the gateway's belief)."""
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "mock_sms.cli", "summary", "--config", str(centre_config), "--json"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    centre: dict[str, Any] = json.loads(out.stdout)
    return {
        "sent": int(centre["sent"]),
        "failed": int(centre["failed"]),
        "duplicates": int(centre["duplicates"]),
    }


def run_demo(*, workdir: Path, json_output: bool, seed: int) -> int:
    workdir = workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True)
    # what runs in this process (the self-check) must not log onto the summary on stdout
    configure_logging(json=True, level="WARNING")
    keys = Path("certs/dev").resolve()
    init_dev_keys(keys)

    persons = people(seed, 80)
    shares = {HNRCU.profile: persons[:40], PSBC.profile: persons[40:60], ABC.profile: persons[60:]}
    second = round_two(seed, persons)
    known = {b.profile: bank_accounts(shares[b.profile]) for b in BANKS}
    known[HNRCU.profile] += second.new_accounts
    api_listener = listening_socket()
    api_port: int = api_listener.getsockname()[1]
    configs = {
        bank.profile: write_bank_config(
            workdir,
            keys,
            known[bank.profile],
            bank=bank,
            callback_url=f"http://127.0.0.1:{api_port}/v1/bank-callbacks/{bank.profile}",
        )
        for bank in BANKS
    }
    centre_config, sms_file = write_sms_configs(workdir, gateway_port=api_port)
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    env = dict(os.environ)
    env.update(
        {
            "GATEWAY_ENVIRONMENT": "development",
            "GATEWAY_DATABASE_URL": f"sqlite:///{workdir / 'gateway.db'}",
            "GATEWAY_POLL_INTERVAL_SECONDS": "0.3",
            "GATEWAY_RETRY_INITIAL_SECONDS": "0.5",
            "GATEWAY_SMS_FILE": str(sms_file),
            "GATEWAY_WEBHOOK_RETRY_INITIAL_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    say = (lambda *_a: None) if json_output else print
    say(f"demo: working in {workdir}")
    with ExitStack() as stack:
        stack.callback(api_listener.close)
        # the upstream finance system's webhook endpoint: verifies every signature itself and
        # refuses each message's first attempt, so retries are part of the demo
        receiver = stack.enter_context(UpstreamReceiver(webhook_secret, fail_first=1))
        env["GATEWAY_WEBHOOKS"] = json.dumps(
            {CLIENT_ID: {"url": receiver.url, "secret": webhook_secret}}
        )
        stack.enter_context(
            process(
                [sys.executable, "-m", "mock_sms.cli", "serve", "--config", str(centre_config)],
                env,
                workdir / "logs" / "mock_sms.log",
            )
        )
        sms_port = wait_for(
            lambda: _port_file(centre_config.parent / "sms.port"), 30, "the mock SMS centre"
        )
        point_gateway_at(sms_file, sms_port)
        ports: dict[str, int] = {}
        for bank in BANKS:
            config = configs[bank.profile]
            stack.enter_context(
                process(
                    [sys.executable, "-m", "mock_bank.cli", "serve", "--config", str(config)],
                    env,
                    workdir / "logs" / f"mock_bank_{bank.profile}.log",
                )
            )
            port_file = config.parent / ("api.port" if bank.kind == "api" else "sftp.port")
            ports[bank.profile] = wait_for(
                lambda pf=port_file: _port_file(pf), 30, f"the mock bank {bank.profile}"
            )
        profiles = write_profiles(workdir, keys, ports[HNRCU.profile], ports=ports)
        env["GATEWAY_BANK_PROFILES_FILE"] = str(profiles)
        os.environ.update({k: env[k] for k in env if k.startswith("GATEWAY_")})
        settings = Settings()
        upgrade(settings.database_url)
        gw = [sys.executable, "-m", "gateway.cli"]
        stack.enter_context(
            process(
                [*gw, "serve", "--fd", str(api_listener.fileno())],
                env,
                workdir / "logs" / "api.log",
                pass_fds=(api_listener.fileno(),),
            )
        )
        stack.enter_context(process([*gw, "worker"], env, workdir / "logs" / "worker.log"))
        base = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: _healthy(base), 60, "the gateway API")
        say(
            "demo: mock banks "
            + ", ".join(f"{b.profile} ({b.kind}) on 127.0.0.1:{ports[b.profile]}" for b in BANKS)
            + f"; gateway API on {base}"
        )

        client = stack.enter_context(
            GatewayClient(base, CLIENT_ID, DEV_API_CLIENTS[CLIENT_ID].encode())
        )
        submissions = _submit(client, shares, say)

        def all_done() -> bool:
            return all(
                BatchState(client.batch(no).json()["state"]).is_settled()
                for no, status in submissions.items()
                if status == 201
            )

        wait_for(all_done, 180, "every batch to complete", interval=0.5)
        # the second round, once the first is settled: one case of each self-check finding
        submissions.update(_submit_round_two(client, second, say))
        wait_for(all_done, 180, "the second round to complete", interval=0.5)
        ctx = Context.build(settings)
        try:
            # and until every SMS owed is settled and every outcome reached upstream
            wait_for(lambda: _quiet_after_payments(ctx), 120, "SMS and webhooks", interval=0.5)
            summary = summarize(ctx)
            per_bank = {b.profile: summarize(ctx, b.profile) for b in BANKS}
            summary["sms"] = {**_sms_centre_summary(centre_config), "gateway": sms_summary(ctx)}
            summary["upstream"] = {**upstream_summary(ctx), "receiver": receiver.stats()}
            summary["refunds"] = refund_summary(ctx)
            wait_for(lambda: _reconciled(ctx), 60, "the reconciliation", interval=0.5)
            summary["reconciliation"] = reconciliation_summary(ctx)
            report = get_report(ctx, run_selfcheck(ctx, requested_by="demo"))
            summary["selfcheck"] = {
                "report_id": report.id,
                "by_kind": report.counts,
                "total": report.total,
            }
        finally:
            ctx.close()
        ledgers = {b.profile: bank_ledger(configs[b.profile]) for b in BANKS}
    for name, part in per_bank.items():
        part["bank"] = _ledger_part(ledgers[name])
    summary["banks"] = per_bank
    summary["bank"] = {
        key: sum(_ledger_part(ledger)[key] for ledger in ledgers.values())
        for key in ("credits", "double_credits", "amount_credited_fen", "files_processed")
    }
    summary["submissions"] = submissions
    summary["workdir"] = str(workdir)
    ok = (
        summary["all_final"]
        and summary["bank"]["double_credits"] == 0
        and all(
            part["amount_fen"]["paid"] == part["bank"]["amount_credited_fen"]
            for part in per_bank.values()
        )
    )
    sms = summary["sms"]
    ok = (
        ok
        and sms["duplicates"] == 0
        and sms["gateway"]["paid_notices"] == summary["by_state"].get("paid", 0)
        and sms["sent"] == sms["gateway"]["paid_notices"] + sms["gateway"]["failure_notices"]
        and summary["upstream"]["pending"] == 0
        and summary["reconciliation"]["ok"]
        # exactly the planted case of each self-check finding, and nothing else
        and summary["selfcheck"]["by_kind"] == dict.fromkeys(KINDS, 1)
        and summary["selfcheck"]["total"] == len(KINDS)
    )
    summary["ok"] = ok
    if json_output:
        print(json.dumps(summary, ensure_ascii=False, sort_keys=True))
    else:
        _print_summary(summary)
    return 0 if ok else 1


def _submit(client: GatewayClient, shares: dict[str, list[Any]], say: Any) -> dict[str, int]:
    """Submit the demo's batches; returns batch number → HTTP status."""
    results: dict[str, int] = {}
    farmland = batch_payload(
        "YY2026-GDBH-0001",
        subsidy_code="GDBH",
        subsidy_name="耕地地力保护补贴",
        period="2026",
        persons=shares[HNRCU.profile],
        amount_fen=35_000,
        bank_profile=HNRCU.profile,
    )
    elderly = batch_payload(
        "YY2026-GLJT-0003",
        subsidy_code="GLJT",
        subsidy_name="高龄津贴",
        period="202611",
        persons=shares[PSBC.profile],
        amount_fen=10_000,
        region_code="430621102",
        bank_profile=PSBC.profile,
    )
    forest = batch_payload(
        "YY2026-STGY-0007",
        subsidy_code="STGY",
        subsidy_name="生态公益林补偿",
        period="2026",
        persons=shares[ABC.profile],
        amount_fen=16_800,
        region_code="430621103",
        bank_profile=ABC.profile,
    )
    bad = batch_payload(
        "YY2026-GDBH-0002",
        subsidy_code="GDBH",
        subsidy_name="耕地地力保护补贴",
        period="2026",
        persons=shares[HNRCU.profile][:3],
        amount_fen=35_000,
    )
    # planted mistakes: a wrong check digit, a float amount, the same person twice,
    # and (for items 1-3) people already paid this subsidy and period in batch 0001
    bad["items"][0]["id_number"] = bad["items"][0]["id_number"][:17] + (
        "0" if bad["items"][0]["id_number"][17] != "0" else "1"
    )
    bad["items"][1].pop("amount_yuan", None)
    bad["items"][1]["amount_fen"] = 350.5
    bad["items"].append(dict(bad["items"][2], seq=4))
    bad["header"]["item_count"] = 4
    for payload in (farmland, elderly, forest, bad, farmland):
        results[payload["header"]["batch_no"]] = _send(client, payload, say)
    return results


def _send(client: GatewayClient, payload: dict[str, Any], say: Any) -> int:
    """Submit one batch and say what came back; returns the HTTP status."""
    response = client.submit_batch(payload)
    no = payload["header"]["batch_no"]
    replay = response.headers.get("Idempotent-Replayed") == "true"
    body = response.json()
    say(
        f"submit {no} ({payload['header']['bank_profile']}): HTTP {response.status_code} "
        f"{body.get('state')}"
        + (" (idempotent replay: same answer)" if replay else "")
        + (f", {len(body.get('errors', []))} errors" if response.status_code != 201 else "")
    )
    if response.status_code == 422:
        for err in body["errors"][:6]:
            where = "batch" if err["seq"] is None else f"item {err['seq']}"
            say(f"    {where} {err['field']}: {err['code']} — {err['message_zh']}")
    status: int = response.status_code
    return status


def _submit_round_two(client: GatewayClient, second: RoundTwo, say: Any) -> dict[str, int]:
    """The second round, to the first bank: the farmland subsidy again under the code
    another township uses (paid twice: 重复发放) with a person whose name mismatched before
    (户名不符 again), and a minimum living allowance to a person with a new card (账户变更)
    and to someone new on another person's card (一卡多人)."""
    say("second round: one case of each self-check finding")
    farmland_again = batch_payload(
        "YY2026-GDDL-0011",
        subsidy_code="GDDL",
        subsidy_name="耕地地力保护补贴",
        period="2026",
        persons=[second.duplicate, second.mismatch_again],
        # another township's amount (the same amount would be the same SMS text twice)
        amount_fen=35_500,
        region_code="430621103",
        bank_profile=HNRCU.profile,
    )
    allowance = batch_payload(
        "YY2026-NCDB-0012",
        subsidy_code="NCDB",
        subsidy_name="农村最低生活保障金",
        period="202612",
        persons=[second.new_card, second.borrower],
        amount_fen=42_000,
        bank_profile=HNRCU.profile,
    )
    return {p["header"]["batch_no"]: _send(client, p, say) for p in (farmland_again, allowance)}


def _print_summary(s: dict[str, Any]) -> None:
    a = s["amount_fen"]
    b = s["bank"]
    print()
    print("=== 一卡通 bank gateway demo: summary ===")
    print(f"batches: {s['batches']} {s['batches_by_state']}")
    print(f"items:   {s['items']}")
    for state, n in sorted(s["by_state"].items()):
        print(f"   {state:<10} {ItemState(state).label_zh:<6} {n}")
    print(f"failed by reason: {s['failed_by_reason']}")
    print(
        f"amounts (yuan): submitted {format_yuan(a['submitted'])}, paid {format_yuan(a['paid'])},"
        f" failed {format_yuan(a['failed'])}"
    )
    print("per bank:")
    for name, part in s["banks"].items():
        pa, pb = part["amount_fen"], part["bank"]
        print(
            f"   {name:<6} items {part['items']:>3}  paid {format_yuan(pa['paid']):>10}"
            f"  bank credited {format_yuan(pb['amount_credited_fen']):>10}"
            f"  double credits {pb['double_credits']}  files {part['files']}"
        )
    print(
        f"mock banks' ledgers: {b['credits']} credits,"
        f" {format_yuan(b['amount_credited_fen'])} yuan,"
        f" double credits: {b['double_credits']}"
    )
    sms, up = s["sms"], s["upstream"]
    print(
        f"SMS (mock SMS centre's record): sent {sms['sent']}, failed {sms['failed']},"
        f" duplicates {sms['duplicates']}; gateway: {sms['gateway']['paid_notices']} payment"
        f" notices, {sms['gateway']['failure_notices']} failure notices"
    )
    print(
        f"upstream webhooks: delivered {up['delivered']}, pending {up['pending']},"
        f" failed {up['failed']}; receiver saw {up['receiver']}"
    )
    print(f"treasury refunds: {s['refunds']}")
    if "reconciliation" in s:
        print(f"reconciliation: {s['reconciliation']}")
    if "selfcheck" in s:
        sc = s["selfcheck"]
        print(f"self-check (自查) report {sc['report_id']}: {sc['total']} findings {sc['by_kind']}")
    print(f"open operator cases: {s['open_operator_cases']}")
    print(f"all items final: {s['all_final']}")
    print(f"RESULT: {'OK' if s['ok'] else 'NOT OK'}   (files and logs in {s['workdir']})")
