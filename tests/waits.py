"""Waiting on a condition with a deadline: the one way tests synchronise with threads,
servers and processes. A test never sleeps a fixed time hoping that something happened; it
polls the state it waits for and fails, saying what it waited for, when the deadline
passes. Deadlines are generous (the machine may be loaded); they bound a hang, they are not
a measure of speed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.005,
    max_interval: float = 0.1,
    what: str | Callable[[], str] = "",
) -> T:
    """Call ``condition`` until it returns something truthy and return that (so a condition
    may return ``None`` until it has its answer). The pause between calls starts at
    ``interval`` and doubles up to ``max_interval``. Raise AssertionError naming ``what``
    (or the last value) once ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    pause = interval
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = (what() if callable(what) else what) or getattr(
                condition, "__name__", "a condition"
            )
            raise AssertionError(
                f"still waiting after {timeout:g}s for {detail} (last value: {value!r})"
            )
        time.sleep(pause)
        pause = min(pause * 2, max_interval)


def join_thread(
    thread: threading.Thread, *, timeout: float = DEFAULT_TIMEOUT, what: str = ""
) -> None:
    """Wait until ``thread`` has finished. Raise AssertionError naming ``what`` (or the
    thread) if it is still running once ``timeout`` seconds pass."""
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(
            f"still waiting after {timeout:g}s for {what or f'thread {thread.name} to finish'}"
        )
