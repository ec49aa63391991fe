"""A streaming JSON reader with limits, for bodies from outside (the upstream batch).

``ijson`` (the yajl2_c backend) lexes the bytes; this module feeds it small chunks through
its push interface and builds the values itself from the parser's events, so that every
limit holds *while reading*, before anything big is built:

- nesting depth, keys per object, characters per key and per string, digits and exponent
  of a number, and the size of one top-level value (the header, one item);
- bytes between two parser events: yajl keeps an unfinished token (a string, a number) or a
  run of whitespace in its buffer until it ends, so a 17-million-character name would be
  materialised whole before any length check. Counting the bytes fed since the parser last
  produced an event bounds that buffer (to the limit plus one chunk);
- UTF-8: raw bytes that are not UTF-8 (also CESU-style encoded surrogates ``ED A0 80``) are
  refused, and so are ``\\uD800``–``\\uDFFF`` escapes that do not form a surrogate pair. yajl
  would silently turn a lone high surrogate into ``?`` and combine a high surrogate with any
  following escape into a wrong code point (``"张\\ud800三"`` became 张 + U+10209), so the
  raw bytes are checked before they reach it;
- duplicate keys (parsers disagree on which one wins) and, at the top level of a batch,
  keys other than ``header`` and ``items``.

Every refusal is a :class:`JsonLimitError` with a machine-readable ``code``, the ``path``
of the value (``items[3].name``) and messages in Chinese and English. The reader raises
nothing else for any input.

The document shape is the batch: ``{"header": {...}, "items": [{...}, ...]}``.
:func:`scan` reads the whole document (every limit, every item) and returns the header and
the number of items; :func:`iter_items` yields the items one by one. Numbers are ``int``,
or ``decimal.Decimal`` when they have a fraction or an exponent (as ``ijson.items`` gives
them).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any, Final

import ijson

TOP_LEVEL_KEYS: Final = ("header", "items")
_STARTS: Final = frozenset({"start_map", "start_array"})
_ENDS: Final = frozenset({"end_map", "end_array"})


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Limits of one document. The defaults are those of the upstream batch."""

    max_depth: int = 16  # containers open at once (a batch needs 4)
    max_token_bytes: int = 64 * 1024  # raw bytes of one token or whitespace run
    max_string_chars: int = 4096  # characters of one string value
    max_key_chars: int = 64  # characters of one object key
    max_keys: int = 64  # keys of one object
    max_number_digits: int = 40  # significant digits of a number; also its exponent's bound
    max_value_size: int = 8 * 1024  # one item or the header: characters of keys and
    # strings, plus one per other token (about its size as compact JSON)
    max_items: int = 1_000_000
    chunk_bytes: int = 16 * 1024


DEFAULT_LIMITS: Final = JsonLimits()

# code → (Chinese, English); {limit} is the limit in force
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "malformed_json": ("请求不是合法的JSON", "request body is not valid JSON"),
    "invalid_utf8": (
        "请求含有不是UTF-8编码的字节",
        "request body contains bytes that are not valid UTF-8",
    ),
    "lone_surrogate": (
        "含有不成对的代理项转义（\\uD800–\\uDFFF），它不代表任何字符",
        "contains an unpaired surrogate escape (\\uD800-\\uDFFF), which is no character",
    ),
    "too_deep": ("JSON嵌套超过{limit}层", "JSON is nested deeper than {limit} levels"),
    "token_too_long": (
        "单个JSON值（或空白）超过{limit}字节",
        "a single JSON token (or run of whitespace) is longer than {limit} bytes",
    ),
    "string_too_long": ("字符串超过{limit}个字符", "string is longer than {limit} characters"),
    "key_too_long": ("字段名超过{limit}个字符", "field name is longer than {limit} characters"),
    "too_many_keys": ("对象的字段超过{limit}个", "object has more than {limit} fields"),
    "duplicate_key": ("字段重复出现", "field appears more than once"),
    "number_out_of_range": (
        "数字超过{limit}位或指数过大",
        "number has more than {limit} digits or too large an exponent",
    ),
    "digit_run_too_long": (
        "含有超过{limit}位的连续数字",
        "contains a run of more than {limit} digits",
    ),
    "value_too_large": (
        "批次头或单条明细超过{limit}字节",
        "the header or one item is larger than {limit} bytes",
    ),
    "unknown_field": ("未知字段", "unknown field"),
    "too_many_items": ("批次明细笔数超过上限（{limit}）", "batch has more than {limit} items"),
}


# code → the unit of its limit
UNITS: Final[dict[str, str]] = {
    "too_deep": "levels",
    "token_too_long": "bytes",
    "string_too_long": "characters",
    "key_too_long": "characters",
    "too_many_keys": "fields",
    "number_out_of_range": "digits",
    "digit_run_too_long": "digits",
    "value_too_large": "bytes",
    "too_many_items": "items",
}


class JsonLimitError(ValueError):
    """The document is refused; ``path`` names the value (empty: the document); ``limit``
    and ``unit`` the limit it passed, if it passed one."""

    def __init__(self, code: str, path: str = "", limit: int | None = None) -> None:
        zh, en = MESSAGES[code]
        self.code = code
        self.path = path
        self.limit = limit
        self.unit = UNITS.get(code) if limit is not None else None
        self.message_zh = zh.format(limit=limit)
        self.message_en = en.format(limit=limit)
        super().__init__(f"{self.message_en} (at {path or 'the document'})")


# --- checks on the raw bytes, before they reach the parser -----------------------------------

# a run of backslashes, then u and a surrogate's four hex digits
_SURROGATE = re.compile(rb"(\\+)u[dD]([89a-fA-F])[0-9a-fA-F]{2}")
_LOW_ESCAPE = re.compile(rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_HOLD_BACK = 12  # a high and a low surrogate escape: two times six bytes


def _digit_run_limit(limits: JsonLimits) -> int:
    """Longest run of ASCII digits let through to the parser. yajl2_c turns an integer
    token into an int, and CPython refuses more than ``sys.get_int_max_str_digits()``
    digits (4300): ijson 3.6 then crashes the process (a segfault after a SystemError).
    A run longer than the longest string allowed is refused in any case."""
    int_limit = sys.get_int_max_str_digits() or 4300
    return min(limits.max_string_chars, int_limit)


class _RawCheck:
    """What yajl2_c gets wrong, checked on the raw bytes first:

    - ``\\uD800``–``\\uDFFF`` escapes that are not a high-low pair (yajl turns a lone high
      surrogate into ``?`` and combines it with any following escape);
    - runs of digits too long for an int (yajl2_c crashes the process).

    ``check`` says how many bytes of the data are checked; the rest (the last few bytes,
    or an escape whose pair may be cut by the chunk border) waits for more data. The parity
    of the backslashes that end the checked bytes is carried, so that ``\\\\ud800`` (an
    escaped backslash, then text) is told apart from ``\\ud800`` across chunk borders, and
    so is the length of a run of digits.
    """

    def __init__(self, limits: JsonLimits) -> None:
        self.odd_backslashes = False  # the checked bytes end with an odd run of backslashes
        self.digits = 0  # the checked bytes end with this many digits
        self.digit_limit = _digit_run_limit(limits)
        self.long_digits = re.compile(rb"[0-9]{%d}" % (self.digit_limit + 1))

    def check(self, data: bytes, final: bool) -> tuple[int, int | None, str]:
        """(bytes checked, offset of the first bad byte or None, its code)."""
        size = len(data)
        upto = size if final else max(0, size - _HOLD_BACK)
        if b"\\" in data:
            pair_low_at = -1
            for m in _SURROGATE.finditer(data):
                start = m.start()
                if start >= upto:
                    break
                run = len(m.group(1)) + (1 if start == 0 and self.odd_backslashes else 0)
                if run % 2 == 0:
                    continue  # the backslashes escape each other: plain text follows
                escape_at = m.end(1) - 1
                if escape_at == pair_low_at:
                    continue  # the low half of the pair just seen
                if m.group(2) not in b"89abAB":
                    return upto, escape_at, "lone_surrogate"  # a low half alone
                if not final and m.end() + 6 > size:
                    upto = start  # whether its low half follows is told by the next chunk
                    break
                if not _LOW_ESCAPE.match(data, m.end()):
                    return upto, escape_at, "lone_surrogate"  # a high half alone
                pair_low_at = m.end()
                upto = max(upto, m.end() + 6)
        checked = data[:upto]
        limit = self.digit_limit
        if self.digits:
            lead = upto - len(checked.lstrip(b"0123456789"))
            if self.digits + lead > limit:
                return upto, max(0, limit - self.digits), "digit_run_too_long"
        long_run = self.long_digits.search(checked)
        if long_run is not None:
            return upto, long_run.start() + limit, "digit_run_too_long"
        if upto > 0:
            tail = upto - len(checked.rstrip(b"\\"))
            if tail == upto:
                self.odd_backslashes ^= bool(tail % 2)
            else:
                self.odd_backslashes = bool(tail % 2)
            digits = upto - len(checked.rstrip(b"0123456789"))
            self.digits = self.digits + digits if digits == upto else digits
        return upto, None, ""


# --- the reader -------------------------------------------------------------------------------


class _Reader:
    """Events in, values out, limits checked at every event."""

    def __init__(self, body: IO[bytes], limits: JsonLimits, *, keep_items: bool) -> None:
        self.body = body
        self.limits = limits
        self.keep_items = keep_items
        self.header: Any = None
        self.item_count = 0
        self.items: list[Any] = []  # finished items not yet handed out
        # the document
        self.depth = 0
        self.root: str | None = None  # "map" or "other" once the first event is seen
        self.root_keys: set[str] = set()
        self.root_key: str | None = None  # the top-level key whose value is being read
        self.in_items = False  # directly inside the top-level items array
        # the value being built (the header, one item, another top-level value)
        self.stack: list[Any] = []  # open containers
        self.keys: list[str | None] = []  # per open container: the pending key (objects)
        self.size = 0
        self.number_bound = 10**limits.max_number_digits

    # path of the value being read, for errors
    def path(self) -> str:
        parts: list[str] = []
        if self.root_key is not None:
            parts.append(self.root_key)
            if self.in_items or (self.root_key == "items" and self.stack):
                parts.append(f"[{self.item_count}]")
        for container, key in zip(self.stack, self.keys, strict=True):
            if isinstance(container, dict):
                if key is not None:
                    parts.append(f".{key}")
            else:
                parts.append(f"[{len(container)}]")
        return "".join(parts)

    def run(self) -> Iterator[list[Any]]:
        """Read the document; yields the items finished so far (when kept) after every
        chunk."""
        limits = self.limits
        events = ijson.sendable_list()
        coro = ijson.basic_parse_coro(events)
        raw = _RawCheck(limits)
        pending = b""
        quiet = 0  # bytes fed since the parser last produced an event
        while True:
            chunk = self.body.read(limits.chunk_bytes)
            final = not chunk
            data = pending + chunk
            checked, bad, code = raw.check(data, final)
            if bad is not None:
                self._feed(coro, events, data[:bad])
                raise JsonLimitError(
                    code, self.path(), raw.digit_limit if code != "lone_surrogate" else None
                )
            fed = self._feed(coro, events, data[:checked])
            pending = data[checked:]
            quiet = 0 if fed else quiet + checked
            if quiet > limits.max_token_bytes:
                raise JsonLimitError("token_too_long", self.path(), limits.max_token_bytes)
            if self.items:
                yield self.items
                self.items = []
            if final:
                break
        try:
            coro.close()
        except Exception as exc:
            self._take(events)
            raise self._parser_error(exc) from None
        self._take(events)
        if self.items:
            yield self.items
            self.items = []

    def _feed(self, coro: Any, events: list[Any], data: bytes) -> bool:
        """Feed bytes to the parser and take its events; whether there were any."""
        if data:
            try:
                coro.send(data)
            except Exception as exc:
                self._take(events)
                raise self._parser_error(exc) from None
        produced = bool(events)
        self._take(events)
        return produced

    def _parser_error(self, exc: Exception) -> JsonLimitError:
        if isinstance(exc, JsonLimitError):
            return exc
        if isinstance(exc, UnicodeDecodeError):
            return JsonLimitError("invalid_utf8", self.path())
        if isinstance(exc, ijson.JSONError):
            return JsonLimitError("malformed_json", self.path())
        if isinstance(exc, SystemError | ValueError | OverflowError):
            # yajl2_c cannot build an int of more than sys.get_int_max_str_digits() digits
            # (a SystemError whose context is that ValueError)
            return JsonLimitError("number_out_of_range", self.path(), self.limits.max_number_digits)
        raise exc

    def _take(self, events: list[Any]) -> None:
        """Handle the parser's events. The common case (inside a value being built: keys,
        scalars, nested containers) is inlined here with the counters in locals; the top
        level and every refusal go through the methods below."""
        stack = self.stack
        keys = self.keys
        limits = self.limits
        max_key = limits.max_key_chars
        max_keys = limits.max_keys
        max_string = limits.max_string_chars
        max_size = limits.max_value_size
        max_depth = limits.max_depth
        bound = self.number_bound
        size = self.size
        depth = self.depth
        try:
            for event, value in events:
                if not stack:
                    self.size, self.depth = size, depth
                    self._event(event, value)
                    size, depth = self.size, self.depth
                    continue
                container = stack[-1]
                if event == "map_key":
                    if len(value) > max_key or value in container or len(container) >= max_keys:
                        self._check_key(value, container)
                    size += len(value) + 1
                    keys[-1] = value
                    continue
                item = value
                if event == "string":
                    if len(value) > max_string:
                        self._scalar_checks(event, value)
                    size += len(value) + 1
                elif event == "number":
                    if type(value) is not int or not -bound < value < bound:
                        self._scalar_checks(event, value)
                    size += 1
                elif event in _STARTS:
                    if depth >= max_depth:
                        self.depth = depth
                        self._deeper()
                    depth += 1
                    size += 1
                    stack.append({} if event == "start_map" else [])
                    keys.append(None)
                    continue
                elif event in _ENDS:
                    stack.pop()
                    keys.pop()
                    depth -= 1
                    if not stack:
                        self.size, self.depth = size, depth
                        self._add(container)
                        continue
                    item = container
                    container = stack[-1]
                else:  # boolean, null
                    size += 1
                if size > max_size:
                    self.size = size
                    self._grow(0)
                key = keys[-1]
                if key is None:
                    container.append(item)
                else:
                    container[key] = item
                    keys[-1] = None
        finally:
            self.size, self.depth = size, depth
            del events[:]

    # --- one event ---------------------------------------------------------------------------

    def _event(self, event: str, value: Any) -> None:
        if self.stack:
            self._build(event, value)
            return
        depth = self.depth
        if depth == 0:
            self._root(event)
            return
        if self.root != "map":
            self._skip(event, value)
            return
        if self.in_items:
            # directly in the items array: each element is one item
            if event == "end_array":
                self.in_items = False
                self.root_key = None
                self.depth -= 1
            elif event in ("start_map", "start_array"):
                self._start_value(event)
            else:
                self._scalar_checks(event, value)
                self._finish_item(value)
            return
        # depth 1: directly in the top-level object
        if event == "map_key":
            self._check_key(value, self.root_keys)
            if value not in TOP_LEVEL_KEYS:
                raise JsonLimitError("unknown_field", value)
            self.root_keys.add(value)
            self.root_key = value
        elif event == "end_map":
            self.depth = 0
        elif event == "start_array" and self.root_key == "items":
            self.in_items = True
            self.depth += 1
        elif event in ("start_map", "start_array"):
            self._start_value(event)
        else:
            self._scalar_checks(event, value)
            self._finish_root_value(value)

    def _root(self, event: str) -> None:
        self.depth = 1 if event in ("start_map", "start_array") else 0
        self.root = "map" if event == "start_map" else "other"

    def _skip(self, event: str, value: Any) -> None:
        """A document that is not an object: only its limits are checked."""
        if event in ("start_map", "start_array"):
            self._deeper()
        elif event in ("end_map", "end_array"):
            self.depth -= 1
        elif event == "map_key":
            self._check_key(value, None)
        else:
            self._scalar_checks(event, value)

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise JsonLimitError("too_deep", self.path(), self.limits.max_depth)

    def _start_value(self, event: str) -> None:
        self.size = 1
        self._open(event)

    def _open(self, event: str) -> None:
        self._deeper()
        self.stack.append({} if event == "start_map" else [])
        self.keys.append(None)

    def _grow(self, n: int) -> None:
        self.size += n
        if self.size > self.limits.max_value_size:
            raise JsonLimitError("value_too_large", self.path(), self.limits.max_value_size)

    def _check_key(self, key: str, seen: Any) -> None:
        if len(key) > self.limits.max_key_chars:
            raise JsonLimitError("key_too_long", self.path(), self.limits.max_key_chars)
        if seen is not None:
            if key in seen:
                path = self.path()
                raise JsonLimitError("duplicate_key", f"{path}.{key}" if path else key)
            if len(seen) >= self.limits.max_keys:
                raise JsonLimitError("too_many_keys", self.path(), self.limits.max_keys)

    def _scalar_checks(self, event: str, value: Any) -> None:
        limits = self.limits
        if event == "string":
            if len(value) > limits.max_string_chars:
                raise JsonLimitError("string_too_long", self.path(), limits.max_string_chars)
        elif event == "number":
            digits = limits.max_number_digits
            if isinstance(value, Decimal):
                sign_digits_exp = value.as_tuple()
                exponent = sign_digits_exp.exponent
                if (
                    not isinstance(exponent, int)
                    or len(sign_digits_exp.digits) > digits
                    or abs(exponent) > digits
                ):
                    raise JsonLimitError("number_out_of_range", self.path(), digits)
            elif not -self.number_bound < value < self.number_bound:
                raise JsonLimitError("number_out_of_range", self.path(), digits)

    def _build(self, event: str, value: Any) -> None:
        container = self.stack[-1]
        if event == "map_key":
            self._check_key(value, container)
            self._grow(len(value) + 1)
            self.keys[-1] = value
            return
        if event in ("start_map", "start_array"):
            self._grow(1)
            self._open(event)
            return
        if event in ("end_map", "end_array"):
            self.stack.pop()
            self.keys.pop()
            self.depth -= 1
            self._add(container)
            return
        self._scalar_checks(event, value)
        self._grow(len(value) + 1 if event == "string" else 1)
        self._add(value)

    def _add(self, value: Any) -> None:
        """A finished value: into its container, or (at the top) handed on."""
        if self.stack:
            parent = self.stack[-1]
            if isinstance(parent, dict):
                parent[self.keys[-1]] = value
                self.keys[-1] = None
            else:
                parent.append(value)
        elif self.in_items:
            self._finish_item(value)
        else:
            self._finish_root_value(value)

    def _finish_item(self, item: Any) -> None:
        if self.item_count >= self.limits.max_items:
            raise JsonLimitError("too_many_items", "items", self.limits.max_items)
        self.item_count += 1
        if self.keep_items:
            self.items.append(item)

    def _finish_root_value(self, value: Any) -> None:
        if self.root_key == "header":
            self.header = value
        self.root_key = None


@dataclass(frozen=True, slots=True)
class Scan:
    header: Any  # the "header" value (None when the document has none)
    item_count: int


def scan(body: IO[bytes], limits: JsonLimits = DEFAULT_LIMITS) -> Scan:
    """Read the whole document from the start: every limit, every item (not kept)."""
    body.seek(0)
    reader = _Reader(body, limits, keep_items=False)
    for _ in reader.run():
        pass
    return Scan(reader.header, reader.item_count)


def iter_items(body: IO[bytes], limits: JsonLimits = DEFAULT_LIMITS) -> Iterator[Any]:
    """The elements of the top-level ``items`` array, in order, one at a time."""
    body.seek(0)
    reader = _Reader(body, limits, keep_items=True)
    for batch in reader.run():
        yield from batch
