"""A seeded fault schedule: which misbehaviour the mock bank shows, and when.

Configuration (TOML, the ``[faults]`` table of the bank config)::

    [faults]
    seed = 42                      # default 0
    delay_results_seconds = 30.0   # delay_results: result files this long after taking
    bounce_after_seconds = 2.0     # bounce_after_paid (files): return this long after the
                                   # result file was written ([api] has its own setting)
    republish_after_seconds = 2.0  # republish_result_file, tampered_result_file: the later
                                   # version this long after the result file was written

    [[faults.rules]]
    kind = "drop_mid_upload"       # one of KINDS
    probability = 0.5              # fire with this probability each time the hook is reached
    max = 2                        # optional: at most this many times in total (this rule)

    [[faults.rules]]
    kind = "lose_rename_reply"
    nth = [1, 3]                   # fire the 1st and 3rd time this kind's hook is reached

A rule gives ``probability`` **or** ``nth`` (not both); a rule with neither fires every time
its hook is reached (bounded by ``max``). Several rules may name the same kind: the hook
fires when any of them does.

Each place in the bank that can misbehave (a *hook point*) asks ``schedule.should(kind)``
once each time it is reached. The answer depends only on the seed and on how many times that
kind's hook was reached before: every kind draws from its own ``random.Random(f"{seed}:{kind}")``
stream, one draw per probability rule per call, so kinds never perturb each other and the
same seed with the same sequence of calls per kind gives the same faults. ``fired()``
lists what fired, as ``(kind, n)`` with ``n`` the 1-based count of that kind's hook point.

Thread-safe: hooks are reached from the SFTP connection threads, the HTTP API and the
processor at once.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

#: Every kind of fault, with where it is hooked. ``docs/mock_bank.md`` describes each one.
KINDS: Final[frozenset[str]] = frozenset(
    {
        # SFTP server
        "refuse_connection",  # the TCP connection is closed right after accept
        "drop_mid_upload",  # the channel is closed while a client writes a file
        "lose_rename_reply",  # the rename is done, the connection dropped before the reply
        # HTTPS API
        "timeout_after_apply",
        "error_5xx_before_apply",
        "error_5xx_after_apply",
        "rate_limit",
        "duplicate_callback",
        "out_of_order_callback",
        "forged_callback",
        "replayed_callback",
        # HTTPS API (and fw-gb18030-v1 ACT_ files): the account's movements disagree with
        # the reported results
        "movement_missing_debit",  # a paid item is reported paid, its debit never booked
        "movement_double_debit",  # a paid item's debit is booked twice
        "silent_return",  # a paid item comes back (退票) on the account only, unannounced
        # processor (files)
        "delay_results",
        "malformed_result_file",
        "partial_result_file",
        "bounce_after_paid",
        "restart",
        # processor (files): a result file published again under its name, with its size
        "tampered_result_file",  # first a tampered copy (genuine .sig), later the genuine
        "republish_result_file",  # later a new signed version: one paid line now failed
    }
)


class FaultConfigError(ValueError):
    """The ``[faults]`` table is malformed."""


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One ``[[faults.rules]]`` entry."""

    kind: str
    probability: float | None = None
    nth: tuple[int, ...] = ()
    max: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultConfigError(f"unknown fault kind {self.kind!r}; known: {sorted(KINDS)}")
        if self.probability is not None and self.nth:
            raise FaultConfigError(f"{self.kind}: give probability or nth, not both")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise FaultConfigError(f"{self.kind}: probability must be within 0..1")
        if any(n < 1 for n in self.nth):
            raise FaultConfigError(f"{self.kind}: nth counts from 1")
        if self.max is not None and self.max < 0:
            raise FaultConfigError(f"{self.kind}: max must be >= 0")


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    """The decoded ``[faults]`` table."""

    seed: int = 0
    rules: tuple[FaultRule, ...] = field(default_factory=tuple)
    delay_results_seconds: float = 30.0
    bounce_after_seconds: float = 2.0
    republish_after_seconds: float = 2.0


_FAULTS_KEYS: Final = {
    "seed",
    "rules",
    "delay_results_seconds",
    "bounce_after_seconds",
    "republish_after_seconds",
}
_RULE_KEYS: Final = {"kind", "probability", "nth", "max"}


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultConfigError(f"{what} must be an integer")
    return value


def _seconds(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultConfigError(f"[faults] {key} must be a number of seconds >= 0")
    return float(value)


def parse_faults_config(data: Mapping[str, Any] | None) -> FaultsConfig:
    """Validate a decoded ``[faults]`` TOML table (``None``: no faults)."""
    if data is None:
        return FaultsConfig()
    if not isinstance(data, Mapping):
        raise FaultConfigError("[faults] must be a table")
    unknown = set(data) - _FAULTS_KEYS
    if unknown:
        raise FaultConfigError(f"[faults]: unknown keys {sorted(unknown)}")
    seed = _int(data.get("seed", 0), "[faults] seed")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise FaultConfigError("[faults] rules must be an array of tables ([[faults.rules]])")
    rules: list[FaultRule] = []
    for index, raw in enumerate(raw_rules):
        where = f"[[faults.rules]] #{index}"
        if not isinstance(raw, Mapping):
            raise FaultConfigError(f"{where}: must be a table")
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise FaultConfigError(f"{where}: unknown keys {sorted(unknown)}")
        kind = raw.get("kind")
        if not isinstance(kind, str):
            raise FaultConfigError(f"{where}: kind is required")
        probability = raw.get("probability")
        if probability is not None and (
            isinstance(probability, bool) or not isinstance(probability, int | float)
        ):
            raise FaultConfigError(f"{where}: probability must be a number")
        nth_raw = raw.get("nth", [])
        if not isinstance(nth_raw, list):
            raise FaultConfigError(f"{where}: nth must be a list of integers")
        nth = tuple(_int(n, f"{where}: nth") for n in nth_raw)
        max_raw = raw.get("max")
        try:
            rules.append(
                FaultRule(
                    kind=kind,
                    probability=None if probability is None else float(probability),
                    nth=nth,
                    max=None if max_raw is None else _int(max_raw, f"{where}: max"),
                )
            )
        except FaultConfigError as exc:
            raise FaultConfigError(f"{where}: {exc}") from exc
    return FaultsConfig(
        seed=seed,
        rules=tuple(rules),
        delay_results_seconds=_seconds(data, "delay_results_seconds", 30.0),
        bounce_after_seconds=_seconds(data, "bounce_after_seconds", 2.0),
        republish_after_seconds=_seconds(data, "republish_after_seconds", 2.0),
    )


@runtime_checkable
class HasFaults(Protocol):
    """Anything with a ``faults`` attribute, e.g. the bank's ``BankConfig``."""

    @property
    def faults(self) -> FaultsConfig: ...


class FaultSchedule:
    """Decides, deterministically for a seed, whether a fault fires at a hook point."""

    def __init__(
        self,
        seed: int = 0,
        rules: Iterable[FaultRule] = (),
        *,
        delay_results_seconds: float = 30.0,
        bounce_after_seconds: float = 2.0,
        republish_after_seconds: float = 2.0,
    ) -> None:
        self.seed = seed
        self.rules: tuple[FaultRule, ...] = tuple(rules)
        self.delay_results_seconds = delay_results_seconds
        self.bounce_after_seconds = bounce_after_seconds
        self.republish_after_seconds = republish_after_seconds
        self._lock = threading.Lock()
        self._by_kind: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            self._by_kind.setdefault(rule.kind, []).append(index)
        self._streams = {kind: random.Random(f"{seed}:{kind}") for kind in self._by_kind}
        self._reached: dict[str, int] = {}
        self._rule_fired = [0] * len(self.rules)
        self._fired: list[tuple[str, int]] = []

    @classmethod
    def from_config(cls, cfg: FaultsConfig | HasFaults | Mapping[str, Any] | None) -> FaultSchedule:
        """From a ``FaultsConfig``, a bank config (its ``faults``), a decoded ``[faults]``
        table, or ``None`` (a schedule that never fires)."""
        if cfg is None:
            return cls()
        if isinstance(cfg, FaultsConfig):
            faults = cfg
        elif isinstance(cfg, Mapping):
            faults = parse_faults_config(cfg)
        else:
            faults = cfg.faults
        return cls(
            faults.seed,
            faults.rules,
            delay_results_seconds=faults.delay_results_seconds,
            bounce_after_seconds=faults.bounce_after_seconds,
            republish_after_seconds=faults.republish_after_seconds,
        )

    @classmethod
    def never(cls) -> FaultSchedule:
        """A schedule without rules."""
        return cls()

    def configured(self, kind: str) -> bool:
        """Whether any rule names ``kind`` (hooks may skip work when none does)."""
        _check_kind(kind)
        return kind in self._by_kind

    def should(self, kind: str) -> bool:
        """Count one arrival at ``kind``'s hook point; True when the fault fires now."""
        _check_kind(kind)
        with self._lock:
            n = self._reached[kind] = self._reached.get(kind, 0) + 1
            indexes = self._by_kind.get(kind)
            if not indexes:
                return False
            stream = self._streams[kind]
            fire = False
            for index in indexes:
                rule = self.rules[index]
                if rule.probability is not None:
                    hit = stream.random() < rule.probability  # always draw: stable stream
                elif rule.nth:
                    hit = n in rule.nth
                else:
                    hit = True
                if hit and rule.max is not None and self._rule_fired[index] >= rule.max:
                    hit = False
                if hit and not fire:
                    # the first rule that hits is charged; the others keep their budget
                    self._rule_fired[index] += 1
                    fire = True
            if fire:
                self._fired.append((kind, n))
            return fire

    def fired(self, kind: str | None = None) -> list[tuple[str, int]]:
        """What fired so far, in order, as ``(kind, n)``; only ``kind`` when given."""
        with self._lock:
            return [f for f in self._fired if kind is None or f[0] == kind]

    def reached(self, kind: str) -> int:
        """How many times ``kind``'s hook point was reached."""
        _check_kind(kind)
        with self._lock:
            return self._reached.get(kind, 0)


# --- faulty result files (malformed_result_file, partial_result_file) ---------------------

_CRLF: Final = b"\r\n"


def malformed_file(data: bytes) -> bytes:
    """A copy of a result file that does not parse. XML (starts with ``<?xml``): the closing
    ``</Document>`` tag misspelled, so it is not well-formed. Fixed-width: the first record
    one byte short (its last byte removed), so no record layout fits."""
    if data.startswith(b"<?xml"):
        closing = b"</Document>"
        index = data.rfind(closing)
        if index >= 0:
            return data[:index] + b"</Documnet>" + data[index + len(closing) :]
        return data + b"<"
    end = data.find(_CRLF)
    if end <= 0:
        return data[1:]
    return data[: end - 1] + data[end:]


def truncated_file(data: bytes) -> bytes:
    """The first part of a result file, as if the writer stopped half way. XML: the first
    half of the bytes, cut between UTF-8 characters. Fixed-width: whole records only — the
    header and the first half of the rest, without the trailer (every remaining line is
    well-formed: only the structure check catches it)."""
    if data.startswith(b"<?xml"):
        cut = len(data) // 2
        while cut > 0 and (data[cut] & 0xC0) == 0x80:  # a UTF-8 continuation byte
            cut -= 1
        return data[:cut]
    records = data.split(_CRLF)
    if records and records[-1] == b"":
        records.pop()
    keep = 1 + (len(records) - 1) // 2
    return b"".join(record + _CRLF for record in records[:keep])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}")


__all__: Sequence[str] = [
    "KINDS",
    "FaultConfigError",
    "FaultRule",
    "FaultSchedule",
    "FaultsConfig",
    "HasFaults",
    "malformed_file",
    "parse_faults_config",
    "truncated_file",
]
