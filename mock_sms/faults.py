"""The centre's seeded fault schedule: which misbehaviour it shows, and when.

Configuration (the ``[faults]`` table)::

    [faults]
    seed = 7
    invalid_number_pattern = "^170"    # numbers matching it are refused as invalid
    undeliverable_pattern = "^1390000" # accepted, then a failed delivery report

    [[faults.rules]]
    kind = "timeout_after_accept"      # one of KINDS
    nth = [2]                          # the 2nd time this kind's hook is reached
    # probability = 0.3                # or: fire with this probability each time
    # max = 1                          # at most this many times in total
    # provider = "aliyun-style"        # optional: only for this provider's API

Each hook point asks ``should(kind, provider)`` once per arrival. Every kind draws from its
own ``random.Random(f"{seed}:{kind}")`` stream (one draw per probability rule per arrival,
whether or not the rule's provider matches), so kinds never perturb each other and the same
seed with the same sequence of requests gives the same faults. Thread-safe.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

#: Every kind, with what it does (docs/formats/sms-v1.md, "The mock SMS centre").
KINDS: Final[frozenset[str]] = frozenset(
    {
        "fail",  # a technical refusal ("service busy") before taking the message
        "throttle",  # a throttling refusal (with Retry-After) before taking the message
        "timeout_after_accept",  # take the message, then hold the answer past the timeout
        "receipt_late",  # the delivery report comes late_receipt_seconds later
        "receipt_twice",  # the receipt is pushed twice
        "receipt_lost",  # the receipt is never pushed (the query still knows)
        "forged_receipt",  # a copy with a wrong signature is pushed before the real one
    }
)
PROVIDERS: Final = ("aliyun-style", "tencent-style")


class FaultConfigError(ValueError):
    """The ``[faults]`` table is malformed."""


@dataclass(frozen=True, slots=True)
class FaultRule:
    kind: str
    probability: float | None = None
    nth: tuple[int, ...] = ()
    max: int | None = None
    provider: str | None = None

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
        if self.provider is not None and self.provider not in PROVIDERS:
            raise FaultConfigError(f"{self.kind}: provider must be one of {PROVIDERS}")


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    seed: int = 0
    rules: tuple[FaultRule, ...] = ()
    invalid_number_pattern: str | None = None
    undeliverable_pattern: str | None = None
    compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in ("invalid_number_pattern", "undeliverable_pattern"):
            pattern = getattr(self, name)
            if pattern is None:
                continue
            try:
                self.compiled[name] = re.compile(pattern)
            except re.error as exc:
                raise FaultConfigError(f"[faults] {name}: {exc}") from exc

    def invalid_number(self, phone: str) -> bool:
        pattern = self.compiled.get("invalid_number_pattern")
        return pattern is not None and pattern.search(phone) is not None

    def undeliverable(self, phone: str) -> bool:
        pattern = self.compiled.get("undeliverable_pattern")
        return pattern is not None and pattern.search(phone) is not None


_KEYS: Final = {"seed", "rules", "invalid_number_pattern", "undeliverable_pattern"}
_RULE_KEYS: Final = {"kind", "probability", "nth", "max", "provider"}


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultConfigError(f"{what} must be an integer")
    return value


def _optional_str(data: Mapping[str, Any], key: str, what: str) -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise FaultConfigError(f"{what} {key} must be a non-empty string")
    return value


def parse_faults(data: Mapping[str, Any] | None) -> FaultsConfig:
    """Validate a decoded ``[faults]`` table (None: no faults)."""
    if data is None:
        return FaultsConfig()
    if not isinstance(data, Mapping):
        raise FaultConfigError("[faults] must be a table")
    unknown = set(data) - _KEYS
    if unknown:
        raise FaultConfigError(f"[faults]: unknown keys {sorted(unknown)}")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise FaultConfigError("[faults] rules must be an array of tables")
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
        nth = raw.get("nth", [])
        if not isinstance(nth, list):
            raise FaultConfigError(f"{where}: nth must be a list of integers")
        max_ = raw.get("max")
        try:
            rules.append(
                FaultRule(
                    kind=kind,
                    probability=None if probability is None else float(probability),
                    nth=tuple(_int(n, f"{where}: nth") for n in nth),
                    max=None if max_ is None else _int(max_, f"{where}: max"),
                    provider=_optional_str(raw, "provider", where),
                )
            )
        except FaultConfigError as exc:
            raise FaultConfigError(f"{where}: {exc}") from exc
    return FaultsConfig(
        seed=_int(data.get("seed", 0), "[faults] seed"),
        rules=tuple(rules),
        invalid_number_pattern=_optional_str(data, "invalid_number_pattern", "[faults]"),
        undeliverable_pattern=_optional_str(data, "undeliverable_pattern", "[faults]"),
    )


class FaultSchedule:
    """Decides, deterministically for a seed, whether a fault fires at a hook point."""

    def __init__(self, config: FaultsConfig | None = None) -> None:
        self.config = config or FaultsConfig()
        self._lock = threading.Lock()
        self._by_kind: dict[str, list[int]] = {}
        for index, rule in enumerate(self.config.rules):
            self._by_kind.setdefault(rule.kind, []).append(index)
        self._streams = {
            kind: random.Random(f"{self.config.seed}:{kind}") for kind in self._by_kind
        }
        self._reached: dict[str, int] = {}
        self._rule_fired = [0] * len(self.config.rules)
        self._fired: list[tuple[str, int]] = []

    def should(self, kind: str, provider: str) -> bool:
        """Count one arrival at ``kind``'s hook point; True when the fault fires now."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            n = self._reached[kind] = self._reached.get(kind, 0) + 1
            fire = False
            for index in self._by_kind.get(kind, ()):
                rule = self.config.rules[index]
                if rule.probability is not None:
                    hit = self._streams[kind].random() < rule.probability  # always draw
                elif rule.nth:
                    hit = n in rule.nth
                else:
                    hit = True
                if rule.provider is not None and rule.provider != provider:
                    hit = False
                if hit and rule.max is not None and self._rule_fired[index] >= rule.max:
                    hit = False
                if hit and not fire:
                    self._rule_fired[index] += 1
                    fire = True
            if fire:
                self._fired.append((kind, n))
            return fire

    def fired(self, kind: str | None = None) -> list[tuple[str, int]]:
        """What fired so far, in order, as ``(kind, n)``."""
        with self._lock:
            return [f for f in self._fired if kind is None or f[0] == kind]
