from __future__ import annotations

import base64
import random

import pytest
from pydantic import ValidationError

from gateway.settings import Settings


def test_production_refuses_development_secrets(rng: random.Random) -> None:
    key = base64.b64encode(rng.randbytes(32)).decode()
    with pytest.raises(ValidationError, match="MASTER_KEYS"):
        Settings(environment="production")
    with pytest.raises(ValidationError, match="development secret"):
        Settings(environment="production", master_keys=f"p1:{key}", index_key=key)
    with pytest.raises(ValidationError, match="test hook"):
        Settings(
            environment="production",
            master_keys=f"p1:{key}",
            index_key=key,
            api_clients={"county": "a-real-secret"},
            crash_at="after_upload",
        )
    ok = Settings(
        environment="production",
        master_keys=f"p1:{key}",
        index_key=key,
        api_clients={"county": "a-real-secret"},
    )
    assert ok.pii.current_key_id == "p1"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("GATEWAY_API_CLIENTS", '{"a": "b"}')
    s = Settings()
    assert s.database_url == "postgresql://u@h/db"
    assert s.client_secret("a") == b"b"
    assert "u@" not in s.describe()
