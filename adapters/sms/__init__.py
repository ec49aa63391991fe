"""SMS provider adapters (``gateway.ports.SmsProvider``): Aliyun-style and Tencent-style
HTTP APIs as specified in ``docs/formats/sms-v1.md``."""

from adapters.sms.aliyun import AliyunStyleSms
from adapters.sms.tencent import TencentStyleSms

__all__ = ["AliyunStyleSms", "TencentStyleSms"]
