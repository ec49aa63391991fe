"""The self-check tests' payments: one case of each finding and a near miss of each,
through the real intake and the real transition code (no bank needed)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, replace

from sqlalchemy import update

from gateway.batches.models import Batch
from gateway.context import Context
from gateway.demo.data import Person, id_number_born
from gateway.kit.clock import utcnow
from gateway.kit.identity import luhn_check_digit
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, fail, item, pay

MISMATCH = ("name_mismatch", ("E102", "户名不符"))


def person(name: str, birth: dt.date, n: int) -> Person:
    """Someone born on ``birth`` with a card of their own (``n`` makes it unique)."""
    partial = f"621799{n:012d}"
    return Person(
        name=name,
        id_number=id_number_born(birth, random.Random(n)),
        account_no=partial + luhn_check_digit(partial),
        phone=f"139{n:08d}",
        bank_status="active",
    )


def new_card(p: Person, n: int) -> Person:
    partial = f"622848{n:012d}"
    return replace(p, account_no=partial + luhn_check_digit(partial))


@dataclass(frozen=True)
class Planted:
    people: list[Person]  # every person of the scenario (for the raw-data search)
    shared_account: list[int]  # item ids of each planted finding
    duplicate_claim: list[int]
    repeated_name_mismatch: list[int]
    account_changed: list[int]
    implausible_age: list[int]
    aged_80: Person
    old_account_change: Person


def ids(ctx: Context, *refs: tuple[str, int]) -> list[int]:
    return sorted(item(ctx, no, seq).id for no, seq in refs)


def plant(ctx: Context) -> Planted:
    """Batches (region in brackets) and what they plant:

    SC-0 (101) 耕地 GDBH 2025, received 200 days ago: ps5, ps7 paid
    SC-1 (101) 耕地 GDBH 2026: ps0..ps4, ps7, ps8; ps3 and ps4 fail 户名不符, the rest paid
    SC-2 (103) 耕地 GDDL 2026: ps1 paid (duplicate), ps6 on ps0's card fails 户名不符
           (shared account), ps8 fails (not paid twice)
    SC-3 (101) 低保 NCDB 202612: ps2 new card paid (account changed), ps3 fails 户名不符
           again (repeated), ps5 new card paid (its previous payment is 200 days old)
    SC-4 (102) 高龄津贴 GLJT 202611: born 1990 (implausible), aged exactly 80, aged 96
    SC-5 (101) 低保 NCDB 202611: ps9 on ps0's card, never sent (does not count)
    """
    ps = persons(10, seed=61)
    young = person("赵小年", dt.date(1990, 5, 5), 1)
    aged_80 = person("钱满八", dt.date(1946, 11, 30), 2)
    aged_96 = person("孙九六", dt.date(1930, 1, 1), 3)
    batch(ctx, "SC-0", [ps[5], ps[7]], period="2025")
    pay(ctx, "SC-0", [1, 2])
    with ctx.sessions.begin() as s:
        s.execute(
            update(Batch)
            .where(Batch.batch_no == "SC-0")
            .values(received_at=utcnow() - dt.timedelta(days=200))
        )
    batch(ctx, "SC-1", [ps[0], ps[1], ps[2], ps[3], ps[4], ps[7], ps[8]])
    pay(ctx, "SC-1", [1, 2, 3, 6, 7])
    fail(ctx, "SC-1", [4, 5], *MISMATCH)
    borrower = replace(ps[6], account_no=ps[0].account_no)
    batch(ctx, "SC-2", [ps[1], borrower, ps[8]], region="430621103", subsidy="GDDL")
    pay(ctx, "SC-2", [1])
    fail(ctx, "SC-2", [2], *MISMATCH)
    fail(ctx, "SC-2", [3])
    allowance = {"subsidy": "NCDB", "subsidy_name": "农村最低生活保障金"}
    moved, old_move = new_card(ps[2], 1), new_card(ps[5], 2)
    batch(ctx, "SC-3", [moved, ps[3], old_move], period="202612", **allowance)
    pay(ctx, "SC-3", [1, 3])
    fail(ctx, "SC-3", [2], *MISMATCH)
    elderly = {"subsidy": "GLJT", "subsidy_name": "高龄津贴", "period": "202611"}
    batch(ctx, "SC-4", [young, aged_80, aged_96], region="430621102", **elderly)
    pay(ctx, "SC-4", [1, 2, 3])
    batch(ctx, "SC-5", [replace(ps[9], account_no=ps[0].account_no)], period="202611", **allowance)
    return Planted(
        people=[*ps, young, aged_80, aged_96, moved, old_move],
        shared_account=ids(ctx, ("SC-1", 1), ("SC-2", 2)),
        duplicate_claim=ids(ctx, ("SC-1", 2), ("SC-2", 1)),
        repeated_name_mismatch=ids(ctx, ("SC-1", 4), ("SC-3", 2)),
        account_changed=ids(ctx, ("SC-1", 3), ("SC-3", 1)),
        implausible_age=ids(ctx, ("SC-4", 1)),
        aged_80=aged_80,
        old_account_change=ps[5],
    )
