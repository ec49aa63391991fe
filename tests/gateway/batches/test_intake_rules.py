"""Intake rules through the real HTTP API on a real database (SQLite, and PostgreSQL when
configured): every input refused cleanly, with the field named, or carried through intact
(issue 11). The rules themselves: docs/intake.md."""

from __future__ import annotations

import copy
import datetime as dt
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from gateway.api.app import create_app
from gateway.batches.models import Batch, BatchError, BatchWarning, PaymentItem
from gateway.context import Context
from gateway.demo.banks import write_profiles
from gateway.demo.data import Person, batch_payload
from gateway.kit.clock import china_today
from gateway.kit.identity import id_check_char, luhn_check_digit
from gateway.kit.money import MAX_FEN, MAX_TOTAL_FEN
from tests.conftest import make_settings
from tests.gateway.batches import intake_support
from tests.gateway.batches.intake_support import (
    PROFILES,
    Api,
    assert_clean_refusal,
    new_batch_no,
    rendered,
)
from tests.gateway.helpers import persons

BIGINT_MAX = 2**63 - 1
ctx = intake_support.ctx  # every test here has all three bank profiles
api = intake_support.api


def body_for(
    ps: list[Person], *, profile: str = "hnrcu", no: str | None = None, **header: Any
) -> dict[str, Any]:
    body = batch_payload(
        no or new_batch_no(),
        subsidy_code=header.pop("subsidy_code", "GDBH"),
        subsidy_name=header.pop("subsidy_name", "耕地地力保护补贴"),
        period="2026",
        persons=ps,
        amount_fen=10000,
        bank_profile=profile,
    )
    body["header"].update(header)
    return body


def person(first17: str, name: str = "张三", n: int = 0) -> Person:
    partial = f"621799{n:012d}"
    return Person(
        name=name,
        id_number=first17 + id_check_char(first17),
        account_no=partial + luhn_check_digit(partial),
        phone="13900000000",
        bank_status="active",
    )


def errors_of(response: Any) -> set[tuple[Any, str, str]]:
    return {(e["seq"], e["field"], e["code"]) for e in assert_clean_refusal(response)}


def stored(ctx: Context, model: Any) -> int:
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- 1. whatever the bank profile cannot render is refused at intake ------------------------


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("subsidy_name", "耕地\t地力\r\n保护补贴", "text_control_character"),
        ("payer_name", "岳阳县财政局\n专户", "text_control_character"),
        ("subsidy_name", "耕地\u200b地力保护补贴", "text_control_character"),
        ("payer_name", "岳阳县财政局\x00", "text_control_character"),
        ("subsidy_name", "耕地地力\ue000保护补贴", "text_private_use"),
        ("payer_name", "专户\ufffe", "text_invalid_character"),
    ],
)
def test_header_text_no_profile_can_render_is_refused(
    api: Api, ctx: Context, profile: str, field: str, value: str, code: str
) -> None:
    """Before: 201, then render_request failed on every lease for ever."""
    body = body_for(persons(2), profile=profile, **{field: value})
    r = api.post(body)
    assert r.status_code == 422, r.text
    assert (None, field, code) in errors_of(r)
    assert stored(ctx, PaymentItem) == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_accepted_header_and_names_render_in_every_profile(
    api: Api, ctx: Context, profile: str
) -> None:
    ps = persons(7)  # rare (䶮 𬎆 龑), minority (·) names
    body = body_for(ps, profile=profile, subsidy_name="耕地地力保护补贴（第二批）")
    r = api.post(body)
    assert r.status_code == 201, r.text
    out = rendered(ctx, body["header"]["batch_no"])
    assert out["names"] == [p.name for p in ps]
    if profile != "hnrcu":  # the fixed-width file carries no payer name
        assert out["payer_name"] == body["header"]["payer_name"]
    assert out["subsidy_name"].startswith("耕地地力保护补贴（第二批）")


# --- 2. lone surrogates: refused, never altered -----------------------------------------------


def _raw_body(body: dict[str, Any], replace: dict[bytes, bytes]) -> bytes:
    raw = json.dumps(body, ensure_ascii=True).encode()
    for old, new in replace.items():
        assert old in raw
        raw = raw.replace(old, new)
    return raw


@pytest.mark.parametrize(
    "escaped",
    [b"\\u5f20\\ud800\\u4e09", b"\\u5f20\\ud800", b"\\udc00\\u4e09", b"\\u5f20\\udbff"],
)
@pytest.mark.parametrize("where", ["name", "payer_name"])
def test_lone_surrogate_refused_not_altered(
    api: Api, ctx: Context, escaped: bytes, where: str
) -> None:
    """Before: "\\u5f20\\ud800\\u4e09" became 张 + U+10209 in the bank file, "\\u5f20\\ud800"
    became 张?, and "\\udc00" was a 500."""
    body = body_for(persons(2))
    marker = "ZZMARKERZZ"
    if where == "name":
        body["items"][0]["name"] = marker
    else:
        body["header"]["payer_name"] = marker
    raw = _raw_body(body, {marker.encode(): escaped})
    errors = assert_clean_refusal(api.post(raw))
    assert any(e["field"].endswith(where) for e in errors), errors
    assert stored(ctx, PaymentItem) == 0


def test_raw_utf8_surrogate_bytes_refused(api: Api, ctx: Context) -> None:
    body = body_for(persons(2))
    body["items"][0]["name"] = "ZZMARKERZZ"
    raw = (
        json.dumps(body, ensure_ascii=False)
        .encode()
        .replace(b"ZZMARKERZZ", b"\xe5\xbc\xa0\xed\xa0\x80")
    )
    assert_clean_refusal(api.post(raw))
    assert stored(ctx, PaymentItem) == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_surrogate_pair_is_one_astral_character_carried_exactly(
    api: Api, ctx: Context, profile: str
) -> None:
    """``\\ud840\\udc00`` in JSON is U+20000 (𠀀), a valid character: accepted, byte-exact."""
    p = persons(1)[0]
    body = body_for([p], profile=profile)
    body["items"][0]["name"] = "ZZMARKERZZ"
    raw = _raw_body(body, {b"ZZMARKERZZ": b"\\u5f20\\ud840\\udc00"})
    r = api.post(raw)
    assert r.status_code == 201, r.text
    out = rendered(ctx, body["header"]["batch_no"])
    assert out["names"] == ["张\U00020000"]
    if profile == "hnrcu":
        assert "张\U00020000".encode("gb18030") in out["raw"][0]


# --- 3. amounts: bounded, never added when invalid, every stored total fits -----------------


@pytest.mark.parametrize(
    "amounts",
    [[2**63], [5 * 10**18, 5 * 10**18], [BIGINT_MAX, 1], [MAX_FEN + 1], [10**30]],
)
def test_huge_amounts_are_refused_not_a_500(api: Api, ctx: Context, amounts: list[int]) -> None:
    """Before: the invalid amounts were still summed into the rejected batch's total, which
    overflowed BIGINT on INSERT (500, "may be retried")."""
    ps = persons(len(amounts))
    body = body_for(ps)
    for item, amount in zip(body["items"], amounts, strict=True):
        item.pop("amount_yuan", None)
        item["amount_fen"] = amount
    body["header"]["total_amount_fen"] = 10001
    r = api.post(body)
    assert r.status_code == 422, r.text
    errors = assert_clean_refusal(r)
    too_large = [e for e in errors if e["code"] == "amount_too_large"]
    assert {e["seq"] for e in too_large} == {
        seq for seq, a in enumerate(amounts, start=1) if a > MAX_FEN
    }
    for e in too_large:
        assert e["limit"] == MAX_FEN and e["unit"] == "fen"
        assert str(MAX_FEN) in e["message_zh"] and str(MAX_FEN) in e["message_en"]
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch))
        assert batch is not None and batch.state == "rejected"
        # only valid amounts are summed
        assert batch.total_fen == sum(a for a in amounts if a <= MAX_FEN)
        assert 0 <= batch.total_fen <= MAX_TOTAL_FEN


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("total_amount_fen", 2**63, "amount_too_large"),
        ("total_amount_fen", MAX_TOTAL_FEN + 1, "amount_too_large"),
        ("total_amount_yuan", "99999999999999999999.00", "amount_too_large"),
        ("item_count", 2**63, "too_many_items"),
        ("item_count", 1_000_001, "too_many_items"),
    ],
)
def test_declared_totals_and_counts_are_bounded(
    api: Api, ctx: Context, key: str, value: Any, code: str
) -> None:
    body = body_for(persons(1))
    if key.startswith("total_amount"):
        body["header"].pop("total_amount_fen")
    body["header"][key] = value
    r = api.post(body)
    assert r.status_code == 422, r.text
    assert (None, key, code) in errors_of(r)
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch))
        assert batch is not None
        assert 0 <= batch.declared_total_fen <= MAX_TOTAL_FEN
        assert 0 <= batch.declared_count < 2**31


def test_sum_of_valid_amounts_beyond_any_total_field(api: Api, ctx: Context) -> None:
    """1,001 items of the largest amount: each valid, their sum fits no bank file's total
    (18 digits) — refused as such, and the stored total stays inside its column."""
    first = dt.date(1950, 1, 1)
    ps = [person(f"430621{first + dt.timedelta(days=i):%Y%m%d}001", "张三", i) for i in range(1001)]
    body = body_for(ps)
    for item in body["items"]:
        item.pop("amount_yuan", None)
        item["amount_fen"] = MAX_FEN
    body["header"]["total_amount_fen"] = MAX_TOTAL_FEN
    r = api.post(body)
    assert r.status_code == 422, r.text
    errors = assert_clean_refusal(r)
    total = [e for e in errors if e["code"] == "total_too_large"]
    assert total and total[0]["limit"] == MAX_TOTAL_FEN
    with ctx.sessions() as s:
        batch = s.scalar(select(Batch))
        assert batch is not None and batch.total_fen == MAX_TOTAL_FEN


def test_errors_listed_are_capped_and_counted(api: Api, ctx: Context) -> None:
    ps = persons(3)
    body = body_for(ps)
    template = body["items"][0]
    body["items"] = [dict(template, seq=i, name="") for i in range(1, 1206)]
    body["header"]["item_count"] = 1205
    r = api.post(body)
    assert r.status_code == 422
    answer = r.json()
    assert answer["error_count"] > 1205  # every empty name, and the duplicates, and the total
    assert 1000 <= len(answer["errors"]) <= 1010
    assert stored(ctx, BatchError) == len(answer["errors"])


# --- 4. ID numbers: region and birth date --------------------------------------------------


@pytest.mark.parametrize(
    ("first17", "code"),
    [
        ("00000019800101001", "id_number_region"),
        ("99999919800101001", "id_number_region"),
        ("19062119800101001", "id_number_region"),  # 19: no province
        ("43062118500101001", "id_number_birth_too_early"),
        ("43062118991231001", "id_number_birth_too_early"),
    ],
)
def test_impossible_id_numbers_refused(api: Api, first17: str, code: str) -> None:
    """Before: accepted whenever the check digit was right."""
    p = person(first17)
    r = api.post(body_for([p]))
    assert r.status_code == 422
    assert (1, "id_number", code) in errors_of(r)


def test_future_birth_date_refused(api: Api) -> None:
    tomorrow = china_today() + dt.timedelta(days=1)
    p = person(f"430621{tomorrow:%Y%m%d}001")
    r = api.post(body_for([p]))
    assert (1, "id_number", "id_number_birth_in_future") in errors_of(r)
    today = china_today()
    born_today = person(f"430621{today:%Y%m%d}001")
    assert api.post(body_for([born_today])).status_code == 201


def test_oldest_accepted_birth_date(api: Api) -> None:
    assert api.post(body_for([person("43062119000101001")])).status_code == 201


def test_unknown_region_is_a_warning_not_a_refusal(api: Api, ctx: Context) -> None:
    ps = persons(3)
    stranger = person("43069919800101001", "李四", 77)  # 4306 岳阳市 exists, 430699 does not
    body = body_for([*ps, stranger])
    r = api.post(body)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["warning_count"] == 1
    (w,) = answer["warnings"]
    assert (w["seq"], w["field"], w["code"]) == (4, "id_number", "id_number_region_unknown")
    assert w["message_zh"] and w["message_en"]
    assert "430699" not in json.dumps(answer)  # no part of an ID number beyond the seq
    again = api.post(body)
    assert again.status_code == 201 and again.json() == answer
    assert stored(ctx, BatchWarning) == 1


def test_header_region_codes(api: Api) -> None:
    r = api.post(body_for(persons(1), region_code="000000"))
    assert (None, "region_code", "region_code_province") in errors_of(r)
    r = api.post(body_for(persons(1), region_code="439999001"))
    assert r.status_code == 201, r.text
    assert [(w["field"], w["code"]) for w in r.json()["warnings"]] == [
        ("region_code", "region_code_unknown")
    ]


def test_subsidy_age_rule_is_a_warning(api: Api) -> None:
    """The elderly allowance (高龄津贴) asks 80 years on the period's last day: a younger
    person is accepted with a warning (the self-check reports it too)."""
    young = person("43062119900505001", "赵小年", 1)
    old = person("43062119300101001", "孙九六", 2)
    r = api.post(body_for([young, old], subsidy_code="GLJT", subsidy_name="高龄津贴"))
    assert r.status_code == 201, r.text
    warnings = r.json()["warnings"]
    assert [(w["seq"], w["field"], w["code"]) for w in warnings] == [
        (1, "id_number", "id_number_age_rule")
    ]
    assert "高龄津贴" in warnings[0]["message_zh"] and "80" in warnings[0]["message_en"]
    assert "1990" not in json.dumps(warnings)  # the rule, not the birth date
    # the same people for another subsidy: no age rule, no warning
    other = api.post(body_for([young, old], subsidy_code="GDBH2"))
    assert other.status_code == 201 and other.json()["warnings"] == []


# --- 5. unknown fields are refused, with the field named --------------------------------------


def test_unknown_fields_refused(api: Api, ctx: Context) -> None:
    """Before: ``phone_no`` and ``reissue_off`` were dropped silently."""
    body = body_for(persons(3))
    body["header"]["phone_no"] = "13800000000"
    body["items"][1]["reissue_off"] = {"batch_no": "B-0", "seq": 1}
    body["items"][2]["reissue_of"] = {"batch_no": "B-0", "seq": 1, "sqe": 2}
    r = api.post(body)
    assert r.status_code == 422
    errs = errors_of(r)
    assert (None, "phone_no", "unknown_field") in errs
    assert (2, "reissue_off", "unknown_field") in errs
    assert (3, "reissue_of.sqe", "unknown_field") in errs
    assert stored(ctx, PaymentItem) == 0


def test_unknown_top_level_field_refused(api: Api, ctx: Context) -> None:
    body = body_for(persons(1))
    body["itmes"] = []
    errors = assert_clean_refusal(api.post(body))
    assert any("itmes" in e["field"] and e["code"] == "unknown_field" for e in errors), errors
    assert stored(ctx, PaymentItem) == 0


def test_unknown_field_with_hostile_name_is_stored_safely(api: Api, ctx: Context) -> None:
    body = body_for(persons(1))
    body["items"][0]["\x00" + "名" * 60] = 1
    r = api.post(body)
    assert r.status_code == 422
    (e,) = [e for e in r.json()["errors"] if e["code"] == "unknown_field"]
    assert "\x00" not in e["field"] and len(e["field"]) <= 64


# --- 6. idempotency on the canonical content ------------------------------------------------


def _reserialised(body: dict[str, Any]) -> bytes:
    """The same batch as another client library might write it."""
    other = copy.deepcopy(body)
    for item in other["items"]:
        if "amount_fen" in item:  # fen ↔ yuan
            fen = item.pop("amount_fen")
            item["amount_yuan"] = f"{fen // 100}.{fen % 100:02d}"
        else:
            yuan = item.pop("amount_yuan")
            item["amount_fen"] = int(yuan.replace(".", ""))
        item["name"] = f" {unicodedata.normalize('NFD', item['name'])} "
        item["id_number"] = item["id_number"].lower()
        item.setdefault("phone", None)  # absent ≡ null
    other["items"] = [dict(reversed(list(item.items()))) for item in other["items"]]
    other["header"] = dict(reversed(list(other["header"].items())))
    return json.dumps(other, ensure_ascii=True, indent=3, sort_keys=True).encode()


def test_same_batch_reserialised_is_a_replay(api: Api, ctx: Context) -> None:
    """Before: other whitespace, key order or escapes answered 409 "内容不同"."""
    ps = persons(4)
    body = body_for(ps)
    body["items"][0].pop("phone")
    first = api.post(body)
    assert first.status_code == 201, first.text
    again = api.post(_reserialised(body))
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = copy.deepcopy(body)
    changed["items"][1]["remark"] = "另一备注"
    conflict = api.post(changed)
    assert conflict.status_code == 409
    assert conflict.json()["errors"][0]["code"] == "batch_no_reused"
    assert stored(ctx, Batch) == 1 and stored(ctx, PaymentItem) == 4


def test_item_order_is_part_of_the_content(api: Api) -> None:
    body = body_for(persons(3))
    assert api.post(body).status_code == 201
    body["items"].reverse()
    assert api.post(body).status_code == 409


def test_rejected_batch_number_stays_taken(api: Api, ctx: Context) -> None:
    """A rejected batch keeps its number: the same content (however serialised) gets the
    same 422 again; corrected content must come under a new batch number (409 otherwise)."""
    body = body_for(persons(2))
    body["items"][0]["name"] = ""
    first = api.post(body)
    assert first.status_code == 422
    again = api.post(_reserialised(body))
    assert again.status_code == 422 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    fixed = copy.deepcopy(body)
    fixed["items"][0]["name"] = "王五"
    assert api.post(fixed).status_code == 409
    fixed["header"]["batch_no"] = new_batch_no("FIXED")
    assert api.post(fixed).status_code == 201
    assert stored(ctx, Batch) == 2


def test_batches_from_before_the_content_key_compare_bytes(api: Api, ctx: Context) -> None:
    body = body_for(persons(2))
    assert api.post(body).status_code == 201
    with ctx.sessions.begin() as s:
        s.execute(update(Batch).values(content_key=None))
    assert api.post(body).status_code == 201  # the same bytes: a replay
    assert api.post(_reserialised(body)).status_code == 409  # no key to compare


# --- 7. limits are stated ---------------------------------------------------------------------


def test_name_longer_than_the_bank_format_states_the_limit(api: Api) -> None:
    name = "𬎆" * 16  # 16 characters, 64 GB18030 bytes (4 each): too long for 60
    p = person("43062119800101001", name)
    r = api.post(body_for([p]))
    assert r.status_code == 422
    (e,) = [e for e in r.json()["errors"] if e["field"] == "name"]
    assert (e["code"], e["limit"], e["unit"]) == ("too_long", 60, "gb18030_bytes")
    assert "姓名超过60个GB18030字节（银行格式上限" in e["message_zh"]
    assert "name exceeds 60 GB18030 bytes (bank format limit" in e["message_en"]
    # the ISO 20022 bank counts characters (140): the same name goes through
    assert api.post(body_for([p], profile="psbc")).status_code == 201


def test_intake_limits_are_stated(api: Api) -> None:
    body = body_for(persons(1), subsidy_name="补" * 101)
    body["items"][0]["name"] = "张" * 41
    body["items"][0]["remark"] = "备" * 201
    errors = {e["field"]: e for e in assert_clean_refusal(api.post(body))}
    assert (errors["name"]["limit"], errors["name"]["unit"]) == (40, "characters")
    assert "40" in errors["name"]["message_zh"] and "40" in errors["name"]["message_en"]
    assert (errors["remark"]["limit"], errors["remark"]["unit"]) == (200, "characters")
    assert (errors["subsidy_name"]["limit"], errors["subsidy_name"]["unit"]) == (100, "characters")
    assert "补贴项目名称超过100个字符" in errors["subsidy_name"]["message_zh"]


def test_age_rules_come_from_the_selfcheck_file(
    db_url: str, tmp_path: Path, dev_keys: Path
) -> None:
    rules = tmp_path / "selfcheck.toml"
    rules.write_text(
        '[selfcheck]\n[[selfcheck.age_rules]]\nlabel = "农村低保"\nsubsidy_codes = ["NCDB"]\n'
        "max_age = 60\n",
        encoding="utf-8",
    )
    profiles = write_profiles(tmp_path, dev_keys, 9)
    context = Context.build(make_settings(db_url, profiles, selfcheck_file=rules))  # type: ignore[arg-type]
    try:
        with TestClient(create_app(context)) as client:
            old = person("43062119300101001", "孙九六", 3)
            r = Api(client).post(body_for([old], subsidy_code="NCDB", subsidy_name="农村低保"))
            assert r.status_code == 201, r.text
            assert [w["code"] for w in r.json()["warnings"]] == ["id_number_age_rule"]
            assert "农村低保: max_age 60" in r.json()["warnings"][0]["message_en"]
    finally:
        context.close()
