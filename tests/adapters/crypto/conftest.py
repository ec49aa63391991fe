"""Fixtures for the crypto tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adapters.crypto.openssl_cli import OpenSSL, openssl3_problem, openssl_sm2_problem


@pytest.fixture
def openssl(tmp_path: Path) -> OpenSSL:
    """OpenSSL 3 with SM2, or the test is skipped saying why."""
    problem = openssl_sm2_problem()
    if problem is not None:
        pytest.skip(f"OpenSSL interop needs OpenSSL 3 with SM2: {problem}")
    return OpenSSL(tmp_path)


@pytest.fixture
def openssl3(tmp_path: Path) -> OpenSSL:
    """OpenSSL 3 (SM2 not needed), or the test is skipped saying why."""
    problem = openssl3_problem()
    if problem is not None:
        pytest.skip(f"OpenSSL interop needs OpenSSL 3: {problem}")
    return OpenSSL(tmp_path)
