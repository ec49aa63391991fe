"""Raw clients of both provider APIs, written from docs/formats/sms-v1.md for the mock
centre's tests (the adapters are exercised against it only in test_interop.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode

import httpx

# One client for every call: building one per request (its TLS context) costs ~30 ms.
_CLIENT = httpx.Client()

ALIYUN_SECRET = "aliyun-secret"
TENCENT_SECRET_ID = "sid-mock"
TENCENT_SECRET = "tencent-secret"


def _enc(s: str) -> str:
    return quote(s, safe="~")


def aliyun_signature(params: dict[str, str], secret: str) -> str:
    canonical = "&".join(f"{_enc(k)}={_enc(params[k])}" for k in sorted(params) if k != "Signature")
    mac = hmac.new(
        (secret + "&").encode(), ("POST&%2F&" + _enc(canonical)).encode(), hashlib.sha256
    )
    return base64.b64encode(mac.digest()).decode()


def aliyun(
    url: str,
    action: str,
    params: dict[str, str],
    *,
    key_id: str = "ak-mock",
    secret: str = ALIYUN_SECRET,
    timestamp: float | None = None,
    nonce: str | None = None,
    timeout: float = 5.0,
    tamper: bool = False,
) -> httpx.Response:
    stamp = dt.datetime.fromtimestamp(time.time() if timestamp is None else timestamp, dt.UTC)
    full = {
        **params,
        "Action": action,
        "Version": "2017-05-25",
        "Format": "JSON",
        "AccessKeyId": key_id,
        "SignatureMethod": "HMAC-SHA256",
        "SignatureVersion": "1.0-lite",
        "SignatureNonce": nonce or secrets.token_urlsafe(24),
        "Timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    full["Signature"] = aliyun_signature(full, secret)
    if tamper:
        full["OutId"] = full.get("OutId", "") + "x"
    body = urlencode(full, quote_via=quote).encode()
    return _CLIENT.post(
        url,
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        timeout=timeout,
    )


def aliyun_send(url: str, phone: str, out_id: str, **kwargs: Any) -> httpx.Response:
    params = kwargs.pop("params", {"item": "耕地地力保护补贴", "amount": "1,234.50"})
    fields = {
        "PhoneNumbers": phone,
        "SignName": kwargs.pop("sign_name", "岳阳县财政局"),
        "TemplateCode": kwargs.pop("template", "SMS_460001"),
        "TemplateParam": json.dumps(params, ensure_ascii=False),
        "OutId": out_id,
    }
    return aliyun(url, "SendSms", fields, **kwargs)


def tencent(
    url: str,
    action: str,
    payload: dict[str, Any],
    *,
    secret_id: str = TENCENT_SECRET_ID,
    secret: str = TENCENT_SECRET,
    timestamp: float | None = None,
    nonce: str | None = None,
    timeout: float = 5.0,
) -> httpx.Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    stamp = str(int(time.time() if timestamp is None else timestamp))
    nonce = nonce or secrets.token_urlsafe(24)
    to_sign = "\n".join(
        ["HMAC-SHA256-LITE", action, stamp, nonce, hashlib.sha256(body).hexdigest()]
    )
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-TC-Action": action,
        "X-TC-Version": "2021-01-11",
        "X-TC-Timestamp": stamp,
        "X-TC-Nonce": nonce,
        "Authorization": f"HMAC-SHA256-LITE Credential={secret_id}, Signature={signature}",
    }
    return _CLIENT.post(url, content=body, headers=headers, timeout=timeout)


def tencent_send(url: str, phone: str, out_id: str, **kwargs: Any) -> httpx.Response:
    payload = {
        "PhoneNumberSet": [f"+86{phone}"],
        "SmsSdkAppId": kwargs.pop("app_id", "1400000001"),
        "SignName": kwargs.pop("sign_name", "岳阳县财政局"),
        "TemplateId": kwargs.pop("template", "1860001"),
        "TemplateParamSet": kwargs.pop("params", ["耕地地力保护补贴", "1,234.50"]),
        "SessionContext": out_id,
    }
    return tencent(url, "SendSms", payload, **kwargs)


def receipt_signature(secret: str, provider: str, timestamp: str, nonce: str, body: bytes) -> str:
    text = "\n".join(["SMS-RECEIPT", provider, timestamp, nonce, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
