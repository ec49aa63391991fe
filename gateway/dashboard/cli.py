"""``gateway accounts``: dashboard accounts from the command line, and logging in with one
on the command line.

Every command that acts or reads payment data names the dashboard account of the person
running it (``--account LOGIN``) and proves it with the account's password: asked for on
the terminal without echo, or, for scripts, read from ``--password-file`` or from the
``GATEWAY_ACCOUNT_PASSWORD`` environment variable — never a command-line argument, which
any user of the machine sees in ``ps``. The check is the dashboard's own
(``gateway.dashboard.accounts.authenticate``: argon2id, lockout, disabled accounts, every
attempt in the audit log), and so are the role rules (``Permission``): what a role may not
do on the dashboard it may not do here. What is recorded is the account's login name, as
on the dashboard, so one person has one identity in both.

The first administrator is created here without logging in (no administrator exists yet);
afterwards ``accounts create`` and ``accounts unlock`` need an administrator's account, as
the dashboard's account pages do.
"""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway.dashboard.accounts import (
    LOGIN_MESSAGES,
    AccountError,
    LoginResult,
    Permission,
    Principal,
    Role,
    authenticate,
    create_account,
    find_account,
    password_expired,
    principal_of,
    require,
    unlock,
)
from gateway.kit.db import session_scope
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.context import Context

accounts_app = typer.Typer(help="Dashboard accounts.", no_args_is_help=True)

PASSWORD_ENV = "GATEWAY_ACCOUNT_PASSWORD"  # noqa: S105 (the name of the variable)
# the actor of the one action taken before any account can log in: the first administrator
BOOTSTRAP_ACTOR = "cli-bootstrap"

AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account",
        metavar="LOGIN",
        help="Your dashboard account's login name (实名账户). Its password is asked for "
        f"(not echoed), or read from --password-file or ${PASSWORD_ENV}.",
        show_default=False,
    ),
]
PasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        help="Read the account's password from the first line of FILE (for scripts; "
        "keep the file readable by you only).",
        dir_okay=False,
        show_default=False,
    ),
]
RemovedOperatorOption = Annotated[
    str | None,
    typer.Option("--operator", hidden=True, help="Removed: use --account LOGIN."),
]


def refuse(code: str, zh: str, en: str, *, exit_code: int = 1) -> typer.Exit:
    """Print a refusal (Chinese, English, code) on stderr; the caller raises the result."""
    typer.echo(f"错误：{zh}（{code}）\nerror: {en} [{code}]", err=True)
    return typer.Exit(exit_code)


def removed_option(name: str, value: str | None) -> None:
    """Refuse an option that named who acts as free text (``--operator``, ``--by``)."""
    if value is not None:
        raise refuse(
            "option_removed",
            f"{name} 已停用：请用 --account 登录名 以本人的管理台账户登录（密码在提示时输入）",
            f"{name} was removed: log in with your dashboard account, --account LOGIN "
            "(the password is asked for)",
            exit_code=2,
        )


def read_password(password_file: Path | None) -> str:
    """The password from ``password_file``, else from ``$GATEWAY_ACCOUNT_PASSWORD``, else
    asked for on the terminal (not echoed)."""
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise refuse(
                "password_file_unreadable",
                f"无法读取密码文件 {password_file}",
                f"cannot read the password file {password_file}",
                exit_code=2,
            ) from None
        return text.splitlines()[0] if text else ""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    value: str = typer.prompt("密码 Password", hide_input=True, err=True)
    return value


def sign_in(
    ctx: Context,
    account: str | None,
    password_file: Path | None,
    permission: Permission,
    *,
    operator: str | None = None,
) -> Principal:
    """Log ``account`` in for one command, as the dashboard's login does, and check that
    its role may do what ``permission`` names. Refuses (exit 1, or 2 for a usage error)
    with the reason; ``operator`` is the removed ``--operator`` option, refused."""
    removed_option("--operator", operator)
    if not account:
        raise refuse(
            "account_required",
            "必须用 --account 登录名 指明本人的管理台账户",
            "name your dashboard account with --account LOGIN",
            exit_code=2,
        )
    password = read_password(password_file)
    with session_scope(ctx.sessions) as s:
        result, found = authenticate(
            s, ctx.settings, account, password, client_ip=None, channel="cli"
        )
        principal = principal_of(found) if found is not None else None
        expired = found is not None and password_expired(ctx.settings, found)
    if result is not LoginResult.OK or principal is None:
        zh, en = LOGIN_MESSAGES[result]
        raise refuse(f"login_{result.value}", zh, en)
    if expired:
        raise refuse(
            "password_expired",
            "密码已过期或为初始密码：请先在管理台修改密码",
            "the password has expired or is a one-time password: change it on the dashboard",
        )
    try:
        require(principal, permission)
    except AccountError as exc:
        raise refuse(exc.code, exc.zh, exc.en) from None
    typer.echo(f"账户 {principal.display}", err=True)
    return principal


def generated_password() -> str:
    """A one-time password that passes the policy (upper, lower, digit, symbol)."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(14))
    return core + secrets.choice(string.ascii_uppercase) + secrets.choice("!#%+-=?@")[0] + "7"


def _has_administrator(ctx: Context) -> bool:
    from sqlalchemy import select  # noqa: PLC0415

    from gateway.dashboard.models import OperatorAccount  # noqa: PLC0415

    with ctx.sessions() as s:
        found = s.scalar(
            select(OperatorAccount.id).where(
                OperatorAccount.role == Role.ADMIN.value, OperatorAccount.disabled.is_(False)
            )
        )
    return found is not None


def _administrator(
    ctx: Context, account: str | None, password_file: Path | None, by: str | None
) -> str:
    """The actor of an account command: an administrator who logs in, or (only while no
    enabled administrator exists) the bootstrap of the first one."""
    removed_option("--by", by)
    if account is None and not _has_administrator(ctx):
        return BOOTSTRAP_ACTOR
    return sign_in(ctx, account, password_file, Permission.MANAGE_ACCOUNTS).actor


@accounts_app.command("create")
def create(
    username: Annotated[str, typer.Option(help="Login name (lower case).")],
    real_name: Annotated[str, typer.Option("--name", help="The person's real name.")],
    role: Annotated[str, typer.Option(help="operator | supervisor | auditor | admin")],
    region: Annotated[
        list[str] | None, typer.Option(help="Region code prefix they may see (repeatable).")
    ] = None,
    supervisor: Annotated[str | None, typer.Option(help="Their supervisor's user name.")] = None,
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    by: Annotated[str | None, typer.Option("--by", hidden=True, help="Removed.")] = None,
) -> None:
    """Create an account with a one-time password (printed once; changed at first login).

    Needs an administrator's --account, except for the first administrator (while no
    enabled administrator exists, only an admin account may be created, without logging
    in)."""
    from gateway.context import Context  # noqa: PLC0415

    settings = Settings()
    ctx = Context.build(settings)
    password = generated_password()
    try:
        actor = _administrator(ctx, account, password_file, by)
        if actor == BOOTSTRAP_ACTOR and role != Role.ADMIN.value:
            raise refuse(
                "administrator_first",
                "尚无系统管理员：请先创建系统管理员账户（--role admin）",
                "no administrator exists yet: create one first (--role admin)",
            )
        with session_scope(ctx.sessions) as s:
            created = create_account(
                s, settings, username=username, real_name=real_name, role=role,
                regions=region or [], password=password, created_by=actor, supervisor=supervisor,
            )  # fmt: skip
            login = created.username
    except AccountError as exc:
        raise refuse(exc.code, exc.zh, exc.en, exit_code=2) from None
    finally:
        ctx.close()
    typer.echo(f"created {login}; one-time password (shown once): {password}")


@accounts_app.command("unlock")
def unlock_cmd(
    username: Annotated[str, typer.Argument(help="Login name.")],
    account: AccountOption = None,
    password_file: PasswordFileOption = None,
    by: Annotated[str | None, typer.Option("--by", hidden=True, help="Removed.")] = None,
) -> None:
    """Unlock an account locked after repeated failed logins.

    An administrator's --account."""
    from gateway.context import Context  # noqa: PLC0415

    ctx = Context.build(Settings())
    try:
        removed_option("--by", by)
        actor = sign_in(ctx, account, password_file, Permission.MANAGE_ACCOUNTS)
        with session_scope(ctx.sessions) as s:
            found = find_account(s, username)
            if found is None:
                raise refuse(
                    "account_not_found", "账户不存在", f"no account {username!r}", exit_code=2
                )
            unlock(s, found, by=actor.actor)
            login = found.username
    finally:
        ctx.close()
    typer.echo(f"unlocked {login}")
