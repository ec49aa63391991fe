"""A person's payment history by ID number: posted (never in a URL), found through the
blind index, shown masked and only within the viewer's regions, audited."""

from __future__ import annotations

from collections.abc import Callable

from gateway.context import Context
from tests.gateway.dashboard.support import DashClient
from tests.gateway.dashboard.test_batches import assert_masked, audits, english
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, fail

Dash = Callable[[str], DashClient]

PEOPLE = persons(2, seed=531)
P = PEOPLE[0]


def plant(ctx: Context) -> None:
    """P: failed in H-1 and re-issued by H-3 (op101's township), and paid another subsidy
    in H-2 (op102's township)."""
    batch(ctx, "H-1", PEOPLE)
    fail(ctx, "H-1", [1], "name_mismatch", ("E102", "户名不符"))
    batch(ctx, "H-2", [P], region="430621102", subsidy="DBBZ", subsidy_name="最低生活保障金")
    batch(ctx, "H-3", [P], reissue_of={1: ("H-1", 1)})


def test_history_within_the_viewers_regions(ctx: Context, dash: Dash) -> None:
    plant(ctx)
    client = dash("op101")
    form = client.get("/people")
    assert form.status_code == 200 and 'name="id_number"' in form.text
    found = client.post("/people", {"id_number": P.id_number})
    assert found.status_code == 200
    text = found.text
    assert str(found.url).endswith("/dashboard/people")  # the number is in no URL
    assert P.id_number[:4] + "*" * 10 + P.id_number[-4:] in text
    assert "H-1 / 1" in text and "H-3 / 1" in text and "H-2" not in text
    assert "最低生活保障金" not in text
    assert "另有1条记录属于其他地区" in text
    assert "户名不符" in text and "对照身份证核对姓名" in text and "重新发放" in text
    assert_masked(text, PEOPLE)

    (query,) = audits(ctx, "history.query")
    assert (query.actor, query.target_type) == ("op101", "person")
    assert query.target_id == ctx.pii.blind_index("id_number", P.id_number)
    (view,) = audits(ctx, "view.people")
    assert view.target_id == query.target_id
    assert view.detail is not None
    assert (view.detail["shown"], view.detail["other_regions"]) == (2, 1)
    assert P.id_number not in str([(a.target_id, a.detail) for a in (query, view)])

    county = dash("op").post("/people", {"id_number": P.id_number}).text
    assert "H-2 / 1" in county and "最低生活保障金" in county and "另有" not in county
    assert_masked(county, PEOPLE)

    en = english(dash("op101")).post("/people", {"id_number": P.id_number}).text
    assert "1 more record(s) belong to other regions" in en
    assert "account name does not match" in en
    assert_masked(en, PEOPLE)


def test_invalid_id_numbers_are_explained(ctx: Context, dash: Dash) -> None:
    client = dash("op101")
    client.get("/people")
    short = client.post("/people", {"id_number": P.id_number[:17]})
    assert short.status_code == 400
    assert "身份证号码无效" in short.text and "18位" in short.text
    assert "invalid ID number" in short.text
    assert P.id_number[:17] not in short.text  # not written back into the page
    wrong = P.id_number[:17] + ("0" if P.id_number[17] != "0" else "1")
    checked = client.post("/people", {"id_number": wrong})
    assert checked.status_code == 400 and "校验位" in checked.text
    empty = client.post("/people", {"id_number": " "})
    assert empty.status_code == 400 and "请输入身份证号码" in empty.text
    assert audits(ctx, "history.query") == [] and audits(ctx, "view.people") == []
    en = english(client).post("/people", {"id_number": wrong}).text
    assert "invalid ID number: the check character does not match" in en


def test_nothing_found_and_refusals(ctx: Context, dash: Dash) -> None:
    plant(ctx)
    other = dash("op101").post("/people", {"id_number": PEOPLE[1].id_number}).text
    assert "H-1 / 2" in other and "另有" not in other
    nobody = persons(3, seed=532)[2]
    empty = dash("op101").post("/people", {"id_number": nobody.id_number}).text
    assert "您所辖地区没有该身份证号码的发放记录" in empty
    # a query string is never a look-up
    client = dash("op101")
    got = client.get("/people", params={"id_number": P.id_number})
    assert "H-1" not in got.text and len(audits(ctx, "history.query")) == 2
    # a post without the session's CSRF token is refused, and nothing is looked up
    forged = client.post("/people", {"id_number": P.id_number}, csrf=False)
    assert forged.status_code == 403 and len(audits(ctx, "history.query")) == 2
    assert dash("admin").get("/people").status_code == 403
