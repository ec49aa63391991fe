"""``gateway demo --serve``: after the demo, open its database in the operators' dashboard
on loopback, with one demo account per role."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from gateway.context import Context
from gateway.dashboard.accounts import create_account
from gateway.dashboard.models import OperatorAccount
from gateway.kit.db import session_scope
from gateway.settings import Settings

# A demo-only password for the demo's own SQLite file; real accounts get one-time passwords.
DEMO_PASSWORD = "Demo-Pass-2026!"  # noqa: S105 - the demo database only

# username → (real name, role, regions)
DEMO_ACCOUNTS: dict[str, tuple[str, str, list[str]]] = {
    "county.op": ("孙经办", "operator", ["430621"]),
    "county.sup": ("钱复核", "supervisor", ["430621"]),
    "town101.op": ("李乡镇", "operator", ["430621101"]),
    "auditor": ("吴审计", "auditor", []),
    "admin": ("赵管理", "admin", []),
}


def demo_settings(workdir: Path) -> Settings:
    workdir = workdir.resolve()
    return Settings(
        environment="development",
        database_url=f"sqlite:///{workdir / 'gateway.db'}",
        bank_profiles_file=workdir / "banks.toml",
        dashboard_secure_cookies=False,  # plain HTTP on loopback, development only
        log_json=False,
    )


def ensure_demo_accounts(ctx: Context) -> None:
    with session_scope(ctx.sessions) as s:
        existing = set(s.scalars(select(OperatorAccount.username)))
        for username, (name, role, regions) in DEMO_ACCOUNTS.items():
            if username in existing:
                continue
            create_account(
                s,
                ctx.settings,
                username=username,
                real_name=name,
                role=role,
                regions=regions,
                password=DEMO_PASSWORD,
                created_by="demo",
                must_change_password=False,
            )


def instructions(port: int) -> str:
    lines = [
        f"dashboard: http://127.0.0.1:{port}/dashboard/  (Ctrl-C stops it)",
        f"  demo accounts, password {DEMO_PASSWORD}:",
    ]
    for username, (name, role, regions) in DEMO_ACCOUNTS.items():
        scope = ",".join(regions) or ("all regions" if role == "auditor" else "accounts only")
        lines.append(f"    {username:<11} {name} {role:<10} {scope}")
    return "\n".join(lines)


def serve_dashboard(workdir: Path, port: int) -> None:
    """Serve the demo's database (the demo must have run in ``workdir``) until Ctrl-C."""
    import uvicorn  # noqa: PLC0415

    from gateway.api.app import create_app  # noqa: PLC0415
    from gateway.kit.logging import configure_logging  # noqa: PLC0415

    if not (workdir / "gateway.db").exists():
        raise FileNotFoundError(f"no demo database in {workdir}: run `gateway demo` first")
    settings = demo_settings(workdir)
    configure_logging(json=False, level="WARNING", file=workdir / "logs" / "dashboard.log")
    ctx = Context.build(settings)
    ensure_demo_accounts(ctx)
    print(instructions(port), flush=True)
    uvicorn.run(create_app(ctx), host="127.0.0.1", port=port, log_config=None)
