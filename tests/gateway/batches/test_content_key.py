"""The canonical content key (pure): what counts as the same batch, and that two bodies with
the same key are validated alike (so a replay answers what a fresh intake would)."""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.batches.content_key import ContentKey, canonical_header, canonical_item, encode
from gateway.batches.validation import validate_header, validate_item

ITEM: dict[str, Any] = {
    "seq": 1,
    "name": "阿依古丽·买买提",
    "id_number": "11010519491231002X",
    "account_no": "4111111111111111",
    "amount_fen": 1250,
    "phone": "13800000000",
    "remark": "耕地地力保护补贴",
}
HEADER: dict[str, Any] = {
    "batch_no": "B-1",
    "region_code": "430621101",
    "subsidy_code": "GDBH",
    "subsidy_name": "耕地地力保护补贴",
    "period": "2026",
    "fiscal_year": 2026,
    "payer_account": "43001700062050500001",
    "payer_name": "岳阳县财政局",
    "bank_profile": "hnrcu",
    "item_count": 1,
    "total_amount_fen": 1250,
}


def key(header: Any, items: list[Any]) -> str:
    k = ContentKey()
    k.header(header)
    for it in items:
        k.item(it)
    return k.hexdigest()


def test_equivalent_spellings_have_one_key() -> None:
    same = dict(
        ITEM,
        name=" 阿依古丽•买买提 ",
        id_number="11010519491231002x",
        account_no=" 4111111111111111",
        remark=" 耕地地力保护补贴 ",
    )
    same.pop("amount_fen")
    same["amount_yuan"] = "12.50"
    header = dict(reversed(list(HEADER.items())), batch_no=" B-1 ")
    header.pop("total_amount_fen")
    header["total_amount_yuan"] = "12.5"
    assert key(header, [same]) == key(HEADER, [ITEM])


def test_absent_null_and_blank_optional_fields_are_one() -> None:
    bare = {k: v for k, v in ITEM.items() if k not in ("phone", "remark")}
    for variant in ({}, {"phone": None}, {"phone": ""}, {"phone": "  ", "remark": None}):
        assert key(HEADER, [dict(bare, **variant)]) == key(HEADER, [bare])


def test_differences_that_matter_change_the_key() -> None:
    base = key(HEADER, [ITEM])
    for change in (
        {"amount_fen": 1251},
        {"remark": "另一备注"},
        {"seq": 2},
        {"amount_fen": Decimal("1250")},  # a JSON number 1250.0 is not the integer 1250
        {"amount_fen": "1250"},
        {"extra": None},  # an unknown field, even null, is refused: it counts
    ):
        assert key(HEADER, [dict(ITEM, **change)]) != base, change
    assert key(HEADER, [ITEM, ITEM]) != base
    assert key(dict(HEADER, payer_name="岳阳县财政局 专户"), [ITEM]) != base


def test_item_order_counts() -> None:
    a, b = dict(ITEM, seq=1), dict(ITEM, seq=2)
    assert key(HEADER, [a, b]) != key(HEADER, [b, a])


def test_encoding_is_injective_on_look_alikes() -> None:
    values: list[Any] = [
        None, True, False, 0, 1, -1, "1", "true", "null", [], {}, [None], [[]], {"a": 1},
        {"a": "1"}, {"a": [1]}, Decimal("1"), Decimal("1.0"), Decimal("1E+1"), 1.0, "\ud800",
        "\ud800\udc00", "\U00010000", {"a": Decimal("1")}, [Decimal("1")], ["G"], "J",
    ]  # fmt: skip
    encoded = [encode(v) for v in values]
    assert len(set(encoded)) == len(values)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=6),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@given(json_values, json_values)
def test_encoding_is_injective(a: Any, b: Any) -> None:
    if encode(a) == encode(b):
        assert encode(canonical_item(a)) == encode(canonical_item(b))
        assert _same_json(a, b)


def _same_json(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return bool(a == b)


# every field of an item, with values that are valid, equivalent spellings, or wrong
_names = st.sampled_from(
    [
        "张三",
        " 张三 ",
        "阿依古丽•买买提",
        "阿依古丽·买买提",
        "",
        "  ",
        None,
        5,
        "Jose\u0301",
        "Jos\u00e9",
        "张\ud800",
        "张" * 41,
    ]
)
_ids = st.sampled_from(
    [
        "11010519491231002X",
        "11010519491231002x",
        " 11010519491231002X",
        "110105194912310021",
        None,
        "x",
    ]
)
_accounts = st.sampled_from(["4111111111111111", " 4111111111111111 ", "41111", None, 7])
_amounts = st.sampled_from(
    [
        ("amount_fen", 1250),
        ("amount_yuan", "12.50"),
        ("amount_yuan", " 12.5 "),
        ("amount_fen", Decimal("12.5")),
        ("amount_fen", 0),
        ("amount_yuan", "12.505"),
        None,
    ]
)
_phones = st.sampled_from([None, "", "  ", "13800000000", " 13800000000 ", "123", 1])
_remarks = st.sampled_from(
    [None, "", " ", "补发", " 补发 ", "补\t发", "备" * 200 + " ", "备" * 201]
)
_reissues = st.sampled_from(
    [
        None,
        {"batch_no": "B-0", "seq": 1},
        {"batch_no": " B-0 ", "seq": 1},
        {"batch_no": "B-0"},
        {"batch_no": "B-0", "seq": 1, "x": 1},
        "B-0",
    ]
)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    it: dict[str, Any] = {"seq": draw(st.sampled_from([1, 2, 0, True]))}
    for field, values in (
        ("name", _names), ("id_number", _ids), ("account_no", _accounts), ("phone", _phones),
        ("remark", _remarks), ("reissue_of", _reissues),
    ):  # fmt: skip
        value = draw(values)
        if value is not None or draw(st.booleans()):
            it[field] = value
    amount = draw(_amounts)
    if amount is not None:
        it[amount[0]] = amount[1]
    return it


def _outcome(raw: dict[str, Any]) -> Any:
    item, problems = validate_item(raw, accounts_are_cards=True)
    return item, sorted((p.field, p.code, p.seq, p.limit) for p in problems)


@given(items(), items())
def test_same_key_same_validation(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Soundness: what the key calls the same content, validation treats alike (and yields
    the same data), so answering a replay is answering what intake would answer."""
    if encode(canonical_item(a)) == encode(canonical_item(b)):
        assert _outcome(a) == _outcome(b)


@given(items())
def test_nfd_and_blanks_are_the_same_content(a: dict[str, Any]) -> None:
    b = dict(a)
    if isinstance(b.get("name"), str) and "\ud800" not in b["name"]:
        b["name"] = f" {unicodedata.normalize('NFD', b['name'])}\u3000"
    assert encode(canonical_item(a)) == encode(canonical_item(b))
    assert _outcome(a) == _outcome(b)


def test_header_soundness_on_examples() -> None:
    profiles = {"hnrcu": object()}
    for a, b in (
        (HEADER, dict(HEADER, subsidy_name=" 耕地地力保护补贴 ")),
        (HEADER, {k: v for k, v in HEADER.items() if k != "total_amount_fen"}
         | {"total_amount_yuan": "12.50"}),
        (dict(HEADER, payer_name=""), {k: v for k, v in HEADER.items() if k != "payer_name"}),
    ):  # fmt: skip
        assert encode(canonical_header(a)) == encode(canonical_header(b))
        assert validate_header(a, profiles) == validate_header(b, profiles)


_FIELDS = ["seq", "name", "id_number", "account_no", "amount_fen", "amount_yuan", "phone",
           "remark", "reissue_of"]  # fmt: skip
_EDITS = st.sampled_from(["drop", "null", "empty", "blank", "pad"])


@given(items(), st.lists(st.tuples(st.sampled_from(_FIELDS), _EDITS), max_size=3))
def test_look_alike_edits_keep_key_and_validation_together(
    a: dict[str, Any], edits: list[tuple[str, str]]
) -> None:
    """Edits that might or might not be 'the same' (absent, null, empty, blank, padded): the
    key calls them the same only when validation does too."""
    b = dict(a)
    for field, edit in edits:
        if edit == "drop":
            b.pop(field, None)
        elif edit == "null":
            b[field] = None
        elif edit == "empty":
            b[field] = ""
        elif edit == "blank":
            b[field] = "  "
        elif isinstance(b.get(field), str):
            b[field] = f" {b[field]} "
    if encode(canonical_item(a)) == encode(canonical_item(b)):
        assert _outcome(a) == _outcome(b)
