from __future__ import annotations

from pathlib import Path

import pytest

from gateway.profiles import ProfileError, load_profiles

ROOT = Path(__file__).resolve().parents[2]


def test_example_profiles_load_and_build_their_format() -> None:
    profiles = load_profiles(ROOT / "deploy" / "banks.example.toml")
    p = profiles["hnrcu"]
    assert p.format.name == "fw-gb18030-v1"
    assert p.accounts_are_cards
    assert p.inbox == "/inbox" and "inbox" not in p.transport_config
    assert Path(p.crypto_config["own_key"]).is_absolute()
    assert p.reason_for("E102") == "name_mismatch"
    assert p.reason_for("X999") == "unmapped_bank_code"


def test_missing_section_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[profiles.x]\n[profiles.x.format]\nformat = "fw-gb18030-v1"\n')
    with pytest.raises(ProfileError, match="'x' has no 'transport' section"):
        load_profiles(path)
    with pytest.raises(ProfileError, match="does not exist"):
        load_profiles(tmp_path / "none.toml")
