"""The client side of the bank API's mutual TLS.

The bank's server certificate is verified against the bank's CA certificate(s) from the
profile and **nothing else**: the context is built empty (``PROTOCOL_TLS_CLIENT`` loads no
default CAs and we never call ``load_default_certs``), and the HTTP client is created with
``trust_env=False`` so that ``SSL_CERT_FILE``/``SSL_CERT_DIR`` and proxy variables cannot
widen it. Host names are checked (``check_hostname``), TLS 1.2 is the minimum, and we
present our client certificate (``load_cert_chain``). Post-handshake client authentication
stays off and TLS 1.2 renegotiation is refused (``OP_NO_RENEGOTIATION``): the certificate
exchange happens once, in the initial handshake, before any request byte — which is what
lets :mod:`adapters.api.openapi` read a certificate alert as "the handshake was refused,
the request never reached the bank's HTTP layer".
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509


def build_client_ssl_context(
    *, client_cert: Path, client_key: Path, server_ca_pem: bytes
) -> ssl.SSLContext:
    """An ``SSLContext`` for mutual TLS with one bank.

    Raises ValueError naming the file when a certificate or key cannot be loaded.
    """
    try:
        x509.load_pem_x509_certificates(server_ca_pem)  # at least one, all well-formed
    except ValueError:
        raise ValueError("server_ca: not a PEM file of CA certificates") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.post_handshake_auth = False
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        context.load_verify_locations(cadata=server_ca_pem.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as exc:
        raise ValueError(f"server_ca: cannot load the CA certificates: {exc}") from None
    try:
        context.load_cert_chain(certfile=str(client_cert), keyfile=str(client_key))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(
            f"client_cert/client_key: cannot load {client_cert} with {client_key}: {exc}"
        ) from None
    return context
