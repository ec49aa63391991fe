"""Fixtures shared by the adapter tests: one development key set per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.certs import DEV_KEY_FILES, DevKeyFiles, init_dev_keys


class DevKeys:
    """Paths of the development key set made by ``gateway.certs.init_dev_keys``."""

    def __init__(self, directory: Path, files: DevKeyFiles) -> None:
        self.directory = directory
        self.files = files

    def path(self, name: str) -> Path:
        return self.directory / name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory: pytest.TempPathFactory) -> DevKeys:
    directory = tmp_path_factory.mktemp("dev-keys")
    init_dev_keys(directory)
    return DevKeys(directory, DEV_KEY_FILES)
