"""``gateway corrections|refunds|history`` through the real command line (typer), on the
same database as the services and the dashboard: every command logs in with a dashboard
account (the dashboard's own check, lockout and role rules), and one person is one
identity in both channels."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.context import Context
from gateway.payments.states import ItemState
from gateway.rework.models import AuditRecord, TreasuryRefund
from tests.gateway.cli_support import PASSWORD, cli_runner, invoke_as, make_account, ok_as
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, fail, item, item_state, pay

PEOPLE = persons(4, seed=41)
AS_OF = ["--as-of", "2026-12-31"]


@pytest.fixture
def run(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    make_account(ctx, "op101", "operator", ["430621101"], real_name="李乡镇")
    make_account(ctx, "op102", "operator", ["430621102"], real_name="周乡镇")
    make_account(ctx, "county.sup", "supervisor", ["430621"], real_name="钱复核")
    make_account(ctx, "county.sup2", "supervisor", ["430621"], real_name="赵科长")
    make_account(ctx, "aud", "auditor", real_name="吴审计")
    make_account(ctx, "admin", "admin", [], real_name="赵管理")
    return cli_runner(ctx, monkeypatch)


def audit_rows(ctx: Context, action: str) -> list[AuditRecord]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
            )
        )


def refund_state(ctx: Context, refund_id: int) -> str:
    with ctx.sessions() as s:
        found = s.get(TreasuryRefund, refund_id)
        assert found is not None
        return found.state


def two_failed(ctx: Context, no: str = "K-2", first: int = 0) -> None:
    batch(ctx, no, PEOPLE[first : first + 2])
    fail(ctx, no, [1, 2])


def test_corrections_export_and_mark_returned(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    batch(ctx, "K-1", PEOPLE)
    fail(ctx, "K-1", [1, 3])
    pay(ctx, "K-1", [2, 4])
    out = ok_as(run, "op101", "corrections", "export", "--out", str(tmp_path))
    assert "更正清单 1：2 笔，200.04 元，1 个工作表" in out
    (written,) = tmp_path.glob("correction-list-000001-*.xlsx")
    wb = load_workbook(io.BytesIO(written.read_bytes()))
    assert wb.sheetnames == ["430621101-耕地地力保护补贴"]
    sheet = wb.active
    assert sheet is not None
    assert "导出：op101" in str([c.value for row in sheet.iter_rows() for c in row])
    refused = invoke_as(run, "op101", "corrections", "export", "--out", "x.xlsx", "--unmasked")
    assert refused.exit_code == 1 and "必须说明理由" in refused.output
    marked = ok_as(run, "op101", "corrections", "mark-returned", "1")
    assert "更正清单 1：2 笔明细已标记为已退回修改" in marked
    assert item_state(ctx, "K-1", 1) == ItemState.RETURNED
    assert [r.actor for r in audit_rows(ctx, "correction_list.mark_returned")] == ["op101"]


def test_refunds_maker_checker_on_the_command_line(ctx: Context, run: CliRunner) -> None:
    two_failed(ctx)
    common = ["--reason", "当年无法更正", *AS_OF]
    out = ok_as(run, "county.sup", "refunds", "propose", "--batch-no", "K-2", *common)
    assert "#1 待审核 2026年" in out and "2 笔 200.03 元" in out
    assert "提交 county.sup" in out
    same = invoke_as(run, "county.sup", "refunds", "approve", "1")
    assert same.exit_code == 1 and "提交人不能审核" in same.output
    assert "maker_checker" in same.output
    operator = invoke_as(run, "op101", "refunds", "approve", "1")
    assert operator.exit_code == 1 and "只有复核员可以执行此操作" in operator.output
    assert "forbidden" in operator.output
    out = ok_as(run, "county.sup2", "refunds", "approve", "1")
    assert "已批准退回国库" in out and "国库退库编号 TK" in out and "审核 county.sup2" in out
    again = invoke_as(run, "county.sup", "refunds", "reject", "1", "--reason", "否")
    assert again.exit_code == 1 and "不能再次审核" in again.output
    listed = json.loads(ok_as(run, "aud", "refunds", "list", "--json"))
    assert listed["approved"] == {"count": 2, "amount_fen": 20003}
    assert [(r["state"], r["proposed_by"], r["decided_by"]) for r in listed["refunds"]] == [
        ("approved", "county.sup", "county.sup2")
    ]
    shown = json.loads(ok_as(run, "aud", "refunds", "show", "1", "--json"))
    assert [i["reissue_of"] for i in shown["items"]] == [
        {"batch_no": "K-2", "seq": 1},
        {"batch_no": "K-2", "seq": 2},
    ]
    assert PEOPLE[0].id_number not in json.dumps(shown, ensure_ascii=False)
    assert [r.actor for r in audit_rows(ctx, "refund.list")] == ["aud"]


@pytest.mark.parametrize(
    "lookalike",
    [
        "ｃｏｕｎｔｙ.ｓｕｐ",  # full width: the same account, logged in
        "COUNTY.SUP",  # case: the same account
        "county.sup\u200b",  # zero-width space: refused at login
        "county\u00ad.sup",  # soft hyphen: refused at login
        "\ufeffcounty.sup",  # byte-order mark: refused at login
        "county.sup\u202e",  # bidi override: refused at login
    ],
)
def test_a_lookalike_name_is_the_same_person_or_refused(
    ctx: Context, run: CliRunner, lookalike: str
) -> None:
    two_failed(ctx)
    ok_as(
        run, "county.sup", "refunds", "propose", "--batch-no", "K-2", "--reason", "无法更正", *AS_OF
    )
    result = invoke_as(run, lookalike, "refunds", "approve", "1")
    assert result.exit_code == 1
    assert "提交人不能审核" in result.output or "用户名或密码错误" in result.output
    assert refund_state(ctx, 1) == "proposed"
    assert item_state(ctx, "K-2", 1) == ItemState.FAILED
    assert not audit_rows(ctx, "refund.approve")


def test_free_text_operator_names_are_refused(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    two_failed(ctx)
    for args in (
        ["refunds", "propose", "--operator", "张出纳", "--batch-no", "K-2", "--reason", "x"],
        ["refunds", "list", "--operator", "钱主任"],
        ["corrections", "export", "--operator", "李会计", "--out", str(tmp_path)],
        ["history", "--id-number", PEOPLE[0].id_number, "--operator", "审计员"],
        ["selfcheck", "run", "--operator", "审计员"],
    ):
        refused = run.invoke(app, args, input=PASSWORD + "\n")
        assert refused.exit_code == 2, refused.output
        assert "--operator 已停用" in refused.output and "option_removed" in refused.output
    missing = run.invoke(app, ["refunds", "list"])
    assert missing.exit_code == 2 and "--account" in missing.output
    # no option takes the password on the command line, where ps shows it
    plain = run.invoke(app, ["refunds", "list", "--account", "aud", "--password", PASSWORD])
    assert plain.exit_code == 2 and "No such option" in plain.output
    with ctx.sessions() as s:
        assert s.scalar(select(TreasuryRefund)) is None
    assert not audit_rows(ctx, "refund.list")


def test_the_password_comes_from_a_file_or_the_environment(
    ctx: Context, run: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    by_file = run.invoke(
        app, ["refunds", "list", "--account", "aud", "--password-file", str(secret), "--json"]
    )
    assert by_file.exit_code == 0, by_file.output
    assert json.loads(by_file.stdout)["refunds"] == []
    assert "账户 aud（吴审计）" in by_file.stderr
    monkeypatch.setenv("GATEWAY_ACCOUNT_PASSWORD", PASSWORD)
    by_env = run.invoke(app, ["refunds", "list", "--account", "aud"])
    assert by_env.exit_code == 0, by_env.output
    monkeypatch.setenv("GATEWAY_ACCOUNT_PASSWORD", "Wrong-Pass-2026!")
    wrong = run.invoke(app, ["refunds", "list", "--account", "aud"])
    assert wrong.exit_code == 1 and "用户名或密码错误" in wrong.output
    logins = [(r.actor, (r.detail or {}).get("channel")) for r in audit_rows(ctx, "login.ok")]
    assert logins == [("aud", "cli"), ("aud", "cli")]
    assert [r.actor for r in audit_rows(ctx, "login.failed")] == ["aud"]


def test_the_command_line_locks_out_as_the_dashboard_does(ctx: Context, run: CliRunner) -> None:
    for _ in range(ctx.settings.dashboard_lockout_failures - 1):
        bad = invoke_as(run, "aud", "refunds", "list", password="Wrong-Pass-2026!")
        assert bad.exit_code == 1 and "login_bad_credentials" in bad.output
    locked = invoke_as(run, "aud", "refunds", "list", password="Wrong-Pass-2026!")
    assert locked.exit_code == 1 and "账户已锁定" in locked.output
    # locked for the dashboard too, even with the right password
    again = invoke_as(run, "aud", "refunds", "list")
    assert again.exit_code == 1 and "login_locked" in again.output
    assert "error=locked" in DashClient(ctx).login("aud", PASSWORD).headers["location"]
    # an unknown name answers exactly alike
    for _ in range(ctx.settings.dashboard_lockout_failures - 1):
        bad = invoke_as(run, "nobody", "refunds", "list", password="Wrong-Pass-2026!")
        assert bad.exit_code == 1 and "login_bad_credentials" in bad.output
    locked = invoke_as(run, "nobody", "refunds", "list", password="Wrong-Pass-2026!")
    assert locked.exit_code == 1 and "login_locked" in locked.output


def test_roles_and_regions_are_the_dashboards(ctx: Context, run: CliRunner, tmp_path: Path) -> None:
    two_failed(ctx)  # township 430621101
    auditor = invoke_as(run, "aud", "refunds", "propose", "--batch-no", "K-2", "--reason", "x")
    assert auditor.exit_code == 1 and "您的角色只能查看，不能操作" in auditor.output
    admin = invoke_as(run, "admin", "refunds", "list")
    assert admin.exit_code == 1 and "系统管理员不能查看支付数据" in admin.output
    # another township's operator finds nothing to act on
    other = invoke_as(run, "op102", "corrections", "export", "--out", str(tmp_path))
    assert other.exit_code == 1 and "没有符合条件的支付失败明细" in other.output
    ids = [str(item(ctx, "K-2", n).id) for n in (1, 2)]
    items = [a for i in ids for a in ("--item", i)]
    foreign = invoke_as(run, "op102", "refunds", "propose", *items, "--reason", "x", *AS_OF)
    assert foreign.exit_code == 1 and "not_found" in foreign.output
    ok_as(run, "op101", "refunds", "propose", *items, "--reason", "无法更正", *AS_OF)
    assert json.loads(ok_as(run, "op102", "refunds", "list", "--json"))["refunds"] == []
    hidden = invoke_as(run, "op102", "refunds", "show", "1")
    assert hidden.exit_code == 1 and "退库单 1 不存在" in hidden.output
    assert len(json.loads(ok_as(run, "op101", "refunds", "list", "--json"))["refunds"]) == 1
    ok_as(run, "op101", "corrections", "export", "--out", str(tmp_path))
    foreign_list = invoke_as(run, "op102", "corrections", "mark-returned", "1")
    assert foreign_list.exit_code == 1 and "更正清单 1 不存在" in foreign_list.output
    history = ok_as(run, "op102", "history", "--id-number", PEOPLE[0].id_number)
    assert "0 笔明细" in history


def test_an_expired_password_must_be_changed_on_the_dashboard_first(
    ctx: Context, run: CliRunner
) -> None:
    from gateway.dashboard.accounts import create_account
    from gateway.kit.db import session_scope

    with session_scope(ctx.sessions) as s:
        create_account(
            s, ctx.settings, username="newbie", real_name="新用户", role="auditor", regions=[],
            password=PASSWORD, created_by="test",
        )  # fmt: skip
    refused = invoke_as(run, "newbie", "refunds", "list")
    assert refused.exit_code == 1 and "password_expired" in refused.output


def test_dashboard_and_command_line_record_one_identity(ctx: Context, run: CliRunner) -> None:
    ctx.settings.refund_cutoff = "01-01"
    two_failed(ctx, "K-5")
    two_failed(ctx, "K-6", first=2)
    sup = DashClient(ctx)
    assert "/login" not in sup.login("county.sup", PASSWORD).headers["location"]
    ids = [item(ctx, "K-5", n).id for n in (1, 2)]
    proposed = sup.post(
        "/failed/actions",
        {"action": "refund", "scope": "checked", "item": ids, "refund_reason": "无法更正"},
    )
    assert proposed.status_code == 303, proposed.text
    # proposed on the dashboard: the same account cannot approve it on the command line
    same = invoke_as(run, "county.sup", "refunds", "approve", "1")
    assert same.exit_code == 1 and "提交人不能审核" in same.output
    ok_as(run, "county.sup2", "refunds", "approve", "1")
    # proposed on the command line: the same account cannot approve it on the dashboard
    ok_as(
        run, "county.sup", "refunds", "propose", "--batch-no", "K-6", "--reason", "无法更正", *AS_OF
    )
    refused = sup.post("/refunds/2/approve", {"note": "同意"})
    assert refused.status_code == 400 and "提交人不能审核" in refused.text
    assert refund_state(ctx, 2) == "proposed"
    actors = [(r.action, r.actor) for r in audit_rows(ctx, "refund.propose")]
    actors += [(r.action, r.actor) for r in audit_rows(ctx, "refund.approve")]
    assert actors == [
        ("refund.propose", "county.sup"),
        ("refund.propose", "county.sup"),
        ("refund.approve", "county.sup2"),
    ]


def test_history_is_masked_audited_and_named_by_the_account(ctx: Context, run: CliRunner) -> None:
    batch(ctx, "K-3", PEOPLE[:1])
    fail(ctx, "K-3", [1])
    out = ok_as(run, "op101", "history", "--id-number", PEOPLE[0].id_number)
    assert "1 笔明细" in out and "支付失败" in out and "处理建议" in out
    assert PEOPLE[0].id_number not in out and PEOPLE[0].account_no not in out
    as_json = json.loads(ok_as(run, "aud", "history", "--id-number", PEOPLE[0].id_number, "--json"))
    assert as_json["chains"][0]["entries"][0]["batch_no"] == "K-3"
    assert [r.actor for r in audit_rows(ctx, "history.query")] == ["op101", "aud"]
    bad = invoke_as(run, "aud", "history", "--id-number", "123")
    assert bad.exit_code == 1 and "身份证号码无效" in bad.output
