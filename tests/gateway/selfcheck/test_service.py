"""The self-check finds exactly the planted cases (and none of the near misses), on SQLite
and PostgreSQL; findings hold no raw personal data; reports are listed, scoped by region
and audited."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

from gateway.batches.models import PaymentItem
from gateway.context import Context
from gateway.kit.clock import china_today
from gateway.rework.errors import OperatorRequiredError
from gateway.rework.models import AuditRecord
from gateway.selfcheck.config import AgeRule, SelfCheckConfig
from gateway.selfcheck.models import SelfCheckFinding
from gateway.selfcheck.service import (
    KIND_LABELS,
    KINDS,
    FindingView,
    ReportNotFoundError,
    SelfCheckPeriodError,
    get_report,
    list_findings,
    list_reports,
    run_selfcheck,
)
from tests.gateway.rework.support import batch, item, pay
from tests.gateway.selfcheck.support import Planted, person, plant


@pytest.fixture
def planted(ctx: Context) -> Planted:
    return plant(ctx)


def findings(ctx: Context, report_id: int, **kw: object) -> list[FindingView]:
    found, total = list_findings(ctx, report_id, limit=1000, **kw)  # type: ignore[arg-type]
    assert total == len(found)
    return found


def by_kind(found: list[FindingView]) -> dict[str, list[list[int]]]:
    out: dict[str, list[list[int]]] = {k: [] for k in KINDS}
    for f in found:
        out[f.kind].append(f.item_ids)
    return out


def test_finds_each_planted_case_and_nothing_else(ctx: Context, planted: Planted) -> None:
    report_id = run_selfcheck(ctx, requested_by="审计员")
    report = get_report(ctx, report_id)
    assert report.counts == dict.fromkeys(KINDS, 1) and report.total == 5
    assert report.trigger == "manual" and report.requested_by == "审计员"
    assert report.period_to == china_today() and report.finished_at is not None
    found = findings(ctx, report_id)
    assert by_kind(found) == {
        "shared_account": [planted.shared_account],
        "duplicate_claim": [planted.duplicate_claim],
        "repeated_name_mismatch": [planted.repeated_name_mismatch],
        "account_changed": [planted.account_changed],
        "implausible_age": [planted.implausible_age],
    }
    f = {x.kind: x for x in found}
    assert f["shared_account"].region_codes == ["430621101", "430621103"]
    assert f["shared_account"].detail["people"] == 2
    assert (
        f["shared_account"].subject_masked.startswith("6217")
        and "*" in f["shared_account"].subject_masked
    )
    dup = f["duplicate_claim"]
    assert dup.amount_fen == 10002 + 10001 and dup.detail["excess_fen"] == 10001
    assert dup.detail["subsidies"] == [
        {"code": "GDBH", "name": "耕地地力保护补贴"},
        {"code": "GDDL", "name": "耕地地力保护补贴"},
    ]
    assert f["repeated_name_mismatch"].detail["failures"] == 2
    assert f["repeated_name_mismatch"].region_codes == ["430621101"]
    change = f["account_changed"].detail["changes"]
    assert len(change) == 1 and change[0]["from_account"] != change[0]["to_account"]
    age = f["implausible_age"]
    assert age.region_codes == ["430621102"]
    assert age.detail["problems"][0]["age"] == 36
    assert age.detail["problems"][0]["problem"] == "subsidy_rule"
    for x in found:
        zh, en, action = KIND_LABELS[x.kind]
        assert (x.title_zh, x.title_en, x.action_zh) == (zh, en, action)
        assert x.explanation_zh and x.explanation_en and x.subject_bidx


def test_findings_hold_no_raw_personal_data(ctx: Context, planted: Planted) -> None:
    run_selfcheck(ctx, requested_by="审计员")
    with ctx.sessions() as s:
        rows = s.scalars(select(SelfCheckFinding)).all()
        text = json.dumps(
            [[r.subject_masked, r.detail, r.item_ids, r.region_codes] for r in rows],
            ensure_ascii=False,
        )
        audit = json.dumps([a.detail for a in s.scalars(select(AuditRecord))], ensure_ascii=False)
    for p in planted.people:
        for secret in (p.id_number, p.account_no, p.phone, p.name):
            assert secret not in text and secret not in audit


def test_thresholds_come_from_the_configuration(ctx: Context, planted: Planted) -> None:
    config = SelfCheckConfig(
        name_mismatch_min=1,  # ps4's single mismatch and the borrower's count too
        account_change_window_days=365,  # the change after 200 days counts
        age_rules=(AgeRule(label="高龄", name_keywords=("高龄",), min_age=81),),
    )
    report = get_report(ctx, run_selfcheck(ctx, requested_by="审计员", config=config))
    assert report.counts == {
        "shared_account": 1,
        "duplicate_claim": 1,
        "repeated_name_mismatch": 3,
        "account_changed": 2,
        "implausible_age": 2,  # aged exactly 80 is too young for 81
    }


def test_the_period_limits_what_is_checked(ctx: Context, planted: Planted) -> None:
    today = china_today()
    later = run_selfcheck(
        ctx,
        requested_by="审计员",
        since=today + dt.timedelta(days=1),
        until=today + dt.timedelta(days=10),
    )
    assert get_report(ctx, later).total == 0
    before = run_selfcheck(
        ctx,
        requested_by="审计员",
        since=today - dt.timedelta(days=400),
        until=today - dt.timedelta(days=1),
    )
    assert get_report(ctx, before).total == 0  # only SC-0 is that old: nothing wrong there
    with pytest.raises(SelfCheckPeriodError):
        run_selfcheck(ctx, requested_by="审计员", since=today, until=today - dt.timedelta(days=1))
    with pytest.raises(OperatorRequiredError):
        run_selfcheck(ctx, requested_by="two words")


def test_general_age_limits_for_any_subsidy(ctx: Context) -> None:
    unborn = person("未出生", dt.date(2030, 1, 1), 11)
    people = [
        person("未出生", dt.date(2015, 1, 1), 11),  # until it is rewritten below
        person("百廿一", dt.date(1900, 6, 1), 12),
        person("十一岁", dt.date(2015, 3, 3), 13),
        person("十六岁", dt.date(2010, 12, 31), 14),  # 16 on the period's last day: fine
    ]
    batch(ctx, "AGE-1", people)
    pay(ctx, "AGE-1", [1, 2, 3, 4])
    # intake refuses a birth date after today now; an item accepted before that rule may
    # still hold one, and the self-check finds it
    with ctx.sessions.begin() as s:
        s.execute(
            update(PaymentItem)
            .where(PaymentItem.id == item(ctx, "AGE-1", 1).id)
            .values(id_number_enc=ctx.pii.encrypt("id_number", unborn.id_number))
        )
    found = findings(ctx, run_selfcheck(ctx, requested_by="审计员"))
    problems = sorted(p["problem"] for f in found for p in f.detail["problems"])
    assert problems == ["birth_in_future", "over_max_age", "under_min_age"]
    assert {f.kind for f in found} == {"implausible_age"}


def test_list_findings_by_region_kind_and_page(ctx: Context, planted: Planted) -> None:
    report_id = run_selfcheck(ctx, requested_by="审计员")
    kinds = lambda regions: sorted(f.kind for f in findings(ctx, report_id, regions=regions))  # noqa: E731
    assert kinds(["430621102"]) == ["implausible_age"]
    assert kinds(["430621103"]) == ["duplicate_claim", "shared_account"]
    assert kinds(["4306"]) == sorted(KINDS)
    assert kinds(["430621102", "430621103"]) == [
        "duplicate_claim",
        "implausible_age",
        "shared_account",
    ]
    assert kinds([]) == [] and kinds(["%"]) == [] and kinds(["4307"]) == []
    only, total = list_findings(ctx, report_id, kind="account_changed")
    assert total == 1 and only[0].kind == "account_changed"
    page, total = list_findings(ctx, report_id, offset=1, limit=2)
    assert total == 5 and [f.kind for f in page] == list(KINDS[1:3])
    with pytest.raises(ReportNotFoundError):
        list_findings(ctx, report_id + 100)


def test_reports_are_listed_and_audited(ctx: Context, planted: Planted) -> None:
    first = run_selfcheck(ctx, requested_by="审计员")
    second = run_selfcheck(ctx, requested_by="李会计")
    assert [r.id for r in list_reports(ctx)] == [second, first]
    assert [r.id for r in list_reports(ctx, limit=1)] == [second]
    with pytest.raises(ReportNotFoundError) as missing:
        get_report(ctx, 999)
    assert isinstance(missing.value, LookupError) and "999" in missing.value.message_zh
    with ctx.sessions() as s:
        runs = s.scalars(select(AuditRecord).where(AuditRecord.action == "selfcheck.run")).all()
    assert [(a.actor, a.target_id) for a in runs] == [
        ("审计员", str(first)),
        ("李会计", str(second)),
    ]
    assert runs[0].detail is not None and runs[0].detail["total"] == 5
