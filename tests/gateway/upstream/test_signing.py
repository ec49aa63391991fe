"""Standard Webhooks signatures: our signer against an independent computation of the
specification's algorithm and against the reference implementation (``standardwebhooks``),
and the receiver-side checks documented in docs/webhooks.md."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from gateway.upstream.config import WebhookEndpoint, secret_key
from gateway.upstream.signing import (
    WebhookVerificationError,
    new_message_id,
    new_secret,
    sign,
    signature_header,
    verify,
    webhook_headers,
)
from tests.gateway.upstream.support import OTHER_SECRET, SECRET

BODY = json.dumps(
    {"type": "item.paid", "data": {"name": "刘*", "amount_fen": 10001}},
    ensure_ascii=False,
    separators=(",", ":"),
).encode()


def spec_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The specification, written out independently: key = base64 after 'whsec_';
    content = '{id}.{timestamp}.{body}'; 'v1,' + base64(HMAC-SHA256)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def test_signature_is_the_specifications_algorithm() -> None:
    key = secret_key(SECRET)
    assert len(key) == 24
    for msg_id, ts in [("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231), (new_message_id(), 0)]:
        assert sign(key, msg_id, ts, BODY) == spec_signature(SECRET, msg_id, ts, BODY)
    headers = webhook_headers([key], "msg_p5jXN8AQM9LWM0D4loKWxJek", BODY, timestamp=1614265330)
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": spec_signature(
            SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, BODY
        ),
    }


def test_reference_implementation_verifies_our_headers() -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    headers = webhook_headers([secret_key(SECRET)], new_message_id(), BODY)
    wh = standardwebhooks.Webhook(SECRET)
    assert wh.verify(BODY, headers) == json.loads(BODY)
    # and it signs exactly as we do
    ts = int(headers["webhook-timestamp"])
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    assert wh.sign(headers["webhook-id"], when, BODY.decode()) == headers["webhook-signature"]
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        wh.verify(BODY.replace(b"10001", b"90001"), headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER_SECRET).verify(BODY, headers)


def test_rotation_signs_with_every_secret() -> None:
    keys = [secret_key(OTHER_SECRET), secret_key(SECRET)]  # new first, then the old one
    headers = webhook_headers(keys, "msg_rot", BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify(SECRET, headers, BODY) == "msg_rot"
    assert verify(OTHER_SECRET, headers, BODY) == "msg_rot"
    standardwebhooks = pytest.importorskip("standardwebhooks")
    standardwebhooks.Webhook(SECRET).verify(BODY, headers)
    standardwebhooks.Webhook(OTHER_SECRET).verify(BODY, headers)


@pytest.mark.parametrize(
    "tamper", ["body", "secret", "stale", "future", "missing", "id", "timestamp", "version"]
)
def test_receiver_refuses(tamper: str) -> None:
    headers = webhook_headers([secret_key(SECRET)], "msg_abc", BODY)
    body, secret = BODY, SECRET
    if tamper == "body":
        body = BODY + b" "
    elif tamper == "secret":
        secret = OTHER_SECRET
    elif tamper == "stale":
        headers = webhook_headers([secret_key(SECRET)], "msg_abc", BODY, timestamp=1)
    elif tamper == "future":
        ts = int(time.time()) + 3600
        headers = webhook_headers([secret_key(SECRET)], "msg_abc", BODY, timestamp=ts)
    elif tamper == "missing":
        del headers["webhook-signature"]
    elif tamper == "id":
        headers["webhook-id"] = "msg_abd"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    elif tamper == "version":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, body)


def test_message_ids_never_contain_a_dot() -> None:
    ids = {new_message_id() for _ in range(200)}
    assert len(ids) == 200 and all(i.startswith("msg_") and "." not in i for i in ids)
    with pytest.raises(ValueError, match="must not contain"):
        signature_header([secret_key(SECRET)], "msg.1", 1, BODY)


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_" + base64.b64encode(b"too short").decode(),
        "whsec_" + base64.b64encode(b"x" * 65).decode(),
        "whsec_not base64!",
    ],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValidationError):
        WebhookEndpoint.model_validate({"url": "https://u.example/h", "secret": secret})


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = new_secret()
    assert len(secret_key(fresh)) == 32
    monkeypatch.setenv(
        "GATEWAY_WEBHOOKS",
        json.dumps(
            {
                "county-finance": {
                    "url": "https://finance.example/hooks?token=abc",
                    "secret": fresh,
                    "previous_secrets": [SECRET],
                }
            }
        ),
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    hook = settings.webhooks["county-finance"]
    assert hook.keys() == [secret_key(fresh), secret_key(SECRET)]
    assert hook.safe_url() == "https://finance.example/hooks"
    assert fresh not in repr(settings)  # secrets stay out of reprs and logs
    monkeypatch.setenv("GATEWAY_WEBHOOKS", '{"county-finance": {"url": "ftp://x", "secret": "s"}}')
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
