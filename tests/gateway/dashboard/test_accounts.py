"""The account service: validation, password policy, argon2id hashes, regions, inactive
users counted in working days."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import update

from gateway.dashboard.accounts import (
    AccountError,
    Principal,
    Role,
    check_password_policy,
    create_account,
    inactive_users,
)
from gateway.dashboard.models import OperatorAccount
from gateway.dispatch.calendar import WorkingCalendar
from gateway.kit.clock import CHINA
from gateway.kit.db import session_scope
from gateway.settings import Settings

SETTINGS = Settings(environment="test")


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Short-1!", "password_too_short"),
        ("alllowercaseletters", "password_too_simple"),
        ("ALLUPPER-AND-SYMBOLS", "password_too_simple"),
        ("Wang.op-Pass-2026", "password_contains_username"),
    ],
)
def test_password_policy_refuses_with_a_code(password: str, code: str) -> None:
    with pytest.raises(AccountError) as err:
        check_password_policy(SETTINGS, "wang.op", password)
    assert err.value.code == code
    assert err.value.zh and err.value.en


def test_password_policy_accepts_a_good_password() -> None:
    check_password_policy(SETTINGS, "wang.op", "Spring-Rice-2026")


def test_principal_region_scope() -> None:
    town = Principal(1, "t", "乡", Role.OPERATOR, ("430621101",))
    assert town.may_see_region("430621101")
    assert not town.may_see_region("430621102")
    assert town.region_filter() == ("430621101",)
    auditor = Principal(2, "a", "审", Role.AUDITOR, ())
    assert auditor.region_filter() is None
    assert auditor.may_see_region("110101")


def test_roles_split_reading_acting_and_accounts() -> None:
    assert Role.OPERATOR.acts_on_payments() and not Role.OPERATOR.approves()
    assert Role.SUPERVISOR.approves() and Role.SUPERVISOR.acts_on_payments()
    assert not Role.AUDITOR.acts_on_payments() and Role.AUDITOR.sees_payments()
    assert not Role.ADMIN.sees_payments() and Role.ADMIN.manages_accounts()


def _create(
    ctx: Any, username: str, role: str = "operator", regions: list[str] | None = None
) -> None:
    with session_scope(ctx.sessions) as s:
        create_account(
            s, ctx.settings, username=username, real_name="测试", role=role,
            regions=["430621101"] if regions is None else regions,
            password="Spring-Rice-2026", created_by="test",
        )  # fmt: skip


def test_account_is_stored_with_an_argon2id_hash(ctx: Any) -> None:
    _create(ctx, "li.op")
    with ctx.sessions() as s:
        account = s.query(OperatorAccount).one()
        assert account.password_hash.startswith("$argon2id$")
        assert "Spring-Rice-2026" not in account.password_hash
        assert account.must_change_password is True


@pytest.mark.parametrize(
    ("username", "role", "regions", "code"),
    [
        ("Li Op", "operator", ["430621"], "bad_username"),
        ("li.op", "boss", ["430621"], "bad_role"),
        ("li.op", "operator", [], "regions_required"),
        ("li.op", "operator", ["43x"], "bad_region"),
    ],
)
def test_account_validation(
    ctx: Any, username: str, role: str, regions: list[str], code: str
) -> None:
    with pytest.raises(AccountError) as err, session_scope(ctx.sessions) as s:
        create_account(
            s, ctx.settings, username=username, real_name="测试", role=role, regions=regions,
            password="Spring-Rice-2026", created_by="test",
        )  # fmt: skip
    assert err.value.code == code


def test_duplicate_user_name_is_refused(ctx: Any) -> None:
    _create(ctx, "li.op")
    with pytest.raises(AccountError) as err:
        _create(ctx, "LI.OP")
    assert err.value.code == "username_taken"


def _utc(day: dt.date, hour: int = 10) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time(hour), tzinfo=CHINA)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def test_inactive_users_are_counted_in_working_days(ctx: Any) -> None:
    # Friday 2026-11-27 login; on Tuesday 2026-12-01 that is two working days (Mon, Tue):
    # not yet listed; on Wednesday three: listed
    _create(ctx, "fri.op")
    _create(ctx, "today.op")
    _create(ctx, "other.op", regions=["430621102"])
    _create(ctx, "aud", role="auditor", regions=[])
    with ctx.sessions.begin() as s:
        s.execute(
            update(OperatorAccount)
            .where(OperatorAccount.username.in_(["fri.op", "other.op", "aud"]))
            .values(last_login_at=_utc(dt.date(2026, 11, 27)))
        )
        s.execute(
            update(OperatorAccount)
            .where(OperatorAccount.username == "today.op")
            .values(last_login_at=_utc(dt.date(2026, 12, 2)))
        )
    cal = WorkingCalendar()
    with ctx.sessions() as s:
        tuesday = inactive_users(
            s, ctx.settings, cal, regions=("430621101",), today=dt.date(2026, 12, 1)
        )
        wednesday = inactive_users(
            s, ctx.settings, cal, regions=("430621101",), today=dt.date(2026, 12, 2)
        )
        everyone = inactive_users(s, ctx.settings, cal, regions=None, today=dt.date(2026, 12, 2))
    assert [u.username for u in tuesday] == []
    assert [u.username for u in wednesday] == ["fri.op"]
    assert wednesday[0].working_days_since == 3
    # auditors are not asked to check in; another township's user only for county-wide views
    assert sorted(u.username for u in everyone) == ["fri.op", "other.op"]
