"""The mock bank's HTTPS open API (``docs/formats/openapi-v1.md``), its own implementation.

- :mod:`mock_bank.api.settings` — the ``[api]`` config table (:class:`ApiConfig`);
- :mod:`mock_bank.api.crypto` — strings to sign, RSA-PSS / ECDSA-P256 / SM2 signatures,
  SM4-CBC-HMAC-SM3 bodies;
- :mod:`mock_bank.api.validation` — the disbursement body, checked like the file formats;
- :mod:`mock_bank.api.store` — the API's tables in the bank's ledger database;
- :mod:`mock_bank.api.service` — the bank behind the endpoints: take, decide, inquire, bounce;
- :mod:`mock_bank.api.callbacks` — signed callbacks to the gateway, with retries;
- :mod:`mock_bank.api.server` — the mutual-TLS HTTP server and its fault hook points.

Like the rest of ``mock_bank`` it never imports ``gateway`` or ``adapters``. This package
module imports nothing so that ``mock_bank.config`` can import the settings without a cycle.
"""
