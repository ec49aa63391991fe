"""The bounded streaming JSON reader: the same values as ``json.loads`` for every document
within the limits, whatever the chunk borders; a clean refusal (code and path) for every
other document; memory bounded by the limits, not by the body."""

from __future__ import annotations

import io
import json
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.kit.boundedjson import JsonLimitError, JsonLimits, iter_items, scan

SMALL = JsonLimits(chunk_bytes=7)


def read(raw: bytes, limits: JsonLimits = SMALL) -> tuple[Any, list[Any]]:
    header = scan(io.BytesIO(raw), limits).header
    return header, list(iter_items(io.BytesIO(raw), limits))


def refusal(raw: bytes, limits: JsonLimits = SMALL) -> tuple[str, str]:
    with pytest.raises(JsonLimitError) as info:
        read(raw, limits)
    assert info.value.message_zh and info.value.message_en
    return info.value.code, info.value.path


def doc(header: Any = None, items: Any = None) -> bytes:
    return json.dumps({"header": header or {"a": 1}, "items": items or [{}]}).encode()


# --- the same values as json.loads --------------------------------------------------------

# text with lone surrogates now and then: serialised as \uXXXX escapes (ensure_ascii) or
# as CESU bytes (surrogatepass), both must be refused; pairs of them are one character
TEXT = st.one_of(*[st.text(max_size=12)] * 7) | st.lists(
    st.integers(0xD800, 0xDFFF).map(chr) | st.sampled_from(["a", "张", "𬎆", "\\", '"']),
    max_size=6,
).map("".join)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=3, max_value=10**9, min_value=-(10**9)
    )
    | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # json.dumps writes it as a JSON number
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


@settings(max_examples=300)
@given(
    header=VALUES,
    items=st.lists(VALUES, max_size=5),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_same_values_as_json_loads_or_a_clean_refusal(
    header: Any, items: list[Any], ascii_only: bool, indent: int | None, chunk: int
) -> None:
    text = json.dumps(
        {"header": _encode(header), "items": _encode(items)}, ensure_ascii=ascii_only, indent=indent
    )
    raw = text.encode("utf-8", "surrogatepass")
    expected = json.loads(text, parse_float=Decimal)
    limits = JsonLimits(chunk_bytes=chunk)
    if _has_surrogate(expected):
        code, _ = refusal(raw, limits)
        assert code in {"lone_surrogate", "invalid_utf8"}
        return
    got_header, got_items = read(raw, limits)
    assert got_header == expected["header"]
    assert got_items == expected["items"]
    assert scan(io.BytesIO(raw), limits).item_count == len(items)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 6, 7, 11, 12, 13, 16384])
@pytest.mark.parametrize(
    ("escaped", "ok"),
    [
        (b"\\ud870\\udf86", True),  # 𬎆, a pair
        (b"\\\\ud800", True),  # an escaped backslash, then text
        (b"\\\\\\\\\\ud870\\udf86", True),  # two escaped backslashes, then a pair
        (b"\\ud800", False),
        (b"\\ud800\\u4e09", False),  # yajl made U+10209 of this
        (b"\\u5f20\\udbff", False),
        (b"\\udc00", False),
        (b"\\\\\\ud800", False),  # an escaped backslash, then a lone escape
        (b"\\ud800\\ud800\\udc00", False),
    ],
)
def test_surrogate_escapes_across_chunk_borders(chunk: int, escaped: bytes, ok: bool) -> None:
    raw = b'{"header": {"name": "a' + escaped + b'z"}}'
    limits = JsonLimits(chunk_bytes=chunk)
    if ok:
        assert read(raw, limits)[0] == json.loads(raw)["header"]
    else:
        assert refusal(raw, limits) == ("lone_surrogate", "header.name")


# --- every limit, at its edge ----------------------------------------------------------------


def test_depth() -> None:
    limits = JsonLimits(max_depth=5)
    # {"header": {"a": [[1]]}}: depth 4
    assert read(b'{"header": {"a": [[[1]]]}}', limits)[0] == {"a": [[[1]]]}
    assert refusal(b'{"header": {"a": [[[[1]]]]}}', limits) == ("too_deep", "header.a[0][0][0]")
    code, _ = refusal(b"[" * 20000 + b"]" * 20000)
    assert code == "too_deep"


def test_string_and_key_lengths() -> None:
    assert read(doc(items=[{"name": "x" * 4096}]))[1] == [{"name": "x" * 4096}]
    assert refusal(doc(items=[{}, {"name": "x" * 4097}])) == ("string_too_long", "items[1].name")
    assert refusal(doc(header={"k" * 65: 1})) == ("key_too_long", "header")
    keys = {f"k{i}": 1 for i in range(65)}
    assert refusal(doc(header=keys)) == ("too_many_keys", "header")


def test_token_bytes_bound_the_parser_buffer() -> None:
    limits = JsonLimits(max_token_bytes=1000, chunk_bytes=100)
    raw = b'{"header": {}, "items": [{"name": "' + b"x" * 5000 + b'"}]}'
    assert refusal(raw, limits) == ("token_too_long", "items[0].name")
    spaces = b'{"header": {}, "items": [' + b" " * 5000 + b"]}"
    assert refusal(spaces, limits)[0] == "token_too_long"


def test_numbers() -> None:
    assert read(doc(items=[{"n": 10**40 - 1}]))[1] == [{"n": 10**40 - 1}]
    assert refusal(doc(items=[{"n": 10**40}])) == ("number_out_of_range", "items[0].n")
    assert refusal(b'{"header": {"n": 1e99999}}') == ("number_out_of_range", "header.n")
    assert refusal(b'{"header": {"n": 0.' + b"0" * 50 + b"1}}")[0] == "number_out_of_range"
    assert read(b'{"header": {"n": 100.5}}')[0] == {"n": Decimal("100.5")}


@pytest.mark.parametrize("digits", [4097, 4300, 4301, 5000, 100_000])
@pytest.mark.parametrize("chunk", [7, 4096, 16384])
def test_long_digit_runs_never_reach_the_parser(digits: int, chunk: int) -> None:
    """ijson 3.6 (yajl2_c) crashes the process (segfault) on an integer of more than 4300
    digits: such a run is refused on the raw bytes, as a number or inside a string."""
    limits = JsonLimits(chunk_bytes=chunk)
    number = b'{"header": {"n": ' + b"1" * digits + b"}}"
    string = b'{"header": {"n": "' + b"1" * digits + b'"}}'
    assert refusal(number, limits) == ("digit_run_too_long", "header.n")
    assert refusal(string, limits)[0] in {"digit_run_too_long", "string_too_long"}


def test_value_size() -> None:
    limits = JsonLimits(max_value_size=100)
    assert read(doc(items=[{"a": "x" * 80}]), limits)[1] == [{"a": "x" * 80}]
    assert refusal(doc(items=[{}, {"a": ["x" * 30] * 4}]), limits) == (
        "value_too_large",
        "items[1].a[3]",
    )


def test_items_count() -> None:
    limits = JsonLimits(max_items=3)
    assert scan(io.BytesIO(doc(items=[{}] * 3)), limits).item_count == 3
    assert refusal(doc(items=[{}] * 4), limits) == ("too_many_items", "items")


def test_duplicates_and_unknown_top_level_keys() -> None:
    assert refusal(b'{"header": {"a": 1, "a": 2}}') == ("duplicate_key", "header.a")
    assert refusal(b'{"header": {}, "items": [{"s": {"b": 1, "b": 1}}]}') == (
        "duplicate_key",
        "items[0].s.b",
    )
    assert refusal(b'{"header": {}, "header": {}}') == ("duplicate_key", "header")
    assert refusal(b'{"header": {}, "extra": 1}') == ("unknown_field", "extra")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "malformed_json"),
        (b'{"header": {}', "malformed_json"),
        (b'{"header": {}} x', "malformed_json"),
        (b'{"header": "\xff"}', "malformed_json"),  # yajl's own UTF-8 check
        (b'{"header": "\xed\xa0\x80"}', "invalid_utf8"),  # a CESU-encoded surrogate
        (b'{"header": "\xc0\xaf"}', "invalid_utf8"),  # overlong
    ],
)
def test_malformed(raw: bytes, code: str) -> None:
    assert refusal(raw)[0] == code


def test_other_shapes_are_left_to_validation() -> None:
    assert read(b"[1, 2]") == (None, [])
    assert read(b'"text"') == (None, [])
    assert read(b'{"items": [1, "s", null]}') == (None, [1, "s", None])
    assert read(b'{"header": 1, "items": {"a": 1}}') == (1, [])


# --- memory is bounded by the limits --------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"header": {}, "items": [{"name": "' + b"\xe5\xbc\xa0" * 4_000_000 + b'"}]}',
        b'{"header": {}, "items": [' + b"[" * 5_000_000 + b"]" * 5_000_000 + b"]}",
        b'{"header": {}, "items": [' + b" " * 12_000_000 + b"]}",
    ],
    ids=["12 MB name", "10 MB of nesting", "12 MB of whitespace"],
)
def test_hostile_documents_are_refused_in_bounded_memory(raw: bytes) -> None:
    body = io.BytesIO(raw)
    tracemalloc.start()
    try:
        with pytest.raises(JsonLimitError):
            scan(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # what the parser hands over for one chunk (16 KiB of events), not the body
    assert peak < 4 * 1024 * 1024, peak
