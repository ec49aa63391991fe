"""The account service: validation, password policy, argon2id hashes, regions, inactive
users counted in working days."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters, profiles
from sqlalchemy import update

from gateway.dashboard.accounts import (
    AccountError,
    Principal,
    Role,
    check_password_policy,
    create_account,
    inactive_users,
    password_hasher,
)
from gateway.dashboard.models import OperatorAccount
from gateway.dispatch.calendar import WorkingCalendar
from gateway.kit.clock import CHINA
from gateway.kit.db import session_scope
from gateway.settings import Settings

SETTINGS = Settings(environment="test", dashboard_argon2_parameters="CHEAPEST")


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


PRODUCTION_KEY = "cHJvZHVjdGlvbi1rZXktZm9yLXRoZS1zZXR0aW5ncy10ZXN0"  # 32+ bytes, base64


def test_production_hashes_passwords_with_the_rfc_9106_parameters() -> None:
    production = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        master_keys=f"p1:{PRODUCTION_KEY}",
        index_key=PRODUCTION_KEY,
        api_clients={"county-finance": "a-production-secret"},
    )
    hasher = password_hasher(production)
    rfc = profiles.RFC_9106_LOW_MEMORY  # RFC 9106 §4, second recommended option
    assert (rfc.time_cost, rfc.memory_cost, rfc.parallelism) == (3, 64 * 1024, 4)
    stored = extract_parameters(hasher.hash("Spring-Rice-2026"))
    assert stored == rfc
    assert stored.type.name == "ID"
    # the library's own defaults are the same set: nothing else is configured
    assert extract_parameters(PasswordHasher().hash("x")) == rfc


@pytest.mark.parametrize("environment", ["production", "development"])
def test_the_cheap_test_parameters_are_refused_outside_tests(environment: str) -> None:
    with pytest.raises(ValueError, match="test suite only"):
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment=environment,  # type: ignore[arg-type]
            master_keys=f"p1:{PRODUCTION_KEY}",
            index_key=PRODUCTION_KEY,
            api_clients={"county-finance": "a-production-secret"},
            dashboard_argon2_parameters="CHEAPEST",
        )


def test_a_hash_of_the_cheap_set_is_rehashed_at_login_under_rfc_9106(ctx: Any) -> None:
    from gateway.dashboard.accounts import authenticate

    _create(ctx, "li.op")  # the suite hashes with the cheap set
    strong = ctx.settings.model_copy(update={"dashboard_argon2_parameters": "RFC_9106_LOW_MEMORY"})
    with session_scope(ctx.sessions) as s:
        result, account = authenticate(s, strong, "li.op", "Spring-Rice-2026", client_ip=None)
        assert result.name == "OK" and account is not None
        assert extract_parameters(account.password_hash) == profiles.RFC_9106_LOW_MEMORY


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
