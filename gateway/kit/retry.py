"""Retry policy: tenacity for quick in-process retries of errors that provably never left,
and the same exponential-with-jitter curve for the persisted ``next_attempt_at`` of jobs
that wait between worker cycles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from gateway.kit.clock import utcnow
from gateway.ports import NeverSentError

T = TypeVar("T")


def retry_never_sent(
    fn: Callable[[], T], *, attempts: int = 3, initial: float = 0.2, max_wait: float = 2.0
) -> T:
    """Call ``fn``, retrying only NeverSentError (connect refused, DNS, handshake): waits of
    ``initial``, then twice that…, each plus up to ``initial`` of jitter, at most
    ``max_wait``. An error that may have left (any other) is raised at once."""
    retrying = Retrying(
        # a bank that said "later" (429 with Retry-After) is asked again only after that
        # delay, by the persisted schedule, never straight away
        retry=retry_if_exception(lambda e: isinstance(e, NeverSentError) and e.retry_after is None),
        wait=wait_exponential_jitter(multiplier=initial, max=max_wait, jitter=initial),
        stop=stop_after_attempt(attempts),
        reraise=True,
    )
    return retrying(fn)


def next_attempt_at(
    attempt: int, *, initial: float, maximum: float, retry_after: float | None = None
) -> dt.datetime:
    """When to try again after ``attempt`` failed attempts (honours a bank's Retry-After)."""
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt)
    delay = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)(state)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return utcnow() + dt.timedelta(seconds=delay)
