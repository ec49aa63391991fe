"""The account service: validation, password policy, argon2id hashes, regions, inactive
users counted in working days."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters, profiles
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from gateway.dashboard.accounts import (
    AccountError,
    LoginResult,
    Principal,
    Role,
    authenticate,
    check_password_policy,
    create_account,
    find_account,
    inactive_users,
    password_hasher,
)
from gateway.dashboard.models import OperatorAccount
from gateway.dispatch.calendar import WorkingCalendar
from gateway.kit.clock import CHINA
from gateway.kit.db import session_scope
from gateway.rework.audit import operator_name, same_operator
from gateway.rework.errors import OperatorRequiredError
from gateway.rework.models import AuditRecord
from gateway.settings import Settings
from tests.gateway.dashboard.support import DashClient

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


# --- one person, one name -----------------------------------------------------------------

CF = ["\u200b", "\u200c", "\u200d", "\u00ad", "\ufeff", "\u202e", "\u2066", "\u061c", "\u2060"]


def test_a_lookalike_of_an_existing_name_is_the_same_account(ctx: Any) -> None:
    _create(ctx, "alice")
    for twin in ("ａｌｉｃｅ", "ALICE", "Ａｌｉｃｅ", "\U0001d41a\U0001d425ice"):  # 𝐚𝐥: math bold
        with pytest.raises(AccountError) as err:
            _create(ctx, twin)
        assert err.value.code == "username_taken", twin
        with ctx.sessions() as s:
            found = find_account(s, twin)
            assert found is not None and found.username == "alice"
    # created under its folded form: ｂｏｂ is stored (and logs in) as bob
    _create(ctx, "ｂｏｂ")
    with ctx.sessions() as s:
        assert find_account(s, "bob") is not None


@pytest.mark.parametrize("cf", CF)
def test_invisible_and_control_characters_are_refused_in_names(ctx: Any, cf: str) -> None:
    _create(ctx, "alice")
    for name in (f"alice{cf}", f"{cf}carol", f"ca{cf}rol", "carol\x00", "carol\t", "ca\x7frol"):
        with pytest.raises(AccountError) as err:
            _create(ctx, name)
        assert err.value.code == "bad_username", repr(name)
        with ctx.sessions() as s:
            assert find_account(s, name) is None
    with pytest.raises(AccountError) as err, session_scope(ctx.sessions) as s:
        create_account(
            s, ctx.settings, username="carol", real_name=f"钱{cf}复核", role="operator",
            regions=["430621"], password="Spring-Rice-2026", created_by="test",
        )  # fmt: skip
    assert err.value.code == "bad_real_name"


def test_an_invisible_character_does_not_log_in_even_with_the_password(ctx: Any) -> None:
    _create(ctx, "alice")
    with session_scope(ctx.sessions) as s:
        result, _ = authenticate(s, ctx.settings, "alice\u200b", "Spring-Rice-2026", client_ip=None)
        assert result is LoginResult.BAD_CREDENTIALS
        wide, account = authenticate(
            s, ctx.settings, "ＡＬＩＣＥ", "Spring-Rice-2026", client_ip=None
        )
        assert wide is LoginResult.OK and account is not None and account.username == "alice"


# strategies: a login name, and spellings of it that fold to the same key
_LOGIN = st.from_regex(r"[a-z][a-z0-9._-]{1,12}", fullmatch=True)


def _fullwidth(c: str) -> str:
    return chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c


@st.composite
def _spelling(draw: st.DrawFn, base: str) -> str:
    out = []
    for c in base:
        style = draw(st.sampled_from(["same", "upper", "wide", "wide_upper"]))
        ch = c.upper() if "upper" in style else c
        out.append(_fullwidth(ch) if "wide" in style else ch)
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(CF)))
    return "".join(out)


@st.composite
def _twins(draw: st.DrawFn) -> tuple[str, str]:
    base = draw(_LOGIN)
    return draw(_spelling(base)), draw(_spelling(base))


def _folded(name: str) -> str:
    """The test's own reading of "the same name": NFKC + casefold, Cf characters removed."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


# no ASCII letter: never contains the (ASCII) user name
TWIN_PASSWORD = "ΩΨ-2026-#7741"


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(twins=_twins())
def test_names_equal_after_folding_are_one_account_or_refused(
    ctx: Any, twins: tuple[str, str]
) -> None:
    first, second = twins
    assert _folded(first) == _folded(second)
    created: int | None = None
    with session_scope(ctx.sessions) as s:
        try:
            created = create_account(
                s, ctx.settings, username=first, real_name="甲", role="auditor", regions=[],
                password=TWIN_PASSWORD, created_by="test", must_change_password=False,
            ).id  # fmt: skip
        except AccountError as exc:
            assert exc.code in {"bad_username", "username_taken"}
    with session_scope(ctx.sessions) as s:
        try:
            create_account(
                s, ctx.settings, username=second, real_name="乙", role="auditor", regions=[],
                password=TWIN_PASSWORD, created_by="test", must_change_password=False,
            )  # fmt: skip
            second_created = True
        except AccountError as exc:
            assert exc.code in {"bad_username", "username_taken"}
            second_created = False
    # never two accounts for one name
    assert not (created is not None and second_created)
    with session_scope(ctx.sessions) as s:
        a, b = find_account(s, first), find_account(s, second)
        assert a is None or b is None or a.id == b.id
        result, who = authenticate(s, ctx.settings, second, TWIN_PASSWORD, client_ip=None)
        # refused (the invisible characters' failures may have locked the name) or that
        # very account
        assert result in {LoginResult.BAD_CREDENTIALS, LoginResult.LOCKED} or (
            result is LoginResult.OK and who is not None and (a is None or who.id == a.id)
        )
    # the maker-checker comparison of every service: the same person, or a refused name
    try:
        operator_name(first)
        operator_name(second)
    except OperatorRequiredError:
        return
    assert same_operator(first, second)


# --- an unknown name answers as a real one ------------------------------------------------


def _location(client: DashClient, username: str, password: str) -> str:
    location: str = client.login(username, password).headers["location"]
    return location.split("?", 1)[1] if "?" in location else location


def test_an_unknown_name_locks_out_as_a_real_one(ctx: Any) -> None:
    _create(ctx, "li.op")
    client = DashClient(ctx)
    wrong = "Wrong-Pass-2026!"
    real = [_location(client, "li.op", wrong) for _ in range(6)]
    unknown = [_location(client, "no.such.op", wrong) for _ in range(6)]
    assert real == unknown
    assert [("error=locked" in r) for r in real] == [False] * 4 + [True, True]
    # a name holding an invisible character fails and locks alike
    lookalike = [_location(client, "wang.op\u200b", wrong) for _ in range(6)]
    assert lookalike == unknown
    with ctx.sessions() as s:
        locked = s.scalars(
            select(AuditRecord.actor).where(AuditRecord.action == "login.locked")
        ).all()
        assert sorted(locked) == ["li.op", "no.such.op", "wang.op"]
        assert s.scalar(select(func.count()).select_from(OperatorAccount)) == 1


def test_the_lock_of_an_unknown_name_runs_out_as_a_real_one(ctx: Any) -> None:
    with session_scope(ctx.sessions) as s:
        for _ in range(ctx.settings.dashboard_lockout_failures):
            result, _ = authenticate(s, ctx.settings, "ghost", "Wrong-Pass-2026!", client_ip=None)
        assert result is LoginResult.LOCKED
        assert authenticate(s, ctx.settings, "ghost", "x", client_ip=None)[0] is LoginResult.LOCKED
    with ctx.sessions.begin() as s:  # the lock was taken long ago
        for row in s.scalars(select(AuditRecord).where(AuditRecord.actor == "ghost")):
            row.at -= dt.timedelta(minutes=ctx.settings.dashboard_lockout_minutes)
    with session_scope(ctx.sessions) as s:
        again = authenticate(s, ctx.settings, "ghost", "Wrong-Pass-2026!", client_ip=None)[0]
        assert again is LoginResult.BAD_CREDENTIALS  # counting starts afresh


def test_a_disabled_account_is_told_so_only_with_its_password(ctx: Any) -> None:
    _create(ctx, "li.op")
    with ctx.sessions.begin() as s:
        s.execute(update(OperatorAccount).values(disabled=True))
    with session_scope(ctx.sessions) as s:
        wrong = authenticate(s, ctx.settings, "li.op", "Wrong-Pass-2026!", client_ip=None)[0]
        right = authenticate(s, ctx.settings, "li.op", "Spring-Rice-2026", client_ip=None)[0]
    assert (wrong, right) == (LoginResult.BAD_CREDENTIALS, LoginResult.DISABLED)


def test_every_attempt_verifies_one_argon2_hash(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal work for a real and an unknown name (no timing is measured: the count of
    argon2id verifications, the cost that dominates, is the same)."""
    _create(ctx, "li.op")
    calls: list[str] = []
    original = PasswordHasher.verify

    def counting(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        calls.append("verify")
        return original(self, hash, password)

    def no_hash(self: PasswordHasher, password: str | bytes, *, salt: bytes | None = None) -> str:
        raise AssertionError("a failed login hashes nothing")

    with session_scope(ctx.sessions) as s:
        authenticate(s, ctx.settings, "warm.up", "x", client_ip=None)  # the dummy hash, once
        monkeypatch.setattr(PasswordHasher, "verify", counting)
        monkeypatch.setattr(PasswordHasher, "hash", no_hash)
        for name in ("li.op", "nobody", "li.op\u200b", "ＬＩ.ＯＰ"):
            calls.clear()
            result, _ = authenticate(s, ctx.settings, name, "Wrong-Pass-2026!", client_ip=None)
            assert result is LoginResult.BAD_CREDENTIALS
            assert calls == ["verify"], name
