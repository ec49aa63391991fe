"""The OpenSSL 3 command line as an independent SM2/ECDSA implementation for interop tests."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path


@cache
def openssl3_problem() -> str | None:
    """Why no OpenSSL 3 command line can be used here, or None when it can."""
    exe = shutil.which("openssl")
    if exe is None:
        return "no openssl executable on PATH"
    version = subprocess.run([exe, "version"], capture_output=True, text=True, check=False)
    if not version.stdout.startswith("OpenSSL 3."):
        return f"openssl is not OpenSSL 3 ({version.stdout.strip() or version.stderr.strip()})"
    return None


@cache
def openssl_sm2_problem() -> str | None:
    """Why OpenSSL cannot serve as the SM2 reference here, or None when it can."""
    problem = openssl3_problem()
    if problem is not None:
        return problem
    probe = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "SM2"], capture_output=True, check=False
    )
    if probe.returncode != 0 or b"BEGIN PRIVATE KEY" not in probe.stdout:
        return "this OpenSSL build has no SM2 (genpkey -algorithm SM2 failed)"
    return None


class OpenSSL:
    """Runs ``openssl`` in a working directory; every call must succeed unless told."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            ["openssl", *args], cwd=self.workdir, capture_output=True, check=False, timeout=30
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"openssl {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')}"
            )
        return result

    def write(self, name: str, data: bytes) -> str:
        (self.workdir / name).write_bytes(data)
        return name

    def read(self, name: str) -> bytes:
        return (self.workdir / name).read_bytes()
