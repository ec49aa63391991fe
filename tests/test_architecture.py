"""The rooms and who may enter them: the mock bank is an independent implementation, adapters
know only the ports, and the state machine is pure."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_mock_bank_imports_neither_gateway_nor_adapters() -> None:
    for path, names in imports_of("mock_bank").items():
        bad = {n for n in names if n.split(".")[0] in {"gateway", "adapters"}}
        assert not bad, (path, bad)


def test_mock_sms_imports_neither_gateway_nor_adapters() -> None:
    for path, names in imports_of("mock_sms").items():
        bad = {n for n in names if n.split(".")[0] in {"gateway", "adapters", "mock_bank"}}
        assert not bad, (path, bad)


def test_adapters_know_only_the_ports() -> None:
    for path, names in imports_of("adapters").items():
        bad = {n for n in names if n.split(".")[0] == "gateway" and n != "gateway.ports"}
        assert not bad, (path, bad)
        assert not {n for n in names if n.startswith("sqlalchemy")}, path


def test_state_machine_is_pure() -> None:
    names = imports_of("gateway")["gateway/payments/states.py"]
    assert names <= {"__future__", "enum"}, names


def test_gateway_never_imports_the_mock_bank() -> None:
    for path, names in imports_of("gateway").items():
        assert not {n for n in names if n.startswith("mock_bank")}, path
