"""Builders of upstream payloads for tests (valid people, valid cards)."""

from __future__ import annotations

from typing import Any

from gateway.demo.data import Person, batch_payload, people


def persons(n: int, seed: int = 7) -> list[Person]:
    return people(seed, n)


def payload(
    no: str, ps: list[Person], *, period: str = "2026", amount: int = 10000, subsidy: str = "GDBH"
) -> dict[str, Any]:
    return batch_payload(
        no,
        subsidy_code=subsidy,
        subsidy_name="耕地地力保护补贴",
        period=period,
        persons=ps,
        amount_fen=amount,
    )
