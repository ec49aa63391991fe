"""Account movements of API banks (账户明细, issue 12): what the bank's account shows, read
so that reconciliation matches every paid and returned item against the money itself, not
only against what the bank reported by inquiry or callback.

For an API profile with ``account_movements`` (``docs/formats/openapi-v1.md``, ``GET
/accounts/{payer_account}/movements``), one worker at a time (lease ``movements:<profile>``)
reads, per payer account, every day from the first business day of a batch not yet
reconciled — or reconciled within :data:`RETURN_WINDOW_DAYS` (a 退票 is booked on the day it
happens, long after the debit) — up to today (Asia/Shanghai), at most
:data:`MAX_DAYS_BACK` days back:

- each day continues from the bank's cursor stored in ``account_movement_polls``, page
  after page (at most :data:`MAX_PAGES_PER_RUN` per day and run), and is asked again at
  most every ``poll_seconds``; a past day read to the end after it was over (plus
  :data:`DAY_CLOSE_MARGIN`) is never asked again;
- each page is recorded by the SHA-256 of its exact signed bytes (``inbound_files``, kind
  ``account_movements``) and each entry once by its bank ``entry_id``
  (``account_entries``: the same facts a camt.054 notice gives, linked to its batch by
  reconciliation's entries stream);
- a credit naming an item serial (退票) bounces the item through ``apply_outcomes`` exactly
  like a camt.054 return: an item the inquiry or a callback already reported returned is
  a duplicate there, so a return is applied once whichever path brings it first.

A page that breaks the contract is refused as a whole (logged; nothing recorded, the cursor
stays) and asked again later; a transport failure likewise.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.batches.models import Batch
from gateway.context import Context
from gateway.feedback.models import AccountEntryRecord, AccountMovementPoll, InboundFile
from gateway.feedback.service import apply_outcomes, entry_record, return_outcomes
from gateway.kit.clock import CHINA, utcnow
from gateway.kit.db import session_scope
from gateway.kit.leases import claim_job, release_job
from gateway.kit.logging import get_logger
from gateway.payments.states import BatchState
from gateway.ports import (
    AccountEntry,
    AccountMovementsApi,
    AdapterError,
    FormatError,
    MovementsPage,
)
from gateway.profiles import BankProfile

log = get_logger(__name__)

#: Reconciled batches of this many recent days still have their account read (returns).
RETURN_WINDOW_DAYS = 7
#: No day further back than this is read.
MAX_DAYS_BACK = 31
#: Pages of one day read in one run (the rest next run).
MAX_PAGES_PER_RUN = 20
#: A past day is closed once read to the end this long after it ended.
DAY_CLOSE_MARGIN = dt.timedelta(minutes=10)
_OPEN = (BatchState.DISPATCHING.value, BatchState.SENT.value, BatchState.COMPLETED.value)


def reads_movements(profile: BankProfile) -> bool:
    return profile.is_api and profile.account_movements


def poll_api_movements(
    ctx: Context, profile: BankProfile, owner: str, *, now: dt.datetime | None = None
) -> int:
    """Read the due days of this API bank's payer accounts; returns how many entries were
    recorded (new ones only)."""
    if not reads_movements(profile):
        return 0
    api = profile.api
    if not isinstance(api, AccountMovementsApi):
        return 0
    job = f"movements:{profile.name}"
    with session_scope(ctx.sessions) as session:
        if not claim_job(session, job, owner, ctx.settings.lease_seconds):
            return 0
    recorded = 0
    try:
        now = now or utcnow()
        with ctx.sessions() as session:
            due = _due_days(session, profile, now)
        for account, day, cursor in due:
            recorded += _read_day(ctx, profile, api, account, day, cursor, owner, now)
    finally:
        with session_scope(ctx.sessions) as session:
            release_job(session, job, owner)
    return recorded


def china_day(at: dt.datetime) -> dt.date:
    return at.replace(tzinfo=dt.UTC).astimezone(CHINA).date()


def _due_days(
    session: Session, profile: BankProfile, now: dt.datetime
) -> list[tuple[str, dt.date, str | None]]:
    """``(account, day, cursor)`` to read now, oldest day first."""
    today = china_day(now)
    recent = today - dt.timedelta(days=RETURN_WINDOW_DAYS)
    recent_utc = dt.datetime.combine(recent, dt.time(), CHINA).astimezone(dt.UTC)
    recent_utc = recent_utc.replace(tzinfo=None)
    first: dict[str, dt.date] = {}
    for account, dispatch_on, received_at in session.execute(
        select(Batch.payer_account, Batch.dispatch_on, Batch.received_at).where(
            Batch.bank_profile == profile.name,
            or_(
                Batch.state.in_(_OPEN),
                (Batch.state == BatchState.RECONCILED.value)
                & or_(Batch.dispatch_on >= recent, Batch.received_at >= recent_utc),
            ),
        )
    ):
        day = dispatch_on if dispatch_on is not None else china_day(received_at)
        if account and (account not in first or day < first[account]):
            first[account] = day
    if not first:
        return []
    polls = {
        (p.account, p.day): p
        for p in session.scalars(
            select(AccountMovementPoll).where(
                AccountMovementPoll.bank_profile == profile.name,
                AccountMovementPoll.account.in_(list(first)),
                AccountMovementPoll.day >= today - dt.timedelta(days=MAX_DAYS_BACK),
            )
        )
    }
    throttle = dt.timedelta(seconds=profile.poll_seconds)
    due: list[tuple[str, dt.date, str | None]] = []
    for account, start in sorted(first.items()):
        day = max(start, today - dt.timedelta(days=MAX_DAYS_BACK))
        while day <= today:
            p = polls.get((account, day))
            if p is None:
                due.append((account, day, None))
            elif not _closed(p, today) and not (dt.timedelta(0) <= now - p.polled_at < throttle):
                due.append((account, day, p.cursor))
            day += dt.timedelta(days=1)
    return due


def _closed(p: AccountMovementPoll, today: dt.date) -> bool:
    """A past day read to the end after it was over: nothing more will be booked on it."""
    if p.day >= today or not p.exhausted:
        return False
    end = dt.datetime.combine(p.day + dt.timedelta(days=1), dt.time(), CHINA) + DAY_CLOSE_MARGIN
    return p.polled_at >= end.astimezone(dt.UTC).replace(tzinfo=None)


def _read_day(
    ctx: Context,
    profile: BankProfile,
    api: AccountMovementsApi,
    account: str,
    day: dt.date,
    cursor: str | None,
    owner: str,
    now: dt.datetime,
) -> int:
    recorded = 0
    for _ in range(MAX_PAGES_PER_RUN):
        try:
            page = api.movements(account, day, cursor)
        except FormatError:
            # a signed answer that breaks the contract: nothing of it is used; asked again
            log.error("feedback.movements_malformed", profile=profile.name, day=str(day))
            _remember(ctx, profile, account, day, cursor, False, 0, now)
            return recorded
        except (AdapterError, ValueError) as exc:
            log.warning(
                "feedback.movements_failed",
                profile=profile.name,
                day=str(day),
                error=type(exc).__name__,
            )
            return recorded
        taken = take_movements(ctx, profile, page, owner)
        recorded += taken
        cursor = page.next_cursor or cursor
        _remember(ctx, profile, account, day, cursor, not page.has_more, taken, now)
        if not page.has_more:
            break
    return recorded


def _remember(
    ctx: Context,
    profile: BankProfile,
    account: str,
    day: dt.date,
    cursor: str | None,
    exhausted: bool,
    entries: int,
    now: dt.datetime,
) -> None:
    try:
        with session_scope(ctx.sessions) as session:
            p = session.scalar(
                select(AccountMovementPoll).where(
                    AccountMovementPoll.bank_profile == profile.name,
                    AccountMovementPoll.account == account,
                    AccountMovementPoll.day == day,
                )
            )
            if p is None:
                p = AccountMovementPoll(
                    bank_profile=profile.name, account=account, day=day, entries=0
                )
                session.add(p)
            p.cursor = cursor
            p.exhausted = exhausted
            p.entries = (p.entries or 0) + entries
            p.polled_at = now
    except IntegrityError:
        pass  # another worker recorded the same day first; it is read again next run


def take_movements(ctx: Context, profile: BankProfile, page: MovementsPage, actor: str) -> int:
    """Record one page of movements: its bytes by hash, each entry once by its entry id,
    and bounce the items its return credits name. Returns the number of new entries."""
    raw = page.raw or repr(page).encode()
    sha = hashlib.sha256(raw).hexdigest()
    ids = [e.entry_id for e in page.entries if e.entry_id]
    try:
        with session_scope(ctx.sessions) as session:
            if session.scalar(
                select(InboundFile.id).where(
                    InboundFile.bank_profile == profile.name, InboundFile.sha256 == sha
                )
            ):
                return 0
            known = set(
                session.scalars(
                    select(AccountEntryRecord.entry_id).where(
                        AccountEntryRecord.bank_profile == profile.name,
                        AccountEntryRecord.entry_id.in_(ids),
                    )
                )
            )
            fresh: list[AccountEntry] = []
            for e in page.entries:
                if e.entry_id and e.entry_id not in known:
                    known.add(e.entry_id)
                    fresh.append(e)
            if not fresh:
                return 0
            inbound = InboundFile(
                bank_profile=profile.name,
                kind="account_movements",
                file_name=f"movements:{page.day.isoformat()}:{fresh[0].entry_id}"[:128],
                sha256=sha,
                size=len(raw),
                state="applied",
                item_count=len(fresh),
            )
            session.add(inbound)
            session.flush()
            for e in fresh:
                session.add(entry_record(profile.name, inbound.id, e))
            session.flush()
            returns = return_outcomes(fresh)
            if returns:
                inbound.applied_count = apply_outcomes(
                    session, ctx.pii, profile, inbound, returns, actor
                )
    except IntegrityError:
        return 0  # another worker recorded these entries first
    log.info(
        "feedback.movements_recorded",
        profile=profile.name,
        day=str(page.day),
        entries=len(fresh),
        returns=len(returns),
    )
    return len(fresh)
