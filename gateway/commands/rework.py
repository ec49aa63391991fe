"""``gateway corrections|refunds|history``: the operator's commands for failed payments.

Every command logs its person in with their dashboard account (``--account LOGIN``, the
password asked for or read from ``--password-file`` / ``$GATEWAY_ACCOUNT_PASSWORD``: real-
name users, Article 11 (二)) and applies the dashboard's rules for the same action: the
role (acting needs an operator or supervisor, deciding a refund a supervisor) and the
regions (a township account sees and acts on its township only). What is recorded is the
account's login name, as on the dashboard: the proposer of a refund cannot approve it from
either channel. Every query of personal data and every important operation is written to
the audit log. Output is masked.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.dashboard.accounts import Permission, Principal
from gateway.dashboard.cli import (
    AccountOption,
    PasswordFileOption,
    RemovedOperatorOption,
    sign_in,
)
from gateway.kit.money import format_yuan

if TYPE_CHECKING:
    from gateway.context import Context
    from gateway.rework.history import PersonHistory
    from gateway.rework.refunds import RefundView

corrections_app = typer.Typer(
    help="Correction lists (更正清单) for the township stations.", no_args_is_help=True
)
refunds_app = typer.Typer(help="Treasury refunds (退回国库), maker-checker.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextmanager
def operator_context() -> Iterator[Context]:
    """The context of one command; a refused operation is printed (Chinese and English,
    with its code) and exits 1."""
    from gateway.context import Context  # noqa: PLC0415
    from gateway.kit.logging import configure_logging  # noqa: PLC0415
    from gateway.rework.errors import ReworkError  # noqa: PLC0415
    from gateway.settings import Settings  # noqa: PLC0415

    settings = Settings()
    log_file = settings.log_file
    if log_file is not None and log_file.is_dir():
        log_file = log_file / "operator.log"
    configure_logging(json=settings.log_json, level=settings.log_level, file=log_file)
    ctx = Context.build(settings)
    try:
        yield ctx
    except ReworkError as exc:
        typer.echo(f"错误：{exc.message_zh}（{exc.code}）\nerror: {exc.message_en}", err=True)
        problems = getattr(exc, "problems", None)
        if problems:
            for item_id, problem in sorted(problems.items())[:50]:
                typer.echo(f"  明细 {item_id}: {problem}", err=True)
        raise typer.Exit(1) from None
    finally:
        ctx.close()


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


# --- correction lists -------------------------------------------------------------------


@corrections_app.command("export")
def corrections_export(
    out: Annotated[Path, typer.Option(help="Where to write the XLSX (file or directory).")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    batch_no: Annotated[
        list[str] | None, typer.Option("--batch-no", help="Only these batches (repeat).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="Only this township region code.")] = None,
    subsidy: Annotated[str | None, typer.Option(help="Only this subsidy item code.")] = None,
    fiscal_year: Annotated[int | None, typer.Option(help="Only this fiscal year.")] = None,
    include_returned: Annotated[
        bool, typer.Option(help="Also list items already marked returned (reprint).")
    ] = False,
    unmasked: Annotated[
        bool, typer.Option(help="Names, ID and account numbers in clear (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --unmasked).")] = None,
    operator: RemovedOperatorOption = None,
) -> None:
    """Export failed items as a correction list (XLSX, a sheet per township/subsidy).

    Operators and supervisors; the items of their regions only."""
    from gateway.rework.corrections import export_correction_list  # noqa: PLC0415

    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.ACT, operator=operator)
        result = export_correction_list(
            ctx,
            operator=who.actor,
            batch_nos=batch_no or None,
            region_code=region,
            subsidy_code=subsidy,
            fiscal_year=fiscal_year,
            include_returned=include_returned,
            unmasked=unmasked,
            reason_text=reason,
            regions=who.region_filter(),
        )
    target = out / result.file_name if out.is_dir() else out
    target.write_bytes(result.content)
    typer.echo(
        f"更正清单 {result.list_id}：{len(result.item_ids)} 笔，"
        f"{format_yuan(result.amount_fen)} 元，{len(result.sheets)} 个工作表"
        f"{'（未脱敏）' if result.unmasked else ''} → {target}"
    )
    typer.echo(f"标记为已退回修改：gateway corrections mark-returned {result.list_id} --account …")


@corrections_app.command("mark-returned")
def corrections_mark_returned(
    list_id: Annotated[int, typer.Argument(help="Correction list number.")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    operator: RemovedOperatorOption = None,
) -> None:
    """Mark the items of a correction list as returned for correction (failed → returned).

    Operators and supervisors of the list's regions."""
    from gateway.rework.corrections import mark_returned  # noqa: PLC0415

    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.ACT, operator=operator)
        moved = mark_returned(ctx, list_id, who.actor, regions=who.region_filter())
    typer.echo(f"更正清单 {list_id}：{moved} 笔明细已标记为已退回修改")


# --- treasury refunds ---------------------------------------------------------------------


def _refund_line(r: RefundView) -> str:
    decided = f" 审核 {r.decided_by} {r.decided_at:%Y-%m-%d}" if r.decided_at else ""
    ref = f" 国库退库编号 {r.treasury_ref}" if r.treasury_ref else ""
    return (
        f"#{r.id} {r.state_zh} {r.fiscal_year}年 账户 {r.payer_account} "
        f"{r.item_count} 笔 {format_yuan(r.amount_fen)} 元 "
        f"提交 {r.proposed_by} {r.proposed_at:%Y-%m-%d}{decided}{ref} 理由：{r.reason}"
    )


@refunds_app.command("propose")
def refunds_propose(
    reason: Annotated[str, typer.Option(help="Why these items go back to the treasury.")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    item: Annotated[list[int] | None, typer.Option("--item", help="Item id (repeat).")] = None,
    batch_no: Annotated[str | None, typer.Option(help="Every unpaid item of a batch.")] = None,
    fiscal_year: Annotated[int | None, typer.Option(help="Every unpaid item of a year.")] = None,
    payer_account: Annotated[str | None, typer.Option(help="Only this payer account.")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Judge the cut-off on this day (YYYY-MM-DD).")
    ] = None,
    operator: RemovedOperatorOption = None,
) -> None:
    """Propose a treasury refund of unpaid items past the cut-off (the maker's half).

    Operators and supervisors; the items of their regions only."""
    from gateway.rework.refunds import propose_refund  # noqa: PLC0415

    day = _day(as_of, "--as-of")
    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.ACT, operator=operator)
        refund = propose_refund(
            ctx,
            proposer=who.actor,
            reason=reason,
            item_ids=item or None,
            batch_no=batch_no,
            fiscal_year=fiscal_year,
            payer_account=payer_account,
            as_of=day,
            regions=who.region_filter(),
        )
    typer.echo(_refund_line(refund))
    typer.echo(f"待另一名复核员审核：gateway refunds approve {refund.id} --account …")


def _day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("YYYY-MM-DD", param_hint=option) from None


def _decide(
    account: str | None,
    password_file: Path | None,
    operator: str | None,
    action: Callable[[Context, Principal], RefundView],
) -> None:
    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.APPROVE, operator=operator)
        refund = action(ctx, who)
    typer.echo(_refund_line(refund))


@refunds_app.command("approve")
def refunds_approve(
    refund_id: Annotated[int, typer.Argument(help="Refund number.")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
    operator: RemovedOperatorOption = None,
) -> None:
    """Approve a proposed refund (a supervisor; never the proposer's account).

    Only a refund all of whose items lie in the supervisor's regions."""
    from gateway.rework.refunds import approve_refund  # noqa: PLC0415

    _decide(
        account,
        password_file,
        operator,
        lambda ctx, who: approve_refund(
            ctx, refund_id, who.actor, note=note, regions=who.region_filter()
        ),
    )


@refunds_app.command("reject")
def refunds_reject(
    refund_id: Annotated[int, typer.Argument(help="Refund number.")],
    reason: Annotated[str, typer.Option(help="Why it is rejected.")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    operator: RemovedOperatorOption = None,
) -> None:
    """Reject a proposed refund (a supervisor; never the proposer's account).

    Only a refund all of whose items lie in the supervisor's regions."""
    from gateway.rework.refunds import reject_refund  # noqa: PLC0415

    _decide(
        account,
        password_file,
        operator,
        lambda ctx, who: reject_refund(
            ctx, refund_id, who.actor, reason, regions=who.region_filter()
        ),
    )


@refunds_app.command("list")
def refunds_list(
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    state: Annotated[str | None, typer.Option(help="proposed, approved or rejected.")] = None,
    as_json: AsJson = False,
    operator: RemovedOperatorOption = None,
) -> None:
    """List treasury refunds, newest first, and the approved total (your regions)."""
    from gateway.rework import audit  # noqa: PLC0415
    from gateway.rework.refunds import RefundState, list_refunds, refund_summary  # noqa: PLC0415

    if state is not None and state not in {s.value for s in RefundState}:
        raise typer.BadParameter("proposed, approved or rejected", param_hint="--state")
    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.SEE_PAYMENTS, operator=operator)
        refunds = list_refunds(ctx, state=state, regions=who.region_filter())
        summary = refund_summary(ctx, regions=who.region_filter())
        with ctx.sessions.begin() as session:
            audit.record(
                session, actor=who.actor, action="refund.list", target_type="treasury_refund"
            )
    if as_json:
        _echo_json({"refunds": [r.as_dict() for r in refunds], "approved": summary})
        return
    for r in refunds:
        typer.echo(_refund_line(r))
    typer.echo(
        f"已批准退回国库合计：{summary['count']} 笔，{format_yuan(summary['amount_fen'])} 元"
    )


@refunds_app.command("show")
def refunds_show(
    refund_id: Annotated[int, typer.Argument(help="Refund number.")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    as_json: AsJson = False,
    operator: RemovedOperatorOption = None,
) -> None:
    """One refund with its items (masked) and the reference to re-issue each later.

    Only a refund all of whose items lie in your regions."""
    from gateway.rework import audit  # noqa: PLC0415
    from gateway.rework.refunds import get_refund, refund_items  # noqa: PLC0415

    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.SEE_PAYMENTS, operator=operator)
        refund = get_refund(ctx, refund_id, regions=who.region_filter())
        items = refund_items(ctx, refund_id, regions=who.region_filter())
        with ctx.sessions.begin() as session:
            audit.record(
                session,
                actor=who.actor,
                action="refund.show",
                target_type="treasury_refund",
                target_id=refund_id,
            )
    if as_json:
        _echo_json(
            {
                "refund": refund.as_dict(),
                "items": [
                    {
                        "item_id": i.item_id,
                        "batch_no": i.batch_no,
                        "seq": i.seq,
                        "amount_fen": i.amount_fen,
                        "state": i.state,
                        "name_masked": i.name_masked,
                        "id_number_masked": i.id_number_masked,
                        "account_masked": i.account_masked,
                        "reissue_of": i.reissue_of,
                    }
                    for i in items
                ],
            }
        )
        return
    typer.echo(_refund_line(refund))
    for i in items:
        typer.echo(
            f"  明细 {i.item_id} 批次 {i.batch_no} #{i.seq} {i.name_masked} "
            f"{i.id_number_masked} {i.account_masked} {format_yuan(i.amount_fen)} 元 "
            f"现状态 {i.state} 重新发放引用 reissue_of={json.dumps(i.reissue_of)}"
        )


# --- a person's history -------------------------------------------------------------------


def history(
    id_number: Annotated[str, typer.Option("--id-number", help="The person's ID number.")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    as_json: AsJson = False,
    operator: RemovedOperatorOption = None,
) -> None:
    """A person's payments across batches with the re-issue chains (masked, audited).

    Only the payments of your regions, as on the dashboard."""
    from gateway.rework.history import PaymentChain, PersonHistory, payment_history  # noqa: PLC0415

    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.SEE_PAYMENTS, operator=operator)
        found = payment_history(ctx, id_number, operator=who.actor)
    # as on the dashboard's page: entries of other regions are left out
    chains = [
        PaymentChain(shown)
        for chain in found.chains
        if (shown := [e for e in chain.entries if who.may_see_region(e.region_code)])
    ]
    found = PersonHistory(id_number_masked=found.id_number_masked, chains=chains)
    if as_json:
        _echo_json(found.as_dict())
        return
    for line in history_lines(found):
        typer.echo(line)


def history_lines(found: PersonHistory) -> list[str]:
    """The history as text lines for a terminal (masked)."""
    from gateway.rework.refunds import RefundState  # noqa: PLC0415

    lines = [
        f"身份证号 {found.id_number_masked}：{found.item_count} 笔明细，"
        f"{len(found.chains)} 条发放记录"
    ]
    for n, chain in enumerate(found.chains, start=1):
        o = chain.original
        lines.append(
            f"[{n}] {o.subsidy_name}（{o.subsidy_code}）{o.period} 乡镇 {o.region_code} "
            f"— 结果：{chain.latest.state_zh}，已支付 {format_yuan(chain.paid_fen)} 元"
        )
        for k, e in enumerate(chain.entries):
            arrow = "  " if k == 0 else "  → 重新发放 "
            paid = f" 支付于 {e.paid_at:%Y-%m-%d}" if e.paid_at else ""
            lines.append(
                f"{arrow}批次 {e.batch_no} #{e.seq} {e.name_masked} {e.account_masked} "
                f"{format_yuan(e.amount_fen)} 元 {e.state_zh}{paid}"
            )
            if e.reason_zh:
                bank = " ".join(p for p in (e.bank_code, e.bank_message) if p)
                lines.append(f"      失败原因：{e.reason_zh}{f'（银行：{bank}）' if bank else ''}")
                lines.append(f"      处理建议：{e.action_zh}")
            for list_id in e.correction_lists:
                lines.append(f"      更正清单：{list_id}")
            for r in e.refunds:
                ref = f" 国库退库编号 {r.treasury_ref}" if r.treasury_ref else ""
                label = RefundState(r.state).label_zh
                lines.append(f"      退回国库：退库单 #{r.refund_id}（{label}）{ref}")
    return lines
