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
from gateway.upstream.config import WebhookEndpoint

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

    # results upstream: webhook endpoint per upstream client, JSON in the environment:
    # {"client id": {"url": "https://…", "secret": "whsec_…", "previous_secrets": [...]}}
    webhooks: dict[str, WebhookEndpoint] = Field(default_factory=dict)
    webhook_timeout_seconds: float = 15.0  # per request (the specification: 15–30 s)
    webhook_max_attempts: int = 15  # then the message is "failed" (≈ 1.4 days of retries)
    webhook_retry_initial_seconds: float = 30.0
    webhook_retry_max_seconds: float = 21600.0
    webhook_step_seconds: float = 20.0  # time budget of one delivery step
    webhook_proxy: str | None = None  # e.g. an egress proxy; environment proxies are ignored

    bank_profiles_file: Path = Path("deploy/banks.example.toml")
    # official holiday schedules for years the calendar package does not know yet
    calendar_file: Path | None = None
    # SMS to beneficiaries: provider, templates, quiet hours (gateway/notifications/config.py)
    sms_file: Path | None = None
    # self-check (自查) thresholds and age rules (gateway/selfcheck/config.py); None: built-in
    selfcheck_file: Path | None = None
    # reconcile in every worker cycle (false: run `reconcile` as a separate scheduled job)
    reconcile_in_worker: bool = True

    log_json: bool = True
    log_level: str = "INFO"
    log_file: Path | None = None

    worker_id: str | None = None
    lease_seconds: int = 120
    poll_interval_seconds: float = 1.0
    # never-sent delivery attempts in a row (refused, DNS, handshake) before a never_sent
    # case tells the operator; the worker keeps trying after that (docs/delivery-errors.md)
    delivery_max_attempts: int = 8
    # inquiries of an unknown outcome before the file and its items go to a person
    inquiry_max_attempts: int = 5
    retry_initial_seconds: float = 2.0
    retry_max_seconds: float = 300.0

    # Treasury refunds (退回国库): a fiscal year's items still unpaid on this month-day
    # (MM-DD, in that year) may be proposed for refund; year end by default. The pattern
    # admits only days every year has (no 02-29).
    refund_cutoff: str = Field(
        "12-31",
        pattern=r"^((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
        r"|02-(0[1-9]|1[0-9]|2[0-8]))$",
    )

    # The operators' dashboard (gateway/dashboard), served under /dashboard by `serve`
    dashboard_enabled: bool = True
    dashboard_session_idle_minutes: int = 30  # a session unused this long has expired
    dashboard_session_max_hours: int = 12  # and none lives longer than this
    dashboard_password_max_age_days: int = 90  # then the password must be changed
    dashboard_password_min_length: int = 12
    dashboard_lockout_failures: int = 5  # failed logins in a row that lock the account
    dashboard_lockout_minutes: int = 30
    # users who have not logged in for this many working days are listed for supervisors
    dashboard_inactive_working_days: int = 2
    # Secure cookies (HTTPS only). Only development may turn it off, for plain-HTTP loopback.
    dashboard_secure_cookies: bool = True
    # argon2id parameters of dashboard passwords: RFC 9106's second recommended set
    # (t=3, m=64 MiB, p=4). "CHEAPEST" exists for the test suite alone and is refused in
    # every environment but "test".
    dashboard_argon2_parameters: Literal["RFC_9106_LOW_MEMORY", "CHEAPEST"] = "RFC_9106_LOW_MEMORY"

    # Fault injection for crash tests: the worker exits abruptly at this point
    # ("after_upload": the file is on the bank's server but not yet recorded). Ignored in
    # production.
    crash_at: str | None = None

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.dashboard_argon2_parameters != "RFC_9106_LOW_MEMORY" and self.environment != "test":
            raise ValueError(
                "GATEWAY_DASHBOARD_ARGON2_PARAMETERS=CHEAPEST is for the test suite only"
            )
        if self.environment == "production":
            if self.master_keys.get_secret_value() == DEV_MASTER_KEYS:
                raise ValueError("GATEWAY_MASTER_KEYS must be set in production")
            if self.index_key.get_secret_value() == DEV_INDEX_KEY:
                raise ValueError("GATEWAY_INDEX_KEY must be set in production")
            for client, secret in self.api_clients.items():
                if secret.get_secret_value() == DEV_API_CLIENTS.get(client):
                    raise ValueError(f"the API client {client!r} uses a development secret")
            if not self.dashboard_secure_cookies:
                raise ValueError("GATEWAY_DASHBOARD_SECURE_COOKIES may be off only in development")
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
