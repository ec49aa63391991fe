from __future__ import annotations

import tomllib
from pathlib import Path

from gateway.feedback.reasons import REASONS, reason

ROOT = Path(__file__).resolve().parents[3]


def test_every_reason_has_chinese_text_and_an_action() -> None:
    for r in REASONS.values():
        assert r.zh and r.en and r.action_zh


def test_unknown_code_falls_back_to_unmapped() -> None:
    assert reason("no-such").code == "unmapped_bank_code"


def test_example_profile_maps_every_bank_code_to_a_known_reason() -> None:
    data = tomllib.loads((ROOT / "deploy" / "banks.example.toml").read_text(encoding="utf-8"))
    for profile in data["profiles"].values():
        for code, ours in profile["result_codes"].items():
            assert ours in REASONS, (code, ours)
