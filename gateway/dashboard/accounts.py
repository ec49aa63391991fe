"""Real-name dashboard accounts: roles, regions, argon2id passwords, lockout, expiry, and
the list of users who have not logged in for too long.

Roles (角色):

- ``operator`` (经办): sees the payments of their regions and acts on failed payments.
- ``supervisor`` (复核): an operator who also approves what needs a second person
  (refunds, manual confirmations, closing cases) and sees who has not logged in.
- ``auditor`` (审计): reads everything, in every region; never acts.
- ``admin`` (系统管理员): manages accounts only; sees no payment data and takes no payment
  action.

One person, one identity: the login name is the actor key written to the audit log and to
every maker-checker record, in every channel (the dashboard, and the command line, which
logs in with the same ``authenticate``). Login names are compared in their folded form
(``gateway.kit.operators.actor_key``: NFKC, case folding), so ``ａｌｉｃｅ`` is ``alice``;
a name holding control or invisible (format) characters is refused at creation and at
login.

Failed logins lock a name after ``dashboard_lockout_failures`` in a row, whether or not an
account has that name: an unknown name answers exactly as a real one does (same message,
same lock, one argon2 verification either way), so the answers tell nobody which accounts
exist. Failures of unknown names are counted from the audit log's ``login.*`` rows, which
every attempt writes anyway: nothing else is stored for them.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.dashboard.models import OperatorAccount
from gateway.dispatch.calendar import UnknownYearError, WorkingCalendar
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.operators import actor_key, name_problem
from gateway.rework.audit import record
from gateway.rework.models import AuditRecord
from gateway.settings import Settings


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"

    def sees_payments(self) -> bool:
        return self is not Role.ADMIN

    def acts_on_payments(self) -> bool:
        """May take payment actions (mark returned, export, propose, re-inquire)."""
        return self in {Role.OPERATOR, Role.SUPERVISOR}

    def approves(self) -> bool:
        """May be the second person of a maker-checker action."""
        return self is Role.SUPERVISOR

    def manages_accounts(self) -> bool:
        return self is Role.ADMIN

    def sees_all_regions(self) -> bool:
        return self is Role.AUDITOR

    @property
    def label_zh(self) -> str:
        return _ROLE_ZH[self]


_ROLE_ZH = {
    Role.OPERATOR: "经办员",
    Role.SUPERVISOR: "复核员",
    Role.AUDITOR: "审计员",
    Role.ADMIN: "系统管理员",
}

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
# names that are paths of the account pages (/accounts/new)
RESERVED_USERNAMES = frozenset({"new"})
REGION = re.compile(r"^[0-9]{2,12}$")

# argon2id parameter sets by the name settings give them: RFC 9106's second recommended
# set in every real deployment; the cheapest set only for the test suite (Settings refuses
# it outside environment "test").
_HASHERS = {
    "RFC_9106_LOW_MEMORY": PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY),
    "CHEAPEST": PasswordHasher.from_parameters(profiles.CHEAPEST),
}


def password_hasher(settings: Settings) -> PasswordHasher:
    """The argon2id hasher the settings name (hashes of other parameter sets still verify,
    and are rehashed with these parameters at the next login)."""
    return _HASHERS[settings.dashboard_argon2_parameters]


_DUMMY_HASHES: dict[str, str] = {}


def _dummy_hash(settings: Settings) -> str:
    """A hash of a random password, verified when there is no account to verify against,
    so that an unknown name costs the same time as a real one."""
    name = settings.dashboard_argon2_parameters
    if name not in _DUMMY_HASHES:
        _DUMMY_HASHES[name] = password_hasher(settings).hash(secrets.token_urlsafe(24))
    return _DUMMY_HASHES[name]


class AccountError(Exception):
    """A refused account operation, in Chinese and English, with a machine-readable code."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code = code
        self.zh = zh
        self.en = en


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: what every dashboard request carries after login."""

    account_id: int
    username: str
    real_name: str
    role: Role
    regions: tuple[str, ...]

    def region_filter(self) -> tuple[str, ...] | None:
        """Region prefixes this person may see; None means every region."""
        return None if self.role.sees_all_regions() else self.regions

    def may_see_region(self, region_code: str) -> bool:
        scope = self.region_filter()
        return scope is None or any(region_code.startswith(p) for p in scope)

    @property
    def actor(self) -> str:
        """The name written to the audit log and to maker-checker records."""
        return self.username

    @property
    def display(self) -> str:
        """The login name with the person's real name, as shown to people."""
        return f"{self.username}（{self.real_name}）"


class Permission(StrEnum):
    """What an action needs, the same for the dashboard and for the command line."""

    SEE_PAYMENTS = "see_payments"
    ACT = "act"
    APPROVE = "approve"
    MANAGE_ACCOUNTS = "manage_accounts"


# permission → (the role's predicate, why it is refused in Chinese and English)
PERMISSIONS: dict[Permission, tuple[Callable[[Role], bool], str, str]] = {
    Permission.SEE_PAYMENTS: (
        Role.sees_payments,
        "系统管理员不能查看支付数据",
        "administrators do not see payment data",
    ),
    Permission.ACT: (Role.acts_on_payments, "您的角色只能查看，不能操作", "your role is read-only"),
    Permission.APPROVE: (
        Role.approves,
        "只有复核员可以执行此操作",
        "only a supervisor may do this",
    ),
    Permission.MANAGE_ACCOUNTS: (
        Role.manages_accounts,
        "只有系统管理员可以管理账户",
        "only an administrator manages accounts",
    ),
}


def require(principal: Principal, permission: Permission) -> None:
    """Refuse (``AccountError`` ``forbidden``) unless the principal's role allows it."""
    allowed, zh, en = PERMISSIONS[permission]
    if not allowed(principal.role):
        raise AccountError("forbidden", zh, en)


def principal_of(account: OperatorAccount) -> Principal:
    return Principal(
        account_id=account.id,
        username=account.username,
        real_name=account.real_name,
        role=Role(account.role),
        regions=tuple(account.regions or ()),
    )


def check_password_policy(settings: Settings, username: str, password: str) -> None:
    """At least ``dashboard_password_min_length`` characters, three of four character
    classes, not containing the user name."""
    if len(password) < settings.dashboard_password_min_length:
        raise AccountError(
            "password_too_short",
            f"密码至少{settings.dashboard_password_min_length}位",
            f"the password needs at least {settings.dashboard_password_min_length} characters",
        )
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        raise AccountError(
            "password_too_simple",
            "密码须包含大写字母、小写字母、数字、符号中的至少三类",
            "the password needs three of: lower case, upper case, digits, symbols",
        )
    if username.casefold() in password.casefold():
        raise AccountError(
            "password_contains_username",
            "密码不得包含用户名",
            "the password must not contain the user name",
        )


def login_name(value: str) -> str:
    """The login name an account is stored and found under: ``value`` folded
    (``actor_key``: NFKC, case folding). Refuses (``bad_username``) a name holding control
    or invisible characters, and one whose folded form is not 2-32 lower-case letters,
    digits or . _ - starting with a letter."""
    if name_problem(value) is not None:
        raise AccountError(
            "bad_username",
            "用户名不得包含控制字符或不可见字符",
            "user names must not contain control or invisible (format) characters",
        )
    username = actor_key(value)
    if not USERNAME.match(username) or username in RESERVED_USERNAMES:
        raise AccountError(
            "bad_username",
            "用户名须为2-32位小写字母、数字或 . _ -，以字母开头",
            "user names are 2-32 lower-case letters, digits or . _ -, starting with a letter",
        )
    return username


def _validate(username: str, real_name: str, role: str, regions: Sequence[str]) -> Role:
    login_name(username)
    if not real_name.strip() or len(real_name) > 64:
        raise AccountError("bad_real_name", "必须填写真实姓名", "a real name is required")
    if name_problem(real_name) is not None:
        raise AccountError(
            "bad_real_name",
            "真实姓名不得包含控制字符或不可见字符",
            "a real name must not contain control or invisible (format) characters",
        )
    try:
        parsed = Role(role)
    except ValueError:
        raise AccountError("bad_role", "角色无效", f"unknown role {role!r}") from None
    if parsed in {Role.OPERATOR, Role.SUPERVISOR} and not regions:
        raise AccountError(
            "regions_required",
            "经办员和复核员必须指定可见的行政区划",
            "operators and supervisors need at least one region",
        )
    for r in regions:
        if not REGION.match(r):
            raise AccountError(
                "bad_region", f"行政区划代码无效：{r}", f"invalid region code prefix {r!r}"
            )
    return parsed


def create_account(
    session: Session,
    settings: Settings,
    *,
    username: str,
    real_name: str,
    role: str,
    regions: Sequence[str],
    password: str,
    created_by: str,
    supervisor: str | None = None,
    must_change_password: bool = True,
) -> OperatorAccount:
    """Create an account; the initial password must be changed at first login unless
    ``must_change_password`` is False (the demo's accounts)."""
    username = login_name(username)
    parsed = _validate(username, real_name, role, regions)
    check_password_policy(settings, username, password)
    if session.scalar(select(OperatorAccount.id).where(OperatorAccount.username == username)):
        raise AccountError("username_taken", "用户名已存在", "the user name is taken")
    supervisor_id = _supervisor_id(session, supervisor)
    now = utcnow()
    account = OperatorAccount(
        username=username,
        real_name=real_name.strip(),
        role=parsed.value,
        regions=sorted(set(regions)) if parsed is not Role.AUDITOR else [],
        password_hash=password_hasher(settings).hash(password),
        password_changed_at=now,
        must_change_password=must_change_password,
        failed_logins=0,
        disabled=False,
        supervisor_id=supervisor_id,
        created_at=now,
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(account)
    except IntegrityError:  # created at the same moment by someone else
        raise AccountError("username_taken", "用户名已存在", "the user name is taken") from None
    record(
        session,
        actor=created_by,
        action="account.create",
        target_type="account",
        target_id=username,
        detail={"role": parsed.value, "regions": account.regions},
    )
    return account


def _supervisor_id(session: Session, supervisor: str | None) -> int | None:
    """The id of a supervisor named by user name (None: no supervisor)."""
    if not supervisor:
        return None
    sup = find_account(session, supervisor)
    if sup is None or sup.role != Role.SUPERVISOR or sup.disabled:
        raise AccountError(
            "bad_supervisor", "上级复核员不存在", "the supervisor account does not exist"
        )
    return sup.id


def set_supervisor(
    session: Session, account: OperatorAccount, supervisor: str | None, *, by: str
) -> None:
    """Name (or clear, with None) the supervisor of an account; recorded when it changes."""
    supervisor_id = _supervisor_id(session, supervisor)
    if supervisor_id == account.id:
        raise AccountError(
            "bad_supervisor", "不能指定本人为上级复核员", "an account cannot supervise itself"
        )
    if supervisor_id == account.supervisor_id:
        return
    before = session.get(OperatorAccount, account.supervisor_id) if account.supervisor_id else None
    account.supervisor_id = supervisor_id
    record(
        session,
        actor=by,
        action="account.supervisor",
        target_type="account",
        target_id=account.username,
        detail={
            "before": before.username if before else None,
            "after": actor_key(supervisor) if supervisor else None,
        },
    )


def find_account(session: Session, username: str) -> OperatorAccount | None:
    """The account of a login name, in its folded form (``ＬＩ.ＯＰ`` finds ``li.op``); None
    for a name holding control or invisible characters, which no account has."""
    if name_problem(username) is not None:
        return None
    return session.scalar(
        select(OperatorAccount).where(OperatorAccount.username == actor_key(username)[:64])
    )


class LoginResult(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"
    DISABLED = "disabled"


# what a refused login is told (the dashboard's login page says the same)
LOGIN_MESSAGES: dict[LoginResult, tuple[str, str]] = {
    LoginResult.OK: ("已登录", "logged in"),
    LoginResult.BAD_CREDENTIALS: ("用户名或密码错误。", "Wrong user name or password."),
    LoginResult.LOCKED: (
        "账户已锁定：连续多次密码错误。请稍后再试或联系系统管理员解锁。",
        "The account is locked after repeated failures. Try later or ask an administrator.",
    ),
    LoginResult.DISABLED: ("账户已停用，请联系系统管理员。", "The account is disabled."),
}


def _unknown_name_state(
    session: Session, settings: Settings, key: str, now: dt.datetime
) -> tuple[bool, int]:
    """For a name no account has: (locked now, failures in a row since its last lock),
    from the audit log's ``login.*`` rows of that name, as an account counts them in its
    ``failed_logins`` and ``locked_until``."""
    last_lock = session.scalar(
        select(func.max(AuditRecord.at)).where(
            AuditRecord.actor == key, AuditRecord.action == "login.locked"
        )
    )
    lock_span = dt.timedelta(minutes=settings.dashboard_lockout_minutes)
    if last_lock is not None and last_lock + lock_span > now:
        return True, 0
    failures = session.scalar(
        select(func.count())
        .select_from(AuditRecord)
        .where(
            AuditRecord.actor == key,
            AuditRecord.action == "login.failed",
            *([AuditRecord.at > last_lock] if last_lock is not None else []),
        )
    )
    return False, int(failures or 0)


def authenticate(
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    *,
    client_ip: str | None,
    channel: str = "dashboard",
) -> tuple[LoginResult, OperatorAccount | None]:
    """Check a login (the dashboard's, and the command line's: ``channel``); counts
    failures and locks the name after too many in a row.

    Unknown user names and wrong passwords answer alike, and so do their locks: an unknown
    name is locked after the same number of failures, for the same time (no user
    enumeration). Each attempt that is not refused by a lock verifies one argon2id hash —
    the account's, or a dummy one for a name no account has. A name holding control or
    invisible characters never logs in; it fails (and locks) as the account it imitates.
    A locked name is refused even with the right password; a disabled account is told so
    only with the right password. Every attempt is recorded."""
    now = utcnow()
    key = actor_key(username)[:64] or "-"
    refused_name = name_problem(username) is not None
    account = find_account(session, key)
    detail: dict[str, object] = {"ip": client_ip}
    if channel != "dashboard":
        detail["channel"] = channel
    actor = account.username if account is not None else key

    def audit(action: str, **more: object) -> None:
        record(
            session, actor=actor, action=action, target_type="account",
            target_id=account.username if account is not None else None,
            detail={**detail, **more},
        )  # fmt: skip

    if account is not None:
        locked = account.locked_until is not None and account.locked_until > now
        failures = account.failed_logins
    else:
        locked, failures = _unknown_name_state(session, settings, key, now)
    if locked:
        audit("login.refused", why="locked")
        return LoginResult.LOCKED, account
    hasher = password_hasher(settings)
    target = account.password_hash if account is not None and not refused_name else None
    try:
        hasher.verify(target or _dummy_hash(settings), password)
        verified = target is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        verified = False
    if not verified or account is None:
        failures += 1
        lock = failures >= settings.dashboard_lockout_failures
        if account is not None:
            account.failed_logins = 0 if lock else failures
            if lock:
                account.locked_until = now + dt.timedelta(
                    minutes=settings.dashboard_lockout_minutes
                )
        why = "bad_name" if refused_name else "bad_password" if account else "unknown_user"
        audit("login.locked" if lock else "login.failed", why=why)
        return (LoginResult.LOCKED if lock else LoginResult.BAD_CREDENTIALS), account
    if account.disabled:
        audit("login.refused", why="disabled")
        return LoginResult.DISABLED, account
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    if hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hasher.hash(password)
    audit("login.ok")
    return LoginResult.OK, account


def password_expired(settings: Settings, account: OperatorAccount) -> bool:
    """The password must be changed: set by an administrator, or older than the limit."""
    age = utcnow() - account.password_changed_at
    return account.must_change_password or age > dt.timedelta(
        days=settings.dashboard_password_max_age_days
    )


def change_password(
    session: Session, settings: Settings, account: OperatorAccount, current: str, new: str
) -> None:
    try:
        password_hasher(settings).verify(account.password_hash, current)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise AccountError(
            "wrong_current_password", "当前密码不正确", "the current password is wrong"
        ) from None
    check_password_policy(settings, account.username, new)
    if current == new:
        raise AccountError(
            "password_unchanged", "新密码不得与当前密码相同", "the new password must differ"
        )
    account.password_hash = password_hasher(settings).hash(new)
    account.password_changed_at = utcnow()
    account.must_change_password = False
    record(
        session,
        actor=account.username,
        action="account.password_changed",
        target_type="account",
        target_id=account.username,
    )


def reset_password(
    session: Session, settings: Settings, account: OperatorAccount, new: str, *, by: str
) -> None:
    """An administrator sets a one-time password; the user must change it at next login."""
    check_password_policy(settings, account.username, new)
    account.password_hash = password_hasher(settings).hash(new)
    account.password_changed_at = utcnow()
    account.must_change_password = True
    account.failed_logins = 0
    account.locked_until = None
    record(
        session, actor=by, action="account.password_reset", target_type="account",
        target_id=account.username,
    )  # fmt: skip


def unlock(session: Session, account: OperatorAccount, *, by: str) -> None:
    account.failed_logins = 0
    account.locked_until = None
    record(session, actor=by, action="account.unlock", target_type="account",
           target_id=account.username)  # fmt: skip


def set_disabled(session: Session, account: OperatorAccount, disabled: bool, *, by: str) -> None:
    account.disabled = disabled
    record(
        session,
        actor=by,
        action="account.disable" if disabled else "account.enable",
        target_type="account",
        target_id=account.username,
    )


def update_account(
    session: Session,
    account: OperatorAccount,
    *,
    real_name: str,
    role: str,
    regions: Sequence[str],
    by: str,
) -> None:
    parsed = _validate(account.username, real_name, role, regions)
    before = {"role": account.role, "regions": list(account.regions or [])}
    account.real_name = real_name.strip()
    account.role = parsed.value
    account.regions = sorted(set(regions)) if parsed is not Role.AUDITOR else []
    record(
        session,
        actor=by,
        action="account.update",
        target_type="account",
        target_id=account.username,
        detail={"before": before, "after": {"role": account.role, "regions": account.regions}},
    )


@dataclass(frozen=True, slots=True)
class InactiveUser:
    username: str
    real_name: str
    role: str
    regions: tuple[str, ...]
    last_login_at: dt.datetime | None
    working_days_since: int | None


def inactive_users(
    session: Session,
    settings: Settings,
    calendar: WorkingCalendar,
    *,
    regions: tuple[str, ...] | None,
    today: dt.date | None = None,
) -> list[InactiveUser]:
    """Operators and supervisors who have not logged in for more than the configured
    number of working days (the measures ask users to check the system at least that
    often), within ``regions`` (None: everyone)."""
    today = today or dt.datetime.now(CHINA).date()
    limit = settings.dashboard_inactive_working_days
    out: list[InactiveUser] = []
    rows = session.scalars(
        select(OperatorAccount)
        .where(
            OperatorAccount.role.in_([Role.OPERATOR.value, Role.SUPERVISOR.value]),
            OperatorAccount.disabled.is_(False),
        )
        .order_by(func.coalesce(OperatorAccount.last_login_at, OperatorAccount.created_at))
    )
    for a in rows:
        if regions is not None and not any(
            r.startswith(p) or p.startswith(r) for r in a.regions or [] for p in regions
        ):
            continue
        since = a.last_login_at or a.created_at
        since_day = since.replace(tzinfo=dt.UTC).astimezone(CHINA).date()
        days = _working_days_between(calendar, since_day, today)
        if days > limit:
            out.append(
                InactiveUser(
                    username=a.username,
                    real_name=a.real_name,
                    role=a.role,
                    regions=tuple(a.regions or ()),
                    last_login_at=a.last_login_at,
                    working_days_since=days,
                )
            )
    return out


def _working_days_between(calendar: WorkingCalendar, since: dt.date, today: dt.date) -> int:
    """Working days strictly after ``since`` up to and including ``today``."""
    days = 0
    day = since + dt.timedelta(days=1)
    while day <= today and days <= 366:
        try:
            working = calendar.is_working_day(day)
        except UnknownYearError:
            working = day.weekday() < 5  # a year the calendar does not know yet
        if working:
            days += 1
        day += dt.timedelta(days=1)
    return days
