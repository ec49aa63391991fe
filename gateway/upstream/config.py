"""Webhook endpoints per upstream client (settings ``GATEWAY_WEBHOOKS``)::

    GATEWAY_WEBHOOKS='{"county-finance": {"url": "https://finance.example/hooks/gateway",
                                          "secret": "whsec_…"}}'

``secret`` is a Standard Webhooks symmetric secret: ``whsec_`` followed by the base64 of 24
to 64 random bytes. ``previous_secrets`` (optional) keeps signing with old secrets too during
a rotation: every secret's signature goes into the one ``webhook-signature`` header.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
MIN_SECRET_BYTES = 24  # the specification: at least 192 bits …
MAX_SECRET_BYTES = 64  # … and at most 512


def secret_key(secret: str) -> bytes:
    """The HMAC key behind a ``whsec_<base64>`` secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret looks like 'whsec_<base64>'")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is 'whsec_' followed by standard base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes"
        )
    return key


class WebhookEndpoint(BaseModel):
    """Where one upstream client receives webhooks, and the secret(s) they are signed with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    secret: SecretStr
    previous_secrets: tuple[SecretStr, ...] = ()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
            raise ValueError("a webhook url is an absolute http(s) URL")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        secret_key(value.get_secret_value())
        return value

    @field_validator("previous_secrets")
    @classmethod
    def _previous(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for s in value:
            secret_key(s.get_secret_value())
        return value

    def keys(self) -> list[bytes]:
        """The HMAC keys to sign with: the current secret first."""
        return [secret_key(s.get_secret_value()) for s in (self.secret, *self.previous_secrets)]

    def safe_url(self) -> str:
        """The URL without its query string (which may carry a token), for logs."""
        return self.url.split("?", 1)[0]
