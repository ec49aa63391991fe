"""``gateway accounts``: dashboard accounts from the command line (the first administrator
is created here; afterwards administrators use the dashboard's account pages)."""

from __future__ import annotations

import secrets
import string
from typing import Annotated

import typer

from gateway.dashboard.accounts import AccountError, create_account, find_account, unlock
from gateway.settings import Settings

accounts_app = typer.Typer(help="Dashboard accounts.", no_args_is_help=True)


def generated_password() -> str:
    """A one-time password that passes the policy (upper, lower, digit, symbol)."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(14))
    return core + secrets.choice(string.ascii_uppercase) + secrets.choice("!#%+-=?@")[0] + "7"


@accounts_app.command("create")
def create(
    username: Annotated[str, typer.Option(help="Login name (lower case).")],
    real_name: Annotated[str, typer.Option("--name", help="The person's real name.")],
    role: Annotated[str, typer.Option(help="operator | supervisor | auditor | admin")],
    region: Annotated[
        list[str] | None, typer.Option(help="Region code prefix they may see (repeatable).")
    ] = None,
    supervisor: Annotated[str | None, typer.Option(help="Their supervisor's user name.")] = None,
    by: Annotated[str, typer.Option(help="Who creates the account (audit log).")] = "cli",
) -> None:
    """Create an account with a one-time password (printed once; changed at first login)."""
    from gateway.context import Context  # noqa: PLC0415
    from gateway.kit.db import session_scope  # noqa: PLC0415

    settings = Settings()
    ctx = Context.build(settings)
    password = generated_password()
    try:
        with session_scope(ctx.sessions) as s:
            create_account(
                s, settings, username=username, real_name=real_name, role=role,
                regions=region or [], password=password, created_by=by, supervisor=supervisor,
            )  # fmt: skip
    except AccountError as exc:
        typer.echo(f"refused: {exc.zh} ({exc.en}) [{exc.code}]", err=True)
        raise typer.Exit(2) from None
    finally:
        ctx.close()
    typer.echo(f"created {username}; one-time password (shown once): {password}")


@accounts_app.command("unlock")
def unlock_cmd(
    username: Annotated[str, typer.Argument(help="Login name.")],
    by: Annotated[str, typer.Option(help="Who unlocks (audit log).")] = "cli",
) -> None:
    """Unlock an account locked after repeated failed logins."""
    from gateway.context import Context  # noqa: PLC0415
    from gateway.kit.db import session_scope  # noqa: PLC0415

    ctx = Context.build(Settings())
    try:
        with session_scope(ctx.sessions) as s:
            account = find_account(s, username)
            if account is None:
                typer.echo(f"no account {username!r}", err=True)
                raise typer.Exit(2)
            unlock(s, account, by=by)
    finally:
        ctx.close()
    typer.echo(f"unlocked {username}")
