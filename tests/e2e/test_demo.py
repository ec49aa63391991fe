"""``gateway demo --json`` end to end as real processes, then a search of everything the
gateway wrote (database file, logs) for raw ID and account numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.demo.data import people, round_two

# one demo run serves both modules: pytest-xdist (--dist loadgroup) keeps them on one worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]
SEED = 20261128


@pytest.fixture(scope="module")
def demo(demo_run: tuple[dict[str, object], Path]) -> tuple[dict[str, object], Path]:
    """One demo run (tests/e2e/conftest.py), shared with the dashboard's browser tests."""
    return demo_run


def test_demo_summary(demo: tuple[dict[str, object], Path]) -> None:
    summary, _ = demo
    for key in ("batches", "items", "by_state", "amount_fen", "bank", "all_final"):
        assert key in summary
    by_state = summary["by_state"]
    amount = summary["amount_fen"]
    bank = summary["bank"]
    assert isinstance(by_state, dict) and isinstance(amount, dict) and isinstance(bank, dict)
    assert by_state.get("paid", 0) > 0 and by_state.get("failed", 0) > 0
    assert summary["all_final"] is True
    # closing the loop: reconciled, one SMS per paid item (the SMS centre's own record),
    # every outcome delivered upstream
    recon, sms, upstream = summary["reconciliation"], summary["sms"], summary["upstream"]
    assert isinstance(recon, dict) and recon["ok"] is True and recon["discrepancies"] == 0
    assert isinstance(sms, dict) and sms["duplicates"] == 0 and sms["failed"] == 0
    assert sms["gateway"]["paid_notices"] == by_state["paid"]
    assert sms["sent"] == by_state["paid"] + sms["gateway"]["failure_notices"]
    assert isinstance(upstream, dict) and upstream["pending"] == 0 and upstream["delivered"] > 0
    assert upstream["receiver"]["invalid"] == 0
    assert summary["refunds"] == {"count": 0, "amount_fen": 0}
    banks = summary["banks"]
    assert isinstance(banks, dict) and set(banks) == {"hnrcu", "psbc", "abc"}
    for part in banks.values():
        assert part["bank"]["double_credits"] == 0
        assert part["amount_fen"]["paid"] == part["bank"]["amount_credited_fen"] > 0
        assert part["by_state"].get("failed", 0) > 0
    assert bank["double_credits"] == 0
    assert amount["paid"] == bank["amount_credited_fen"]
    assert amount["submitted"] == amount["paid"] + amount["failed"]
    assert set(summary["failed_by_reason"]) == {  # type: ignore[arg-type]
        "account_not_found",
        "name_mismatch",
        "account_frozen",
        "account_closed",
    }
    # five accepted batches (two in the second round), 84 items
    assert summary["batches_by_state"] == {"reconciled": 5, "rejected": 1}
    assert summary["items"] == 84


def test_demo_selfcheck_finds_each_planted_case(demo: tuple[dict[str, object], Path]) -> None:
    summary, _ = demo
    selfcheck = summary["selfcheck"]
    assert isinstance(selfcheck, dict) and selfcheck["report_id"] >= 1
    assert selfcheck["by_kind"] == {
        "shared_account": 1,
        "duplicate_claim": 1,
        "repeated_name_mismatch": 1,
        "account_changed": 1,
        "implausible_age": 1,
    }
    assert selfcheck["total"] == 5
    assert summary["ok"] is True


def test_no_raw_personal_data_in_database_or_logs(demo: tuple[dict[str, object], Path]) -> None:
    _, workdir = demo
    # everything the gateway wrote, and every log (the gateway's and the banks')
    files = [workdir / "gateway.db", *workdir.glob("gateway.db-*"), *workdir.rglob("*.log")]
    blobs = {p: p.read_bytes() for p in files if p.exists()}
    assert workdir / "gateway.db" in blobs
    leaks = []
    persons = people(SEED, 80)
    for person in [*persons, *round_two(SEED, persons).people]:
        for secret in (person.id_number, person.account_no, person.phone):
            for path, blob in blobs.items():
                if secret.encode() in blob:
                    leaks.append((secret[:4] + "…", path.name))
        for path, blob in blobs.items():
            for enc in ("utf-8", "gb18030"):
                if len(person.name) > 1 and person.name.encode(enc) in blob:
                    leaks.append((person.name[0] + "…", path.name))
    assert leaks == []
