"""Account administration pages (create with a one-time password, edit, reset, unlock,
disable) and the list of users who have not logged in."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from sqlalchemy import select, update

from gateway.context import Context
from gateway.dashboard.accounts import create_account
from gateway.dashboard.models import OperatorAccount
from gateway.kit.clock import utcnow
from gateway.kit.db import session_scope
from gateway.rework.models import AuditRecord
from tests.gateway.dashboard.support import PASSWORD, DashClient
from tests.gateway.dashboard.test_sms import TOWN_101, TOWN_102, paid_with_notices

_OTP = re.compile(r'data-testid="one-time-password">([^<]+)<')
NEW_PASSWORD = "Fresh-Pass-2026?"


def one_time_password(html: str) -> str:
    found = _OTP.search(html)
    assert found, html
    return found.group(1)


def account(ctx: Context, username: str) -> OperatorAccount:
    with ctx.sessions() as s:
        found = s.scalar(select(OperatorAccount).where(OperatorAccount.username == username))
        assert found is not None
        return found


def audited(ctx: Context, action: str, target: str) -> list[AuditRecord]:
    with ctx.sessions() as s:
        return list(
            s.scalars(
                select(AuditRecord).where(
                    AuditRecord.action == action, AuditRecord.target_id == target
                )
            )
        )


def logs_in_fresh(ctx: Context, username: str, password: str) -> DashClient:
    """A new browser logging in with a one-time password: it must choose a new one first."""
    client = DashClient(ctx)
    response = client.login(username, password)
    assert response.status_code == 303
    assert response.headers["location"].endswith("/password")
    assert client.get("/sms", follow_redirects=False).headers["location"].endswith("/password")
    changed = client.post(
        "/password", {"current": password, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert changed.status_code == 303, changed.text
    return client


def test_list_shows_every_account(dash: Callable[[str], DashClient]) -> None:
    page = dash("admin").get("/accounts")
    assert page.status_code == 200
    for username in ("admin", "sup", "op", "op101", "op102", "aud"):
        assert f'href="/dashboard/accounts/{username}"' in page.text
    assert "钱复核" in page.text and "复核员" in page.text and "审计员" in page.text
    assert "430621101" in page.text
    assert "从未登录" in page.text  # the accounts nobody used yet


def test_create_with_a_one_time_password_changed_at_first_login(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    admin = dash("admin")
    form = admin.get("/accounts/new")
    assert form.status_code == 200 and 'name="username"' in form.text
    created = admin.post(
        "/accounts/new",
        {
            "username": "op103",
            "real_name": "郑新人",
            "role": "operator",
            "regions": "430621103， 430621104",
            "supervisor": "sup",
        },
    )
    assert created.status_code == 200, created.text
    assert "只显示这一次" in created.text
    password = one_time_password(created.text)
    new = account(ctx, "op103")
    assert new.regions == ["430621103", "430621104"]
    assert new.must_change_password and new.created_by == "admin"
    assert new.supervisor_id == account(ctx, "sup").id
    assert password not in new.password_hash
    assert audited(ctx, "account.create", "op103")[0].actor == "admin"
    # the one-time password opens only the change-password page, then the dashboard
    client = logs_in_fresh(ctx, "op103", password)
    assert client.get("/sms").status_code == 200
    # the list now shows it (the password is not shown there)
    listing = admin.get("/accounts")
    assert "op103" in listing.text and password not in listing.text


def test_account_errors_render_as_a_refusal(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    admin = dash("admin")
    bad = admin.post(
        "/accounts/new",
        {"username": "X y", "real_name": "某", "role": "operator", "regions": "430621"},
    )
    assert bad.status_code == 400
    assert "用户名须为" in bad.text and "bad_username" in bad.text
    no_region = admin.post(
        "/accounts/new", {"username": "op104", "real_name": "某人", "role": "operator"}
    )
    assert no_region.status_code == 400 and "regions_required" in no_region.text
    taken = admin.post(
        "/accounts/new",
        {"username": "op101", "real_name": "某人", "role": "operator", "regions": "430621"},
    )
    assert taken.status_code == 400 and "用户名已存在" in taken.text
    with ctx.sessions() as s:
        assert s.scalar(select(OperatorAccount).where(OperatorAccount.username == "op104")) is None


def test_editing_regions_changes_what_the_user_sees(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    own = paid_with_notices(ctx, "ACC-101", TOWN_101, "430621101")
    other = paid_with_notices(ctx, "ACC-102", TOWN_102, "430621102")
    op101 = dash("op101")
    before = op101.get("/sms").text
    assert all(s in before for s in own) and not any(s in before for s in other)
    admin = dash("admin")
    edit = admin.get("/accounts/op101")
    assert edit.status_code == 200 and 'value="430621101"' in edit.text
    saved = admin.post(
        "/accounts/op101",
        {"real_name": "李乡镇", "role": "operator", "regions": "430621102", "supervisor": "sup"},
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/dashboard/accounts/op101?done=account_updated"
    assert "账户已保存" in admin.get("/accounts/op101?done=account_updated").text
    after = op101.get("/sms").text
    assert all(s in after for s in other) and not any(s in after for s in own)
    update_row = audited(ctx, "account.update", "op101")[0]
    assert update_row.actor == "admin"
    assert update_row.detail == {
        "before": {"role": "operator", "regions": ["430621101"]},
        "after": {"role": "operator", "regions": ["430621102"]},
    }
    assert audited(ctx, "account.supervisor", "op101")[0].detail == {
        "before": None,
        "after": "sup",
    }


def test_reset_password_ends_sessions_and_forces_a_change(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    op101 = dash("op101")
    assert op101.get("/sms").status_code == 200
    admin = dash("admin")
    reset = admin.post("/accounts/op101/reset-password")
    assert reset.status_code == 200
    password = one_time_password(reset.text)
    assert audited(ctx, "account.password_reset", "op101")[0].actor == "admin"
    # the existing session is over
    gone = op101.get("/sms", follow_redirects=False)
    assert gone.status_code == 303 and "/login" in gone.headers["location"]
    # the old password no longer works; the new one must be changed at once
    assert "bad_credentials" in DashClient(ctx).login("op101", PASSWORD).headers["location"]
    logs_in_fresh(ctx, "op101", password)


def test_unlock(ctx: Context, dash: Callable[[str], DashClient]) -> None:
    admin = dash("admin")
    client = DashClient(ctx)
    for _ in range(ctx.settings.dashboard_lockout_failures):
        client.login("op102", "Wrong-Pass-2026!")
    assert "error=locked" in client.login("op102").headers["location"]
    assert "已锁定" in admin.get("/accounts").text
    done = admin.post("/accounts/op102/unlock")
    assert done.status_code == 303 and done.headers["location"].endswith("done=account_unlocked")
    assert audited(ctx, "account.unlock", "op102")[0].actor == "admin"
    assert account(ctx, "op102").locked_until is None
    assert "/login" not in client.login("op102").headers["location"]


def test_disable_ends_the_session_and_enable_lets_in_again(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    op101 = dash("op101")
    admin = dash("admin")
    done = admin.post("/accounts/op101/disable")
    assert done.status_code == 303 and done.headers["location"].endswith("done=account_disabled")
    assert account(ctx, "op101").disabled
    assert audited(ctx, "account.disable", "op101")[0].actor == "admin"
    gone = op101.get("/sms", follow_redirects=False)
    assert gone.status_code == 303 and "/login" in gone.headers["location"]
    assert "error=disabled" in DashClient(ctx).login("op101").headers["location"]
    assert "已停用" in admin.get("/accounts").text
    assert admin.post("/accounts/op101/enable").status_code == 303
    assert audited(ctx, "account.enable", "op101")
    assert "/login" not in DashClient(ctx).login("op101").headers["location"]


def test_administrators_do_not_lock_themselves_out(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    admin = dash("admin")
    assert admin.post("/accounts/admin/disable").status_code == 400
    assert admin.post("/accounts/admin/reset-password").status_code == 400
    demote = admin.post(
        "/accounts/admin", {"real_name": "赵管理", "role": "operator", "regions": "430621"}
    )
    assert demote.status_code == 400 and "own_account" in demote.text
    assert account(ctx, "admin").role == "admin" and not account(ctx, "admin").disabled
    assert admin.get("/accounts/nobody").status_code == 404
    assert admin.post("/accounts/op101/delete").status_code == 404
    assert admin.post("/accounts/nobody/unlock").status_code == 404


def test_only_administrators_manage_accounts(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    for who in ("op", "sup", "aud"):
        client = dash(who)
        assert client.get("/accounts").status_code == 403
        assert client.get("/accounts/op101").status_code == 403
        refused = client.post("/accounts/op101/disable")
        assert refused.status_code == 403
        assert "只有系统管理员可以管理账户" in refused.text
    assert not account(ctx, "op101").disabled


def test_a_post_without_the_csrf_token_is_refused(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    admin = dash("admin")
    response = admin.post(
        "/accounts/new",
        {"username": "op105", "real_name": "某人", "role": "operator", "regions": "430621"},
        csrf=False,
    )
    assert response.status_code == 403
    assert admin.post("/accounts/op101/disable", csrf=False).status_code == 403
    with ctx.sessions() as s:
        assert s.scalar(select(OperatorAccount).where(OperatorAccount.username == "op105")) is None
    assert not account(ctx, "op101").disabled


# --- users who have not logged in -------------------------------------------------------


def _long_ago(ctx: Context, username: str, **values: object) -> None:
    """Move an account's creation (and any other times) a month back."""
    with ctx.sessions.begin() as s:
        s.execute(
            update(OperatorAccount)
            .where(OperatorAccount.username == username)
            .values(created_at=utcnow() - dt.timedelta(days=30), **values)
        )


def test_inactive_users_listed_for_their_supervisor(
    ctx: Context, dash: Callable[[str], DashClient]
) -> None:
    sup = dash("sup")  # 430621: the whole county
    admin = dash("admin")
    with session_scope(ctx.sessions) as s:
        for username, region in (("quiet101", "430621101"), ("sup102", "430621102")):
            create_account(
                s,
                ctx.settings,
                username=username,
                real_name="某人",
                role="supervisor" if username == "sup102" else "operator",
                regions=[region],
                password=PASSWORD,
                created_by="test",
                must_change_password=False,
            )
    _long_ago(ctx, "quiet101")  # never logged in, created a month ago
    _long_ago(ctx, "op102", last_login_at=utcnow() - dt.timedelta(days=30))
    _long_ago(ctx, "op101")
    dash("op101")  # logs in today
    page = sup.get("/inactive")
    assert page.status_code == 200
    assert "quiet101" in page.text and "从未登录" in page.text
    assert "op102" in page.text
    assert "op101" not in page.text  # logged in today
    assert "sup102" not in page.text  # created today
    # a township supervisor sees only the users of their township
    township = dash("sup102").get("/inactive")
    assert "op102" in township.text and "quiet101" not in township.text
    everyone = admin.get("/inactive")
    assert "quiet101" in everyone.text and "op102" in everyone.text
    assert 'href="/dashboard/accounts/quiet101"' in everyone.text
    with ctx.sessions() as s:
        assert s.scalar(
            select(AuditRecord).where(
                AuditRecord.action == "view.inactive", AuditRecord.actor == "sup"
            )
        )


def test_inactive_users_are_not_for_operators_or_auditors(
    dash: Callable[[str], DashClient],
) -> None:
    assert dash("op101").get("/inactive").status_code == 403
    assert dash("aud").get("/inactive").status_code == 403
