"""All configuration in one pydantic-settings class.

Values come from environment variables prefixed ``GATEWAY_`` (``GATEWAY_DATABASE_URL``…) or
from an env file named by ``GATEWAY_ENV_FILE`` (default ``.env`` when present). Outside
``development``/``test`` the built-in development secrets are refused.
"""

from __future__ import annotations

import base64
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.kit.pii import PiiCipher

# Development-only secrets: fixed so that a developer's database stays readable across runs.
DEV_MASTER_KEYS = "dev1:" + base64.b64encode(b"development-master-key-not-secret"[:32]).decode()
DEV_INDEX_KEY = base64.b64encode(b"development-blind-index-key-0000"[:32]).decode()
DEV_API_CLIENTS = {"county-finance": "dev-secret-county-finance"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_file=os.environ.get("GATEWAY_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///gateway.db"

    # "kid:base64key,kid2:base64key": the first is current unless pii_current_key_id says
    master_keys: SecretStr = SecretStr(DEV_MASTER_KEYS)
    pii_current_key_id: str | None = None
    index_key: SecretStr = SecretStr(DEV_INDEX_KEY)

    # upstream clients: {"client id": "HMAC secret"} (JSON in the environment)
    api_clients: dict[str, SecretStr] = Field(
        default_factory=lambda: {k: SecretStr(v) for k, v in DEV_API_CLIENTS.items()}
    )
    signature_window_seconds: int = 300

    bank_profiles_file: Path = Path("deploy/banks.example.toml")
    # official holiday schedules for years the calendar package does not know yet
    calendar_file: Path | None = None

    log_json: bool = True
    log_level: str = "INFO"
    log_file: Path | None = None

    worker_id: str | None = None
    lease_seconds: int = 120
    poll_interval_seconds: float = 1.0
    delivery_max_attempts: int = 8
    inquiry_max_attempts: int = 5
    retry_initial_seconds: float = 2.0
    retry_max_seconds: float = 300.0

    # Fault injection for crash tests: the worker exits abruptly at this point
    # ("after_upload": the file is on the bank's server but not yet recorded). Ignored in
    # production.
    crash_at: str | None = None

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.environment == "production":
            if self.master_keys.get_secret_value() == DEV_MASTER_KEYS:
                raise ValueError("GATEWAY_MASTER_KEYS must be set in production")
            if self.index_key.get_secret_value() == DEV_INDEX_KEY:
                raise ValueError("GATEWAY_INDEX_KEY must be set in production")
            for client, secret in self.api_clients.items():
                if secret.get_secret_value() == DEV_API_CLIENTS.get(client):
                    raise ValueError(f"the API client {client!r} uses a development secret")
            if self.crash_at:
                raise ValueError("GATEWAY_CRASH_AT is a test hook and is refused in production")
        return self

    @cached_property
    def pii(self) -> PiiCipher:
        keys: dict[str, bytes] = {}
        first: str | None = None
        for part in self.master_keys.get_secret_value().split(","):
            kid, sep, b64 = part.strip().partition(":")
            if not sep:
                raise ValueError("GATEWAY_MASTER_KEYS entries look like 'kid:base64'")
            keys[kid] = base64.b64decode(b64)
            first = first or kid
        if first is None:
            raise ValueError("GATEWAY_MASTER_KEYS is empty")
        return PiiCipher(
            master_keys=keys,
            current_key_id=self.pii_current_key_id or first,
            index_key=base64.b64decode(self.index_key.get_secret_value()),
        )

    def client_secret(self, client_id: str) -> bytes | None:
        secret = self.api_clients.get(client_id)
        return None if secret is None else secret.get_secret_value().encode()

    def describe(self) -> str:
        """Settings for a log line, secrets left out."""
        return json.dumps(
            {
                "environment": self.environment,
                "database": self.database_url.split("@")[-1],
                "bank_profiles_file": str(self.bank_profiles_file),
            }
        )
