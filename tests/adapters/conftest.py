"""Fixtures shared by the adapter tests: one development key set per test session.

Key file names are ``gateway.certs.DEV_KEY_FILES``, so the tests use exactly the files
``gateway certs init`` writes for development and the demo.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.certs import init_dev_keys


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding a fresh development key set (RSA signing keys, Ed25519 SSH keys)."""
    directory = tmp_path_factory.mktemp("dev-keys")
    init_dev_keys(directory)
    return directory
