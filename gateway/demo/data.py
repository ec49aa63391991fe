"""Deterministic demo data: beneficiaries of Yueyang County (岳阳县) with valid ID numbers,
card numbers and phones, rare-character and minority names, and the mock bank's accounts
with a few planted faults (unknown account, name mismatch, frozen, closed).

Birth dates fit the subsidies (the elderly allowance's people are over 80) except for one
planted case, and a second round of payments (``round_two``) plants one case of each other
self-check finding: the same subsidy paid twice under another code, a second name mismatch
on one account, an account changed since the first round, and one card used by two people."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from gateway.kit.identity import id_check_char, luhn_check_digit

SURNAMES = "王李张刘陈杨黄赵周吴徐孙马胡朱郭何罗高林彭谭邓易廖"
GIVEN = "秋菊建国桂英德华淑芬志强玉兰红梅春生冬梅海燕福军明秀小平国庆金花"
RARE_NAMES = ["刘䶮", "王𬎆", "李龑", "陈堃", "张喆"]
MINORITY_NAMES = ["阿依古丽·买买提", "热依拉·艾尔肯"]
TOWNSHIPS = ["430621101", "430621102", "430621103"]
# the people of the elderly allowance (高龄津贴) batch are born 1945 or earlier …
ELDERLY = range(40, 60)
# … but this one, born after 1980 (the self-check's implausible age)
TOO_YOUNG_FOR_ELDERLY = 45


@dataclass(frozen=True)
class Person:
    name: str
    id_number: str
    account_no: str
    phone: str
    bank_status: str  # active | frozen | closed | missing | name_mismatch


def id_number_born(birth: dt.date, rng: random.Random) -> str:
    """A valid ID number of Yueyang County for someone born on ``birth``."""
    first17 = f"430621{birth:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return first17 + id_check_char(first17)


def _id_number(rng: random.Random, years: tuple[int, int] = (1946, 2000)) -> str:
    first = dt.date(years[0], 1, 1)
    span = (dt.date(years[1], 12, 31) - first).days + 1
    return id_number_born(first + dt.timedelta(days=rng.randrange(0, span)), rng)


def _birth_years(i: int) -> tuple[int, int]:
    if i == TOO_YOUNG_FOR_ELDERLY:
        return (1981, 1995)
    if i in ELDERLY:
        return (1925, 1945)
    return (1946, 2000)


def _card(rng: random.Random) -> str:
    partial = "621799" + "".join(str(rng.randrange(10)) for _ in range(12))
    return partial + luhn_check_digit(partial)


def people(seed: int, n: int) -> list[Person]:
    rng = random.Random(seed)
    names = list(RARE_NAMES) + list(MINORITY_NAMES)
    while len(names) < n:
        g = GIVEN[rng.randrange(0, len(GIVEN) - 1)]
        g2 = GIVEN[rng.randrange(0, len(GIVEN))] if rng.random() < 0.6 else ""
        names.append(SURNAMES[rng.randrange(len(SURNAMES))] + g + g2)
    statuses = ["active"] * n
    # planted failures, one of each kind at least for every bank's share of the people
    planted = {
        9: "missing",
        17: "name_mismatch",
        23: "frozen",
        31: "closed",
        38: "missing",
        44: "frozen",
        48: "closed",
        52: "name_mismatch",
        55: "missing",
        62: "missing",
        67: "name_mismatch",
        71: "frozen",
        75: "closed",
    }
    for i, status in planted.items():
        if i < n:
            statuses[i] = status
    out: list[Person] = []
    seen_ids: set[str] = set()
    seen_cards: set[str] = set()
    for i in range(n):
        idn = _id_number(rng, _birth_years(i))
        while idn in seen_ids:
            idn = _id_number(rng, _birth_years(i))
        seen_ids.add(idn)
        card = _card(rng)
        while card in seen_cards:
            card = _card(rng)
        seen_cards.add(card)
        out.append(
            Person(
                name=names[i],
                id_number=idn,
                account_no=card,
                phone=f"13{rng.randrange(0, 10)}{rng.randrange(0, 10**8):08d}",
                bank_status=statuses[i],
            )
        )
    return out


@dataclass(frozen=True)
class RoundTwo:
    """The second round's people, each planting one self-check finding (indexes are into
    the first round's people; see ``gateway.demo.runner``)."""

    duplicate: Person  # paid 耕地地力保护补贴 2026 already; now again under another code
    mismatch_again: Person  # failed for 户名不符; again, same card, same name
    new_card: Person  # paid in the first round; now with a new card the bank knows
    borrower: Person  # someone new, paid onto another person's card (the bank refuses it)

    @property
    def new_accounts(self) -> list[dict[str, str]]:
        """What the bank must know besides the first round's accounts."""
        p = self.new_card
        return [
            {
                "account_no": p.account_no,
                "name": p.name,
                "id_number": p.id_number,
                "status": "active",
            }
        ]

    @property
    def people(self) -> list[Person]:
        return [self.duplicate, self.mismatch_again, self.new_card, self.borrower]


def round_two(seed: int, persons: list[Person]) -> RoundTwo:
    """The second round (needs the first round's 80 people, from ``people(seed, 80)``)."""
    rng = random.Random(seed + 2)
    ids = {p.id_number for p in persons}
    cards = {p.account_no for p in persons}
    card = _card(rng)
    while card in cards:
        card = _card(rng)
    idn = _id_number(rng)
    while idn in ids:
        idn = _id_number(rng)
    lender = persons[2]
    borrower = Person(
        name="周" + GIVEN[rng.randrange(len(GIVEN))] + GIVEN[rng.randrange(len(GIVEN))],
        id_number=idn,
        account_no=lender.account_no,
        phone=f"13{rng.randrange(0, 10)}{rng.randrange(0, 10**8):08d}",
        bank_status="name_mismatch",  # the card's holder is someone else
    )
    return RoundTwo(
        duplicate=persons[0],
        mismatch_again=persons[17],
        new_card=Person(persons[1].name, persons[1].id_number, card, persons[1].phone, "active"),
        borrower=borrower,
    )


def bank_accounts(persons: list[Person]) -> list[dict[str, str]]:
    """The mock bank's account registry for these people (with the planted faults)."""
    accounts = []
    for p in persons:
        if p.bank_status == "missing":
            continue
        accounts.append(
            {
                "account_no": p.account_no,
                "name": p.name + "某" if p.bank_status == "name_mismatch" else p.name,
                "id_number": p.id_number,
                "status": p.bank_status if p.bank_status in {"frozen", "closed"} else "active",
            }
        )
    return accounts


def batch_payload(
    batch_no: str,
    *,
    subsidy_code: str,
    subsidy_name: str,
    period: str,
    persons: list[Person],
    amount_fen: int,
    region_code: str = "430621101",
    bank_profile: str = "hnrcu",
) -> dict[str, Any]:
    items = []
    for seq, p in enumerate(persons, start=1):
        item: dict[str, Any] = {
            "seq": seq,
            "name": p.name,
            "id_number": p.id_number,
            "account_no": p.account_no,
            "phone": p.phone,
            "remark": f"{subsidy_name}{period}",
        }
        # upstream may send integer fen or a yuan string; the demo uses both
        if seq % 2:
            item["amount_fen"] = amount_fen + seq
        else:
            fen = amount_fen + seq
            item["amount_yuan"] = f"{fen // 100}.{fen % 100:02d}"
        items.append(item)
    total = sum(amount_fen + s for s in range(1, len(persons) + 1))
    return {
        "header": {
            "batch_no": batch_no,
            "region_code": region_code,
            "subsidy_code": subsidy_code,
            "subsidy_name": subsidy_name,
            "period": period,
            "fiscal_year": int(period[:4]),
            "payer_account": "43001700062050500001",
            "payer_name": "岳阳县财政局惠民惠农资金专户",
            "bank_profile": bank_profile,
            "item_count": len(items),
            "total_amount_fen": total,
        },
        "items": items,
    }
