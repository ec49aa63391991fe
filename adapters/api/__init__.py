"""Bank APIs over HTTPS (``gateway.ports.BankApi`` implementations).

- ``adapters.api.openapi``   the ``openapi-v1`` adapter (``docs/formats/openapi-v1.md``):
                             mutual TLS, signed requests/responses/callbacks, SM4 bodies,
                             and the never-sent/unknown error classification table
- ``adapters.api.signing``   strings to sign, signature headers, the timestamp window
- ``adapters.api.documents`` the JSON documents, rendered and parsed strictly
- ``adapters.api.tls``       the client ``SSLContext`` (the bank's CA only, host names)
- ``adapters.api.errors``    RateLimitedError, InquiryFailedError
"""

from adapters.api.errors import InquiryFailedError, RateLimitedError
from adapters.api.openapi import OpenApiBank, Sm4Encryption
from adapters.api.tls import build_client_ssl_context

__all__ = [
    "InquiryFailedError",
    "OpenApiBank",
    "RateLimitedError",
    "Sm4Encryption",
    "build_client_ssl_context",
]
