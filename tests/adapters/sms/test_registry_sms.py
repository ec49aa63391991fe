"""``adapters.registry.build_sms_provider``: both providers, and every configuration
mistake refused with a message that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.registry import build_sms_provider
from adapters.sms import AliyunStyleSms, TencentStyleSms

BASE = {
    "provider": "aliyun-style",
    "base_url": "http://127.0.0.1:8081/aliyun/",
    "access_key_id": "ak",
    "access_key_secret": "secret",
}


def test_builds_both_providers(tmp_path: Path) -> None:
    aliyun = build_sms_provider({**BASE, "sign_name": "岳阳县财政局", "read_timeout": 3})
    assert isinstance(aliyun, AliyunStyleSms) and aliyun.name == "aliyun-style"
    aliyun.close()
    (tmp_path / "tc.secret").write_text("tencent-secret\n")
    tencent = build_sms_provider(
        {
            "provider": "tencent-style",
            "base_url": "https://sms.example.cn/",
            "access_key_id": "sid",
            "secret_file": "tc.secret",
            "sdk_app_id": "1400000001",
        },
        base_dir=tmp_path,
    )
    assert isinstance(tencent, TencentStyleSms) and tencent.name == "tencent-style"
    assert tencent._secret_key == "tencent-secret"
    tencent.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"provider": "huawei-style"}, "unknown provider"),
        ({"base_url": "http://sms.example.cn/"}, "https"),
        ({"base_url": "ftp://127.0.0.1/"}, "not an http(s) URL"),
        ({"base_url": "https://sms.example.cn/?a=1"}, "query"),
        ({"secret_file": "x"}, "exactly one"),
        ({"access_key_secret": None}, "exactly one"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"colour": "blue"}, "unknown key"),
        ({"sdk_app_id": "1400000001"}, "unknown key"),
        ({"provider": "tencent-style"}, "sdk_app_id"),
        ({"access_key_id": ""}, "access_key_id"),
    ],
)
def test_refuses_bad_configuration(change: dict[str, object], message: str) -> None:
    config = {**BASE, **change}
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(ValueError, match="sms provider") as info:
        build_sms_provider(config)
    assert message in str(info.value)


def test_missing_secret_file_is_named(tmp_path: Path) -> None:
    config = {k: v for k, v in BASE.items() if k != "access_key_secret"}
    with pytest.raises(ValueError, match="secret_file"):
        build_sms_provider({**config, "secret_file": "nope"}, base_dir=tmp_path)
