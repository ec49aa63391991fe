"""``gateway selfcheck run|export``: the self-check from the command line (masked output,
logged in with a dashboard account and held to its role and regions, audited like the
rework commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.commands.rework import _day, operator_context
from gateway.dashboard.accounts import Permission
from gateway.dashboard.cli import (
    AccountOption,
    PasswordFileOption,
    RemovedOperatorOption,
    sign_in,
)

selfcheck_app = typer.Typer(
    help="Self-check (自查) of payments: shared accounts, double payments, mismatches.",
    no_args_is_help=True,
)


def narrowed(scope: tuple[str, ...] | None, wanted: list[str] | None) -> list[str] | None:
    """The region prefixes both in the account's ``scope`` (None: every region) and in
    the ``--region`` prefixes asked for (None: all of the scope)."""
    if not wanted:
        return None if scope is None else list(scope)
    if scope is None:
        return wanted
    inner = {w for w in wanted if any(w.startswith(s) for s in scope)}
    inner |= {s for s in scope if any(s.startswith(w) for w in wanted)}
    return sorted(inner)


@selfcheck_app.command("run")
def selfcheck_run(
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    since: Annotated[
        str | None, typer.Option(help="First day of batches to check (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last day of batches to check (YYYY-MM-DD), default today.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    operator: RemovedOperatorOption = None,
) -> None:
    """Run a self-check now (default: batches received in the last twelve months).

    Operators and supervisors, as on the dashboard."""
    from gateway.selfcheck.service import KIND_LABELS, get_report, run_selfcheck  # noqa: PLC0415

    first, last = _day(since, "--since"), _day(until, "--until")
    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.ACT, operator=operator)
        report_id = run_selfcheck(ctx, requested_by=who.actor, since=first, until=last)
        report = get_report(ctx, report_id)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"自查报告 {report.id}：批次接收期间 {report.period_from} 至 {report.period_to}，"
        f"共 {report.total} 个疑点"
    )
    for kind, n in report.counts.items():
        typer.echo(f"  {KIND_LABELS[kind][0]}（{kind}）：{n}")
    typer.echo(f"导出：gateway selfcheck export --report {report.id} --out … --account …")


@selfcheck_app.command("export")
def selfcheck_export(
    report: Annotated[int, typer.Option("--report", help="Self-check report number.")],
    out: Annotated[Path, typer.Option(help="Where to write the XLSX (file or directory).")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="Only findings in this region code prefix (repeat)."),
    ] = None,
    operator: RemovedOperatorOption = None,
) -> None:
    """Export a self-check report as XLSX (masked; one sheet per kind and a summary).

    Only the findings of your regions (narrowed further by --region)."""
    from gateway.selfcheck.export import export_xlsx  # noqa: PLC0415

    with operator_context() as ctx:
        who = sign_in(ctx, account, password_file, Permission.SEE_PAYMENTS, operator=operator)
        regions = narrowed(who.region_filter(), region)
        file_name, content = export_xlsx(ctx, report, regions=regions, actor=who.actor)
    target = out / file_name if out.is_dir() else out
    target.write_bytes(content)
    typer.echo(f"自查报告 {report} → {target}")
