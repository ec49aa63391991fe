"""Properties of intake through the real HTTP API, on a real database (issue 11):

- any JSON value in any field of the header or an item (or an unknown field) gives 201 or
  a 4xx whose every error has a field, a code and messages in Chinese and English — never
  a 5xx;
- whatever intake accepts, the bank profile renders (the real planner, the real format),
  and every name arrives exactly as accepted; so whatever a profile would refuse to
  render was refused at intake.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.formats.fixed_width import cut_to_width
from gateway.batches.validation import HEADER_FIELDS, ITEM_FIELDS
from gateway.context import Context
from gateway.demo.data import Person, batch_payload
from gateway.kit.identity import id_check_char, luhn_check_digit, normalize_name, normalize_text
from tests.gateway.batches import intake_support
from tests.gateway.batches.intake_support import (
    PROFILES,
    Api,
    assert_clean_refusal,
    new_batch_no,
    rendered,
)

ctx = intake_support.ctx
api = intake_support.api

_people = itertools.count(1)


def fresh_person(name: str = "张三") -> Person:
    """Someone never paid before in this test session (no claim collides)."""
    n = next(_people)
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=n % 20000)
    first17 = f"430621{birth:%Y%m%d}{n % 1000:03d}"
    partial = f"621799{n:012d}"
    return Person(
        name=name,
        id_number=first17 + id_check_char(first17),
        account_no=partial + luhn_check_digit(partial),
        phone="13900000000",
        bank_status="active",
    )


def base_body(names: list[str], profile: str = "hnrcu") -> dict[str, Any]:
    return batch_payload(
        new_batch_no("P"),
        subsidy_code="GDBH",
        subsidy_name="耕地地力保护补贴",
        period="2026",
        persons=[fresh_person(n) for n in names],
        amount_fen=10000,
        bank_profile=profile,
    )


def post(api: Api, body: dict[str, Any]) -> Any:
    # ASCII escapes: a lone surrogate travels as \udXXX, as a client would send it
    return api.post(json.dumps(body, ensure_ascii=True).encode("ascii"))


# --- any JSON anywhere ------------------------------------------------------------------------

_TRICKY = [
    "",
    " ",
    "\t",
    "0",
    "-1",
    "1.00",
    "1e3",
    "2026",
    "hnrcu",
    "430621101",
    "11010519491231002X",
    "张\ud800三",
    "\udc00",
    "\ufffe",
    "𬎆" * 16,
    "张" * 41,
    "a\x00b",
    "9" * 40,
]
_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=()), max_size=20)
    | st.sampled_from(_TRICKY)
)
json_values = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = (
    st.sampled_from(sorted(HEADER_FIELDS | ITEM_FIELDS))
    | st.sampled_from(["phone_no", "reissue_off", "items", "header", "seq"])
    | st.text(max_size=10)
)
edits = st.lists(
    st.tuples(st.sampled_from(["header", "item", "top"]), _keys, json_values),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits, profile=st.sampled_from(PROFILES), drop=st.booleans())
def test_any_json_in_any_field_is_accepted_or_refused_cleanly(
    api: Api, edits: list[tuple[str, str, Any]], profile: str, drop: bool
) -> None:
    body = base_body(["张三", "李四"], profile)
    if drop:  # a required field missing too
        body["items"][1].pop("name", None)
    # the top-level edits last: they may replace the header or the items altogether
    for where, key, value in sorted(edits, key=lambda e: e[0] == "top"):
        if where == "header":
            body["header"][key] = value
        elif where == "item":
            body["items"][0][key] = value
        else:
            body[key] = value
    r = post(api, body)
    assert r.status_code < 500, r.text[:500]
    if r.status_code != 201:
        assert_clean_refusal(r)
    else:
        answer = r.json()
        assert answer["state"] == "accepted" and answer["errors"] == []


# --- what intake accepts, the profile renders exactly -------------------------------------

_GOOD = st.one_of(
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK
    st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF),  # Ext A (䶮)
    st.characters(min_codepoint=0x20000, max_codepoint=0x2EBEF),  # Ext B–F (𬎆)
    st.characters(min_codepoint=0x30000, max_codepoint=0x3134F),  # Ext G
    st.sampled_from("·•・．  （）-ABCabc0123 "),  # dots, spaces, brackets, Latin
    st.sampled_from("\u0301\u0308e\u0065\u0301"),  # combining marks: NFC changes them
)
_ANY = st.one_of(
    _GOOD,
    st.characters(exclude_categories=()),  # anything at all, lone surrogates too
    st.sampled_from("\t\r\n\x00\x7f\x85\u200b\u200d\u2028\ufeff\ue000\ufffe\U0010ffff"),
)
# mostly text a bank should carry (near the limits too), sometimes anything
names = st.one_of(st.text(_GOOD, min_size=1, max_size=16), st.text(_ANY, max_size=20))
long_texts = st.one_of(st.text(_GOOD, min_size=1, max_size=105), st.text(_ANY, max_size=60))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(names, min_size=1, max_size=2),
    subsidy_name=long_texts,
    payer_name=long_texts,
    remark=st.one_of(st.none(), long_texts),
    profile=st.sampled_from(PROFILES),
)
def test_what_intake_accepts_renders_exactly_in_its_profile(
    api: Api,
    ctx: Context,
    names: list[str],
    subsidy_name: str,
    payer_name: str,
    remark: str | None,
    profile: str,
) -> None:
    body = base_body(names, profile)
    body["header"]["subsidy_name"] = subsidy_name
    body["header"]["payer_name"] = payer_name
    for item in body["items"]:
        item["remark"] = remark
    r = post(api, body)
    assert r.status_code < 500, r.text[:500]
    if r.status_code != 201:
        errors = assert_clean_refusal(r)
        assert r.status_code in (400, 422), errors
        event(f"refused: {sorted({e['code'] for e in errors})[0]}")
        return
    event(f"accepted ({profile})")
    out = rendered(ctx, body["header"]["batch_no"])
    accepted = [normalize_name(n) for n in names]
    assert out["names"] == accepted  # exact, rare and astral characters included
    subsidy = normalize_text(subsidy_name)
    if profile == "hnrcu":
        for name in accepted:
            assert name.encode("gb18030") in out["raw"][0]
        assert out["subsidy_name"] == cut_to_width(subsidy, 60).decode("gb18030").rstrip(" ")
    else:
        assert out["payer_name"] == normalize_text(payer_name)
        if profile == "abc":
            assert out["subsidy_name"] == subsidy
        else:
            assert out["subsidy_name"].startswith(f"{subsidy} 2026"[:140])
