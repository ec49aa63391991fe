"""Loopback ports for servers a test starts later than it must name their port (a gateway
API that a mock bank calls back, a port that must be closed).

``bind(0)`` then close is not safe when tests run in parallel: the kernel hands out the
same ephemeral range (32768–60999 here) to every outgoing connection of every process, so
the port may be taken again before the server binds it. These ports come from below that
range, where the kernel never picks one by itself, and each pytest-xdist worker draws from
a block of its own, in turn, skipping any port something already listens on."""

from __future__ import annotations

import os
import socket
import threading

FIRST = 20000
BLOCK = 200  # ports per xdist worker: 20000–24999 serves 25 workers
_lock = threading.Lock()
_next: list[int] = []


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3" under pytest-xdist
    digits = worker.removeprefix("gw")
    return int(digits) if digits.isdecimal() else 0


def _block() -> range:
    start = FIRST + BLOCK * (_worker_index() % 25)
    return range(start, start + BLOCK)


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reserve_port() -> int:
    """A loopback port that nothing listens on and that no other test process of this run
    will be handed. Successive calls walk the worker's block (starting at a point taken from
    the process id, so that two runs at once rarely meet), so a port is reused only after
    the whole block."""
    block = _block()
    with _lock:
        if not _next:
            _next.append(block.start + os.getpid() % BLOCK)
        for _ in range(BLOCK):
            port = _next[0]
            _next[0] = block.start + (port + 1 - block.start) % BLOCK
            if _bindable(port):
                return port
    raise RuntimeError(f"no free loopback port in {block.start}–{block.stop - 1}")
