"""``gateway selfcheck run|export``: the self-check from the command line (masked output,
operator named, audited like the rework commands)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.rework.cli import _context as operator_context

selfcheck_app = typer.Typer(
    help="Self-check (自查) of payments: shared accounts, double payments, mismatches.",
    no_args_is_help=True,
)


def _day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("YYYY-MM-DD", param_hint=option) from None


@selfcheck_app.command("run")
def selfcheck_run(
    since: Annotated[
        str | None, typer.Option(help="First day of batches to check (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last day of batches to check (YYYY-MM-DD), default today.")
    ] = None,
    operator: Annotated[
        str | None, typer.Option("--operator", help="Your operator name (default: login name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run a self-check now (default: batches received in the last twelve months)."""
    from gateway.selfcheck.service import KIND_LABELS, get_report, run_selfcheck  # noqa: PLC0415

    first, last = _day(since, "--since"), _day(until, "--until")
    with operator_context() as ctx:
        report_id = run_selfcheck(
            ctx, requested_by=operator or getpass.getuser(), since=first, until=last
        )
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
    typer.echo(f"导出：gateway selfcheck export --report {report.id} --out … --operator …")


@selfcheck_app.command("export")
def selfcheck_export(
    report: Annotated[int, typer.Option("--report", help="Self-check report number.")],
    out: Annotated[Path, typer.Option(help="Where to write the XLSX (file or directory).")],
    operator: Annotated[str, typer.Option("--operator", help="Your own operator name (实名).")],
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="Only findings in this region code prefix (repeat)."),
    ] = None,
) -> None:
    """Export a self-check report as XLSX (masked; one sheet per kind and a summary)."""
    from gateway.selfcheck.export import export_xlsx  # noqa: PLC0415

    with operator_context() as ctx:
        file_name, content = export_xlsx(ctx, report, regions=region or None, actor=operator)
    target = out / file_name if out.is_dir() else out
    target.write_bytes(content)
    typer.echo(f"自查报告 {report} → {target}")
