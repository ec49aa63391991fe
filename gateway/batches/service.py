"""Intake (受理) of upstream batches: stream, validate, encrypt, write in bulk, idempotently.

The request body has been spooled to a file by the endpoint (memory stays bounded whatever
the batch size); this service reads it twice with ijson — once for the header, once
streaming the items — and writes items in chunks with one multi-row statement per chunk.
Everything happens in one transaction: a batch is either accepted whole or stored as
rejected with every reason, never half-applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson
from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.batches.errors import Problem
from gateway.batches.models import (
    Batch,
    BatchError,
    BatchEventRecord,
    ItemEventRecord,
    PaymentItem,
)
from gateway.batches.validation import (
    HeaderData,
    ItemData,
    ReissueRef,
    batch_no_of,
    validate_header,
    validate_item,
)
from gateway.dispatch.calendar import UnknownYearError, WorkingCalendar, dispatch_day
from gateway.kit.clock import china_today, utcnow
from gateway.kit.ids import item_serial, new_batch_serial
from gateway.kit.logging import get_logger
from gateway.kit.pii import PiiCipher, mask_account, mask_id_number, mask_name, mask_phone
from gateway.payments.states import BatchEvent, BatchState, ItemEvent, ItemState, item_sources
from gateway.ports import RequestItem
from gateway.profiles import BankProfile

log = get_logger(__name__)
CHUNK = 2000


@dataclass
class IntakeAnswer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class MalformedRequestError(ValueError):
    """The body is not JSON of the expected shape; nothing is stored."""


def claim_key(pii: PiiCipher, id_number: str, subsidy_code: str, period: str) -> str:
    """Blind key of (person, subsidy item, period): unique among standing items."""
    return pii.blind_index("claim", f"{id_number}|{subsidy_code}|{period}")


def batch_answer(session: Session, batch: Batch) -> dict[str, Any]:
    errors = session.scalars(
        select(BatchError).where(BatchError.batch_id == batch.id).order_by(BatchError.id)
    ).all()
    return {
        "batch_no": batch.batch_no,
        "state": batch.state,
        "serial": batch.serial if batch.state != BatchState.REJECTED else None,
        "item_count": batch.item_count,
        "total_fen": batch.total_fen,
        "received_at": batch.received_at.isoformat() + "Z",
        "error_count": batch.error_count,
        "errors": [
            {
                "seq": e.seq,
                "field": e.field,
                "code": e.code,
                "message_zh": e.message_zh,
                "message_en": e.message_en,
            }
            for e in errors
        ],
    }


def _status_for(batch: Batch) -> int:
    return 422 if batch.state == BatchState.REJECTED else 201


@dataclass
class _Run:
    """State of one intake pass over the items."""

    header: HeaderData | None
    profile: BankProfile | None
    problems: list[Problem] = field(default_factory=list)
    seqs: set[int] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    reissue_targets: dict[int, int] = field(default_factory=dict)  # target item id → seq
    count: int = 0
    total: int = 0
    pending: list[ItemData] = field(default_factory=list)
    format_check: Callable[[ItemData], list[Problem]] | None = None


class IntakeService:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        pii: PiiCipher,
        profiles: dict[str, BankProfile],
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self.sf = session_factory
        self.pii = pii
        self.profiles = profiles
        self.calendar = calendar or WorkingCalendar()

    # --- entry point ----------------------------------------------------------------------

    def submit(self, client_id: str, body: IO[bytes], content_sha256: str) -> IntakeAnswer:
        header_raw = self._read_header(body)
        batch_no = batch_no_of(header_raw)
        if batch_no is None:
            _, problems = validate_header(header_raw, self.profiles)
            problems = problems or [Problem("batch_no", "required")]
            return IntakeAnswer(
                422, {"state": "invalid", "errors": [p.as_dict() for p in problems]}
            )
        for _attempt in range(3):
            existing = self._existing_answer(client_id, batch_no, content_sha256)
            if existing is not None:
                return existing
            try:
                return self._intake(client_id, batch_no, header_raw, body, content_sha256)
            except IntegrityError:
                # A concurrent submission of the same batch number, or a concurrent batch
                # claiming the same person: its commit is visible now, look again.
                log.info("intake.race_retry", batch_no=batch_no)
                continue
        raise RuntimeError("intake kept racing with concurrent submissions")

    def _read_header(self, body: IO[bytes]) -> Any:
        body.seek(0)
        try:
            headers = ijson.items(body, "header")
            return next(iter(headers), None)
        except ijson.JSONError as exc:
            raise MalformedRequestError(str(exc)) from None

    def _existing_answer(
        self, client_id: str, batch_no: str, content_sha256: str
    ) -> IntakeAnswer | None:
        with self.sf() as session:
            batch = session.scalar(
                select(Batch).where(Batch.client_id == client_id, Batch.batch_no == batch_no)
            )
            if batch is None:
                return None
            if batch.content_sha256 != content_sha256:
                return IntakeAnswer(
                    409,
                    {
                        "batch_no": batch_no,
                        "state": batch.state,
                        "errors": [
                            {
                                "seq": None,
                                "field": "batch_no",
                                "code": "batch_no_reused",
                                "message_zh": "该批次号已提交过且内容不同",
                                "message_en": "this batch number was already submitted "
                                "with different content",
                            }
                        ],
                    },
                )
            return IntakeAnswer(_status_for(batch), batch_answer(session, batch), replayed=True)

    # --- the pass -------------------------------------------------------------------------

    def _intake(
        self, client_id: str, batch_no: str, header_raw: Any, body: IO[bytes], sha: str
    ) -> IntakeAnswer:
        header, header_problems = validate_header(header_raw, self.profiles)
        profile = self.profiles.get(header.bank_profile) if header else None
        run = _Run(header=header, profile=profile, problems=list(header_problems))
        run.format_check = self._format_check(profile)
        actor = f"upstream:{client_id}"
        now = utcnow()
        session = self.sf()
        try:
            batch = Batch(
                client_id=client_id,
                batch_no=batch_no,
                content_sha256=sha,
                state=BatchState.RECEIVED,
                serial=new_batch_serial(china_today()),
                received_at=now,
                updated_at=now,
                **self._header_columns(header, header_raw),
            )
            session.add(batch)
            session.flush()
            for raw in self._items(body):
                self._take_item(session, batch, run, raw)
            self._flush_chunk(session, batch, run)
            if header is not None:
                if run.count == 0:
                    run.problems.append(Problem("items", "no_items"))
                if run.count != header.item_count:
                    run.problems.append(
                        Problem(
                            "item_count",
                            "count_mismatch",
                            detail=f"{run.count} ≠ {header.item_count}",
                        )
                    )
                if run.total != header.total_fen:
                    run.problems.append(
                        Problem(
                            "total_amount",
                            "total_mismatch",
                            detail=f"{run.total} ≠ {header.total_fen}",
                        )
                    )
            if run.problems:
                session.rollback()
                return self._store_rejected(client_id, batch_no, header, header_raw, sha, run)
            self._accept(session, batch, run, actor, now)
            session.commit()
            answer = batch_answer(session, batch)
            log.info(
                "intake.accepted",
                batch_no=batch_no,
                serial=batch.serial,
                items=run.count,
                total_fen=run.total,
            )
            return IntakeAnswer(201, answer)
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _items(self, body: IO[bytes]) -> Iterator[Any]:
        body.seek(0)
        try:
            yield from ijson.items(body, "items.item")
        except ijson.JSONError as exc:
            raise MalformedRequestError(str(exc)) from None

    def _header_columns(self, header: HeaderData | None, raw: Any) -> dict[str, Any]:
        if header is not None:
            return {
                "region_code": header.region_code,
                "subsidy_code": header.subsidy_code,
                "subsidy_name": header.subsidy_name,
                "period": header.period,
                "fiscal_year": header.fiscal_year,
                "payer_account": header.payer_account,
                "payer_name": header.payer_name,
                "bank_profile": header.bank_profile,
                "declared_count": header.item_count,
                "declared_total_fen": header.total_fen,
            }
        raw = raw if isinstance(raw, dict) else {}

        def s(key: str, n: int) -> str:
            v = raw.get(key)
            return v[:n] if isinstance(v, str) else ""

        def i(key: str) -> int:
            v = raw.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 else 0

        return {
            "region_code": s("region_code", 12),
            "subsidy_code": s("subsidy_code", 12),
            "subsidy_name": s("subsidy_name", 100),
            "period": s("period", 8),
            "fiscal_year": i("fiscal_year") if i("fiscal_year") < 10000 else 0,
            "payer_account": s("payer_account", 32),
            "payer_name": s("payer_name", 100),
            "bank_profile": s("bank_profile", 32),
            "declared_count": i("item_count") if i("item_count") < 2**31 else 0,
            "declared_total_fen": i("total_amount_fen"),
        }

    def _format_check(
        self, profile: BankProfile | None
    ) -> Callable[[ItemData], list[Problem]] | None:
        if profile is None or profile.is_api:
            return None  # API banks carry any Unicode text in JSON; no field widths
        fmt = profile.format

        def check(item: ItemData) -> list[Problem]:
            probe = RequestItem(
                seq=item.seq,
                serial="0" * 24,
                account_no=item.account_no,
                name=item.name,
                id_number=item.id_number,
                amount_fen=item.amount_fen,
                remark=item.remark or "",
            )
            return [
                Problem(e.field_name, e.code, item.seq, detail=profile.name)
                for e in fmt.check_item(probe)
            ]

        return check

    def _take_item(self, session: Session, batch: Batch, run: _Run, raw: Any) -> None:
        run.count += 1
        item, problems = validate_item(
            raw,
            accounts_are_cards=bool(run.profile and run.profile.accounts_are_cards),
            format_check=run.format_check,
        )
        amount = raw.get("amount_fen") if isinstance(raw, dict) else None
        if item is not None:
            run.total += item.amount_fen
        elif isinstance(amount, int) and not isinstance(amount, bool) and amount > 0:
            run.total += amount
        run.problems += problems
        if item is None:
            return
        if item.seq in run.seqs:
            run.problems.append(Problem("seq", "seq_duplicate", item.seq))
            return
        run.seqs.add(item.seq)
        person = self.pii.blind_index("id_number", item.id_number)
        if person in run.persons:
            run.problems.append(Problem("id_number", "duplicate_person_in_batch", item.seq))
            return
        run.persons.add(person)
        run.pending.append(item)
        if len(run.pending) >= CHUNK:
            self._flush_chunk(session, batch, run)

    def _flush_chunk(self, session: Session, batch: Batch, run: _Run) -> None:
        """Cross-batch checks for the pending items, then (if all is well) one insert."""
        items, run.pending = run.pending, []
        if not items or run.header is None:
            return
        h = run.header
        keys = {claim_key(self.pii, it.id_number, h.subsidy_code, h.period): it for it in items}
        # Re-issues: the original item must exist (this client), be finally failed, be the
        # same person/subsidy/period, and be re-issued by one item only.
        reissue_of: dict[int, int] = {}
        for key, it in keys.items():
            if it.reissue_of is None:
                continue
            target_id = self._check_reissue(session, batch, run, it, it.reissue_of, key)
            if target_id is not None:
                reissue_of[it.seq] = target_id
        taken = dict(
            session.execute(
                select(PaymentItem.claim_key, PaymentItem.id).where(
                    PaymentItem.claim_key.in_(list(keys))
                )
            ).all()
        )
        for held_key, holder in taken.items():
            it = keys[str(held_key)]
            if it.reissue_of is not None and it.seq not in reissue_of:
                continue  # the re-issue itself was refused, with its own reason
            if reissue_of.get(it.seq) != holder:
                run.problems.append(Problem("id_number", "already_paid_elsewhere", it.seq))
        if run.problems:
            return  # keep validating the rest, but write nothing more
        if reissue_of:
            # release the originals' claims so the re-issues can take them
            session.execute(
                update(PaymentItem)
                .where(PaymentItem.id.in_(list(reissue_of.values())))
                .values(claim_key=None)
            )
        pii = self.pii
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for key, it in keys.items():
            rows.append(
                {
                    "batch_id": batch.id,
                    "seq": it.seq,
                    "serial": item_serial(batch.serial or "", it.seq),
                    "state": ItemState.ACCEPTED.value,
                    "amount_fen": it.amount_fen,
                    "name_enc": pii.encrypt("name", it.name),
                    "name_masked": mask_name(it.name),
                    "id_number_enc": pii.encrypt("id_number", it.id_number),
                    "id_number_bidx": pii.blind_index("id_number", it.id_number),
                    "id_number_masked": mask_id_number(it.id_number),
                    "account_enc": pii.encrypt("account_no", it.account_no),
                    "account_bidx": pii.blind_index("account_no", it.account_no),
                    "account_masked": mask_account(it.account_no),
                    "phone_enc": pii.encrypt("phone", it.phone) if it.phone else None,
                    "phone_masked": mask_phone(it.phone) if it.phone else None,
                    "remark": it.remark,
                    "claim_key": key,
                    "reissue_of_id": reissue_of.get(it.seq),
                    "updated_at": now,
                }
            )
        session.execute(insert(PaymentItem), rows)

    def _check_reissue(
        self,
        session: Session,
        batch: Batch,
        run: _Run,
        item: ItemData,
        ref: ReissueRef,
        key: str,
    ) -> int | None:
        row = session.execute(
            select(
                PaymentItem.id,
                PaymentItem.state,
                PaymentItem.id_number_bidx,
                Batch.subsidy_code,
                Batch.period,
            )
            .join(Batch, Batch.id == PaymentItem.batch_id)
            .where(
                Batch.client_id == batch.client_id,
                Batch.batch_no == ref.batch_no,
                PaymentItem.seq == ref.seq,
            )
        ).first()
        if row is None:
            run.problems.append(Problem("reissue_of", "reissue_target_missing", item.seq))
            return None
        target_id, state, id_bidx, subsidy, period = row
        assert run.header is not None  # noqa: S101 (only called with a valid header)
        if (
            id_bidx != self.pii.blind_index("id_number", item.id_number)
            or subsidy != run.header.subsidy_code
            or period != run.header.period
        ):
            run.problems.append(Problem("reissue_of", "reissue_person_differs", item.seq))
            return None
        if state == ItemState.REISSUED:
            run.problems.append(Problem("reissue_of", "reissue_target_already_reissued", item.seq))
            return None
        if not ItemState(state).is_reissuable():
            run.problems.append(
                Problem("reissue_of", "reissue_target_not_failed", item.seq, detail=state)
            )
            return None
        if target_id in run.reissue_targets:
            run.problems.append(Problem("reissue_of", "reissue_duplicate_target", item.seq))
            return None
        run.reissue_targets[target_id] = item.seq
        return int(target_id)

    # --- outcomes -------------------------------------------------------------------------

    def _accept(
        self, session: Session, batch: Batch, run: _Run, actor: str, now: dt.datetime
    ) -> None:
        batch.state = BatchState.ACCEPTED
        batch.item_count = run.count
        batch.total_fen = run.total
        if run.profile is not None:
            try:
                batch.dispatch_on = dispatch_day(now, run.profile.hours, self.calendar)
            except UnknownYearError as exc:
                # accepted all the same; the planner holds it and opens an operator case
                log.error("calendar.unknown_year", batch_no=batch.batch_no, year=exc.year)
        session.add_all(
            [
                BatchEventRecord(
                    batch_id=batch.id,
                    event="receive",
                    from_state=None,
                    to_state=BatchState.RECEIVED,
                    actor=actor,
                    at=now,
                ),
                BatchEventRecord(
                    batch_id=batch.id,
                    event=BatchEvent.ACCEPT,
                    from_state=BatchState.RECEIVED,
                    to_state=BatchState.ACCEPTED,
                    actor=actor,
                    at=now,
                ),
            ]
        )
        session.execute(
            insert(ItemEventRecord).from_select(
                ["item_id", "event", "from_state", "to_state", "actor", "at"],
                select(
                    PaymentItem.id,
                    literal("accept"),
                    literal(None),
                    literal(ItemState.ACCEPTED.value),
                    literal(actor),
                    literal(now),
                ).where(PaymentItem.batch_id == batch.id),
            )
        )
        if run.reissue_targets:
            targets = list(run.reissue_targets)
            sources = dict(
                session.execute(
                    select(PaymentItem.id, PaymentItem.state).where(PaymentItem.id.in_(targets))
                ).all()
            )
            moved = session.execute(
                update(PaymentItem)
                .where(
                    PaymentItem.id.in_(targets),
                    PaymentItem.state.in_([s.value for s in item_sources(ItemEvent.REISSUE)]),
                )
                .values(state=ItemState.REISSUED, updated_at=now)
                .returning(PaymentItem.id)
            ).all()
            if len(moved) != len(targets):
                # someone re-issued or changed one of them meanwhile: start over
                raise IntegrityError("reissue target moved", None, Exception("race"))
            session.add_all(
                ItemEventRecord(
                    item_id=tid,
                    event=ItemEvent.REISSUE,
                    from_state=sources.get(tid, ItemState.FAILED),
                    to_state=ItemState.REISSUED,
                    actor=actor,
                    at=now,
                    detail={"replaced_by_batch": batch.batch_no, "seq": seq},
                )
                for tid, seq in run.reissue_targets.items()
            )
        session.flush()

    def _store_rejected(
        self,
        client_id: str,
        batch_no: str,
        header: HeaderData | None,
        header_raw: Any,
        sha: str,
        run: _Run,
    ) -> IntakeAnswer:
        now = utcnow()
        with self.sf() as session:
            batch = Batch(
                client_id=client_id,
                batch_no=batch_no,
                content_sha256=sha,
                state=BatchState.REJECTED,
                serial=None,
                item_count=run.count,
                total_fen=run.total,
                error_count=len(run.problems),
                received_at=now,
                updated_at=now,
                completed_at=now,
                **self._header_columns(header, header_raw),
            )
            session.add(batch)
            session.flush()
            session.execute(
                insert(BatchError),
                [
                    {
                        "batch_id": batch.id,
                        "seq": p.seq,
                        "field": p.field,
                        "code": p.code,
                        "message_zh": p.message_zh,
                        "message_en": p.message_en,
                    }
                    for p in run.problems
                ],
            )
            session.add(
                BatchEventRecord(
                    batch_id=batch.id,
                    event=BatchEvent.REJECT,
                    from_state=BatchState.RECEIVED,
                    to_state=BatchState.REJECTED,
                    actor=f"upstream:{client_id}",
                    at=now,
                    detail={"errors": len(run.problems)},
                )
            )
            session.commit()
            log.info("intake.rejected", batch_no=batch_no, errors=len(run.problems))
            return IntakeAnswer(422, batch_answer(session, batch))


def count_by_state(session: Session, batch_id: int) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(PaymentItem.state, func.count(), func.coalesce(func.sum(PaymentItem.amount_fen), 0))
        .where(PaymentItem.batch_id == batch_id)
        .group_by(PaymentItem.state)
    ).all()
    return {state: (int(n), int(total)) for state, n, total in rows}
