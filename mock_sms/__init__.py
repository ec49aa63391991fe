"""Mock SMS centre: an independent implementation of both SMS provider APIs of
``docs/formats/sms-v1.md`` (Aliyun-style and Tencent-style), beside the mock bank.

It records every message it accepts (masked number and a salted hash, never the number),
pushes signed delivery receipts, answers status queries, and misbehaves on a seeded fault
schedule. It imports nothing from ``gateway`` or ``adapters``.
"""

from mock_sms.config import AliyunAccount, SmsCentreConfig, TencentAccount, load_config
from mock_sms.server import MockSmsCentre

__all__ = ["AliyunAccount", "MockSmsCentre", "SmsCentreConfig", "TencentAccount", "load_config"]
