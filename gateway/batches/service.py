"""Intake (受理) of upstream batches: stream, validate, encrypt, write in bulk, idempotently.

The request body has been spooled to a file by the endpoint (memory stays bounded whatever
the batch size); this service reads it with a streaming reader — once for the header, once
streaming the items — and writes items in chunks with one multi-row statement per chunk.
Everything happens in one transaction: a batch is either accepted whole or stored as
rejected with every reason, never half-applied.

The rules are in ``docs/intake.md``. In short: whatever the batch's bank profile could not
render is refused here, with the field named (the format's own ``check_header`` and
``check_item``, or for an API bank the JSON document's renderer itself); an amount that is
not valid is never added to any total, and every total stored fits its column; warnings
(worth a look, not a refusal) are answered and kept; the idempotency key is the canonical
content (``gateway.batches.content_key``), not the raw bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from adapters.api.documents import render_disbursement
from gateway.batches.content_key import ContentKey
from gateway.batches.errors import Problem
from gateway.batches.models import (
    Batch,
    BatchError,
    BatchEventRecord,
    BatchWarning,
    ItemEventRecord,
    PaymentItem,
)
from gateway.batches.validation import (
    MAX_ITEMS,
    AgeCheck,
    HeaderData,
    ItemData,
    ReissueRef,
    batch_no_of,
    item_amount,
    validate_header,
    validate_item,
)
from gateway.dispatch.calendar import UnknownYearError, WorkingCalendar, dispatch_day
from gateway.kit import boundedjson
from gateway.kit.boundedjson import JsonLimitError
from gateway.kit.clock import china_today, utcnow
from gateway.kit.identity import text_problem
from gateway.kit.ids import item_serial, new_batch_serial
from gateway.kit.logging import get_logger
from gateway.kit.money import MAX_TOTAL_FEN
from gateway.kit.pii import PiiCipher, mask_account, mask_id_number, mask_name, mask_phone
from gateway.payments.states import BatchEvent, BatchState, ItemEvent, ItemState, item_sources
from gateway.ports import FieldError, FormatError, RequestHeader, RequestItem
from gateway.profiles import BankProfile
from gateway.selfcheck.config import DEFAULT_AGE_RULES, AgeRule, SelfCheckConfig, period_end

log = get_logger(__name__)
CHUNK = 2000
#: Problems listed in one answer (and stored); ``error_count`` counts them all.
MAX_ERRORS = 1000
#: Warnings listed in one answer (and stored); ``warning_count`` counts them all.
MAX_WARNINGS = 1000
_INT32_MAX = 2**31 - 1

# the request header's fields as the upstream calls them (format FieldErrors name the port's)
_HEADER_FIELD_OF = {"total_fen": "total_amount_fen", "item_count": "item_count"}
_UPSTREAM_HEADER_FIELDS = frozenset(
    {"payer_account", "subsidy_code", "subsidy_name", "period", "payer_name"}
)


@dataclass
class IntakeAnswer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class MalformedRequestError(ValueError):
    """The body is not JSON of the expected shape, or is beyond the reader's limits
    (``gateway.kit.boundedjson``); nothing is stored. ``code`` and ``field`` (the path of
    the value, e.g. ``items[3].name``) are machine-readable."""

    def __init__(
        self,
        code: str,
        field: str,
        message_en: str,
        message_zh: str,
        limit: int | None = None,
        unit: str | None = None,
    ) -> None:
        super().__init__(message_en)
        self.code = code
        self.field = field
        self.message_en = message_en
        self.message_zh = message_zh
        self.limit = limit
        self.unit = unit

    @classmethod
    def of(cls, exc: JsonLimitError) -> MalformedRequestError:
        return cls(exc.code, exc.path, exc.message_en, exc.message_zh, exc.limit, exc.unit)


def _json_limits() -> boundedjson.JsonLimits:
    """The reader's limits for a batch (``docs/api-limits.md``)."""
    return boundedjson.JsonLimits(max_items=MAX_ITEMS)


@functools.lru_cache(maxsize=4)
def configured_age_rules(selfcheck_file: Path | None) -> tuple[AgeRule, ...]:
    """The subsidies' age rules of the self-check configuration (``GATEWAY_SELFCHECK_FILE``),
    read once. A file that cannot be read is logged and the built-in rules apply (the
    self-check itself reports the error when it runs)."""
    try:
        return tuple(SelfCheckConfig.load(selfcheck_file).age_rules)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("intake.age_rules_unreadable", error=str(exc))
        return tuple(DEFAULT_AGE_RULES)


def claim_key(pii: PiiCipher, id_number: str, subsidy_code: str, period: str) -> str:
    """Blind key of (person, subsidy item, period): unique among standing items."""
    return pii.blind_index("claim", f"{id_number}|{subsidy_code}|{period}")


def _problem_row(e: BatchError | BatchWarning) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": e.seq,
        "field": e.field,
        "code": e.code,
        "message_zh": e.message_zh,
        "message_en": e.message_en,
    }
    limit = getattr(e, "limit_value", None)
    if limit is not None:
        out["limit"] = int(limit)
        out["unit"] = getattr(e, "limit_unit", None)
    return out


def batch_answer(session: Session, batch: Batch) -> dict[str, Any]:
    errors = session.scalars(
        select(BatchError).where(BatchError.batch_id == batch.id).order_by(BatchError.id)
    ).all()
    warnings = session.scalars(
        select(BatchWarning).where(BatchWarning.batch_id == batch.id).order_by(BatchWarning.id)
    ).all()
    return {
        "batch_no": batch.batch_no,
        "state": batch.state,
        "serial": batch.serial if batch.state != BatchState.REJECTED else None,
        "item_count": batch.item_count,
        "total_fen": batch.total_fen,
        "received_at": batch.received_at.isoformat() + "Z",
        "error_count": batch.error_count,
        "errors": [_problem_row(e) for e in errors],
        "warning_count": batch.warning_count or 0,
        "warnings": [_problem_row(w) for w in warnings],
    }


def invalid_answer(problems: Sequence[Problem]) -> dict[str, Any]:
    """The answer to a body that has no usable batch number (nothing is stored)."""
    return {
        "state": "invalid",
        "error_count": len(problems),
        "errors": [p.as_dict() for p in problems[:MAX_ERRORS]],
        "warning_count": 0,
        "warnings": [],
    }


def _status_for(batch: Batch) -> int:
    return 422 if batch.state == BatchState.REJECTED else 201


@dataclass
class _Run:
    """State of one intake pass over the items."""

    header: HeaderData | None
    profile: BankProfile | None
    today: dt.date
    problems: list[Problem] = field(default_factory=list)  # the header's: all kept
    final: list[Problem] = field(default_factory=list)  # the whole batch's: all kept
    item_problems: list[Problem] = field(default_factory=list)  # the first MAX_ERRORS
    item_problem_count: int = 0
    warnings: list[Problem] = field(default_factory=list)  # the first MAX_WARNINGS
    warning_count: int = 0
    seqs: set[int] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    reissue_targets: dict[int, int] = field(default_factory=dict)  # target item id → seq
    count: int = 0
    total: int = 0  # of valid amounts only
    pending: list[ItemData] = field(default_factory=list)
    format_check: Callable[[ItemData], list[Problem]] | None = None
    ages: AgeCheck | None = None
    key: ContentKey = field(default_factory=ContentKey)

    @property
    def failed(self) -> bool:
        return bool(self.problems or self.item_problem_count or self.final)

    def refuse(self, problems: Sequence[Problem]) -> None:
        """Item-level problems: counted, the first MAX_ERRORS kept."""
        self.item_problem_count += len(problems)
        room = MAX_ERRORS - len(self.item_problems)
        if room > 0:
            self.item_problems += problems[:room]

    def warn(self, warnings: Sequence[Problem]) -> None:
        self.warning_count += len(warnings)
        room = MAX_WARNINGS - len(self.warnings)
        if room > 0:
            self.warnings += warnings[:room]

    @property
    def error_count(self) -> int:
        return len(self.problems) + self.item_problem_count + len(self.final)

    def listed(self) -> list[Problem]:
        """The problems to store and answer: the header's, the items' (the first
        MAX_ERRORS), the whole batch's."""
        return self.problems + self.item_problems + self.final


class IntakeService:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        pii: PiiCipher,
        profiles: dict[str, BankProfile],
        calendar: WorkingCalendar | None = None,
        *,
        age_rules: Sequence[AgeRule] | None = None,
    ) -> None:
        """``age_rules``: the subsidies' age rules (the self-check's, ``[selfcheck]``
        ``age_rules`` of ``GATEWAY_SELFCHECK_FILE``); a birth date outside them is a
        warning. None: the built-in rules."""
        self.sf = session_factory
        self.pii = pii
        self.profiles = profiles
        self.calendar = calendar or WorkingCalendar()
        self.age_rules: Sequence[AgeRule] = DEFAULT_AGE_RULES if age_rules is None else age_rules

    # --- entry point ----------------------------------------------------------------------

    def submit(self, client_id: str, body: IO[bytes], content_sha256: str) -> IntakeAnswer:
        """Take one batch. ``content_sha256`` is the SHA-256 of the raw body: the same bytes
        again are a replay without reading them again; other bytes are compared by their
        canonical content."""
        header_raw = self._read_header(body)
        batch_no = batch_no_of(header_raw)
        if batch_no is None:
            _, problems = validate_header(header_raw, self.profiles)
            problems = problems or [Problem("batch_no", "required")]
            return IntakeAnswer(422, invalid_answer(problems))
        key: str | None = None
        for _attempt in range(3):
            seen = self._existing(client_id, batch_no)
            if seen is not None:
                batch_id, raw_sha, stored_key = seen
                same = raw_sha == content_sha256
                if not same and stored_key is not None:
                    if key is None:
                        key = self._content_key(header_raw, body)
                    same = stored_key == key
                return self._existing_answer(batch_id, batch_no, same)
            try:
                return self._intake(client_id, batch_no, header_raw, body, content_sha256)
            except IntegrityError:
                # A concurrent submission of the same batch number, or a concurrent batch
                # claiming the same person: its commit is visible now, look again.
                log.info("intake.race_retry", batch_no=batch_no)
                continue
        raise RuntimeError("intake kept racing with concurrent submissions")

    def _read_header(self, body: IO[bytes]) -> Any:
        """The header, after reading the whole body once with every limit of the reader
        (depth, sizes, UTF-8, items): a body that breaks one is refused here, before any
        transaction is open."""
        try:
            return boundedjson.scan(body, _json_limits()).header
        except boundedjson.JsonLimitError as exc:
            raise MalformedRequestError.of(exc) from None

    def _existing(self, client_id: str, batch_no: str) -> tuple[int, str, str | None] | None:
        """(id, raw body SHA-256, content key) of the batch with this number, if any."""
        with self.sf() as session:
            row = session.execute(
                select(Batch.id, Batch.content_sha256, Batch.content_key).where(
                    Batch.client_id == client_id, Batch.batch_no == batch_no
                )
            ).first()
        if row is None:
            return None
        return int(row[0]), str(row[1]), row[2]

    def _content_key(self, header_raw: Any, body: IO[bytes]) -> str:
        """The canonical content key of a body, in one streaming pass over its items."""
        key = ContentKey()
        key.header(header_raw)
        for raw in self._items(body):
            key.item(raw)
        return key.hexdigest()

    def _existing_answer(self, batch_id: int, batch_no: str, same: bool) -> IntakeAnswer:
        with self.sf() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None  # noqa: S101 (batches are never deleted)
            if not same:
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
                                "message_zh": "该批次号已提交过且内容不同；"
                                "批次号不能重复使用（被拒绝的批次也是），请使用新的批次号",
                                "message_en": "this batch number was already submitted "
                                "with different content; a batch number is never reused "
                                "(a rejected batch's neither): use a new batch number",
                            }
                        ],
                    },
                )
            return IntakeAnswer(_status_for(batch), batch_answer(session, batch), replayed=True)

    # --- the pass -------------------------------------------------------------------------

    def _intake(
        self, client_id: str, batch_no: str, header_raw: Any, body: IO[bytes], sha: str
    ) -> IntakeAnswer:
        today = china_today()
        header_warnings: list[Problem] = []
        header, header_problems = validate_header(
            header_raw, self.profiles, warnings=header_warnings
        )
        profile = self.profiles.get(header.bank_profile) if header else None
        run = _Run(header=header, profile=profile, today=today, problems=list(header_problems))
        run.warn(header_warnings)
        run.key.header(header_raw)
        if header is not None and profile is not None:
            run.problems += self._header_format_check(header, profile, today)
            rules = [
                r for r in self.age_rules if r.applies_to(header.subsidy_code, header.subsidy_name)
            ]
            if rules:
                run.ages = AgeCheck(rules, period_end(header.period, header.fiscal_year))
        run.format_check = self._format_check(profile, today)
        actor = f"upstream:{client_id}"
        now = utcnow()
        session = self.sf()
        try:
            batch = Batch(
                client_id=client_id,
                batch_no=batch_no,
                content_sha256=sha,
                state=BatchState.RECEIVED,
                serial=new_batch_serial(today),
                received_at=now,
                updated_at=now,
                **self._header_columns(header, header_raw),
            )
            session.add(batch)
            session.flush()
            for raw in self._items(body):
                self._take_item(session, batch, run, raw)
            self._flush_chunk(session, batch, run)
            self._batch_checks(run)
            content_key = run.key.hexdigest()
            if run.failed:
                session.rollback()
                return self._store_rejected(
                    client_id, batch_no, header, header_raw, sha, content_key, run
                )
            batch.content_key = content_key
            self._accept(session, batch, run, actor, now)
            session.commit()
            answer = batch_answer(session, batch)
            log.info(
                "intake.accepted",
                batch_no=batch_no,
                serial=batch.serial,
                items=run.count,
                total_fen=run.total,
                warnings=run.warning_count,
            )
            return IntakeAnswer(201, answer)
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @staticmethod
    def _batch_checks(run: _Run) -> None:
        """Counts and totals of the whole batch, once every item has been read."""
        if run.count > MAX_ITEMS:
            run.final.append(Problem("items", "too_many_items", limit=MAX_ITEMS, unit="items"))
        if run.total > MAX_TOTAL_FEN:
            run.final.append(
                Problem("total_amount", "total_too_large", limit=MAX_TOTAL_FEN, unit="fen")
            )
        header = run.header
        if header is None:
            return
        if run.count == 0:
            run.final.append(Problem("items", "no_items"))
        if run.count != header.item_count:
            run.final.append(
                Problem("item_count", "count_mismatch", detail=f"{run.count} ≠ {header.item_count}")
            )
        # the sum of the valid amounts (an invalid one is in no sum)
        if run.total <= MAX_TOTAL_FEN and run.total != header.total_fen:
            run.final.append(
                Problem(
                    "total_amount", "total_mismatch", detail=f"{run.total} ≠ {header.total_fen}"
                )
            )

    def _items(self, body: IO[bytes]) -> Iterator[Any]:
        try:
            yield from boundedjson.iter_items(body, _json_limits())
        except boundedjson.JsonLimitError as exc:
            raise MalformedRequestError.of(exc) from None

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
            # only text that any database can store (no NUL, no lone surrogate)
            v = raw.get(key)
            return v[:n] if isinstance(v, str) and text_problem(v[:n]) is None else ""

        def i(key: str, limit: int) -> int:
            v = raw.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= limit else 0

        return {
            "region_code": s("region_code", 12),
            "subsidy_code": s("subsidy_code", 12),
            "subsidy_name": s("subsidy_name", 100),
            "period": s("period", 8),
            "fiscal_year": i("fiscal_year", 9999),
            "payer_account": s("payer_account", 32),
            "payer_name": s("payer_name", 100),
            "bank_profile": s("bank_profile", 32),
            "declared_count": i("item_count", _INT32_MAX),
            "declared_total_fen": i("total_amount_fen", MAX_TOTAL_FEN),
        }

    # --- what the bank profile can carry ----------------------------------------------------

    @staticmethod
    def _probe_header(header: HeaderData, today: dt.date, total: int) -> RequestHeader:
        return RequestHeader(
            batch_serial="0" * 16,
            file_no=1,
            payer_account=header.payer_account,
            subsidy_code=header.subsidy_code,
            subsidy_name=header.subsidy_name,
            period=header.period,
            item_count=1,
            total_fen=total,
            created_on=today,
            payer_name=header.payer_name,
        )

    @staticmethod
    def _probe_item(item: ItemData) -> RequestItem:
        return RequestItem(
            seq=1,
            serial="0" * 24,
            account_no=item.account_no,
            name=item.name,
            id_number=item.id_number,
            amount_fen=item.amount_fen,
            remark=item.remark or "",
        )

    @staticmethod
    def _from_field_error(e: FieldError, seq: int | None, profile: BankProfile) -> Problem:
        return Problem(
            e.field_name,
            e.code,
            seq,
            detail=profile.name,
            limit=e.limit,
            unit=e.unit,
            source="format",
        )

    def _header_format_check(
        self, header: HeaderData, profile: BankProfile, today: dt.date
    ) -> list[Problem]:
        """What the profile's renderer would refuse in the header (every file repeats it)."""
        probe = self._probe_header(header, today, header.total_fen)
        errors: list[FieldError] = []
        if profile.is_api:
            sample = RequestItem(
                1, "0" * 24, "6217990000000000000", "张三", "11010519491231002X", 1
            )
            try:
                render_disbursement(
                    dataclasses.replace(probe, total_fen=1),
                    [sample],
                    payer_name=_api_payer_name(profile),
                    max_items=1,
                )
            except FieldError as exc:
                errors.append(exc)
            except FormatError:  # pragma: no cover (the probe's counts and serials are right)
                errors.append(FieldError("header", field_name="header", code="invalid"))
        else:
            errors = profile.format.check_header(probe)
        out = []
        for e in errors:
            name = _HEADER_FIELD_OF.get(e.field_name, e.field_name)
            if name not in _UPSTREAM_HEADER_FIELDS and name not in _HEADER_FIELD_OF.values():
                name = "header"
            out.append(dataclasses.replace(self._from_field_error(e, None, profile), field=name))
        return out

    def _format_check(
        self, profile: BankProfile | None, today: dt.date
    ) -> Callable[[ItemData], list[Problem]] | None:
        if profile is None:
            return None
        if profile.is_api:
            payer_name = _api_payer_name(profile)
            base = RequestHeader(
                batch_serial="0" * 16,
                file_no=1,
                payer_account="0",
                subsidy_code="0",
                subsidy_name="0",
                period="0",
                item_count=1,
                total_fen=1,
                created_on=today,
                payer_name="0",
            )

            def check_api(item: ItemData) -> list[Problem]:
                probe = self._probe_item(item)
                try:
                    render_disbursement(
                        dataclasses.replace(base, total_fen=item.amount_fen),
                        [probe],
                        payer_name=payer_name,
                        max_items=1,
                    )
                except FieldError as exc:
                    return [self._from_field_error(exc, item.seq, profile)]
                except FormatError:
                    return [Problem("item", "invalid", item.seq, detail=profile.name)]
                return []

            return check_api
        fmt = profile.format

        def check(item: ItemData) -> list[Problem]:
            probe = dataclasses.replace(self._probe_item(item), seq=item.seq)
            return [self._from_field_error(e, item.seq, profile) for e in fmt.check_item(probe)]

        return check

    def _take_item(self, session: Session, batch: Batch, run: _Run, raw: Any) -> None:
        run.count += 1
        run.key.item(raw)
        if run.count > MAX_ITEMS:
            return  # counted (and refused as a whole), not validated
        warnings: list[Problem] = []
        item, problems = validate_item(
            raw,
            accounts_are_cards=bool(run.profile and run.profile.accounts_are_cards),
            format_check=run.format_check,
            today=run.today,
            ages=run.ages,
            warnings=warnings,
        )
        amount = item.amount_fen if item is not None else item_amount(raw)
        if amount is not None:  # an invalid amount is never added to any total
            run.total += amount
        run.warn(warnings)
        if problems:
            run.refuse(problems)
        if item is None:
            return
        if item.seq in run.seqs:
            run.refuse([Problem("seq", "seq_duplicate", item.seq)])
            return
        run.seqs.add(item.seq)
        person = self.pii.blind_index("id_number", item.id_number)
        if person in run.persons:
            run.refuse([Problem("id_number", "duplicate_person_in_batch", item.seq)])
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
                run.refuse([Problem("id_number", "already_paid_elsewhere", it.seq)])
        if run.failed:
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
            run.refuse([Problem("reissue_of", "reissue_target_missing", item.seq)])
            return None
        target_id, state, id_bidx, subsidy, period = row
        assert run.header is not None  # noqa: S101 (only called with a valid header)
        if (
            id_bidx != self.pii.blind_index("id_number", item.id_number)
            or subsidy != run.header.subsidy_code
            or period != run.header.period
        ):
            run.refuse([Problem("reissue_of", "reissue_person_differs", item.seq)])
            return None
        if state == ItemState.REISSUED:
            run.refuse([Problem("reissue_of", "reissue_target_already_reissued", item.seq)])
            return None
        if not ItemState(state).is_reissuable():
            run.refuse([Problem("reissue_of", "reissue_target_not_failed", item.seq, detail=state)])
            return None
        if target_id in run.reissue_targets:
            run.refuse([Problem("reissue_of", "reissue_duplicate_target", item.seq)])
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
        batch.warning_count = run.warning_count
        self._insert_warnings(session, batch.id, run)
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

    @staticmethod
    def _insert_warnings(session: Session, batch_id: int, run: _Run) -> None:
        if run.warnings:
            session.execute(
                insert(BatchWarning),
                [
                    {
                        "batch_id": batch_id,
                        "seq": w.seq,
                        "field": w.field,
                        "code": w.code,
                        "message_zh": w.message_zh,
                        "message_en": w.message_en,
                    }
                    for w in run.warnings
                ],
            )

    def _store_rejected(
        self,
        client_id: str,
        batch_no: str,
        header: HeaderData | None,
        header_raw: Any,
        sha: str,
        content_key: str,
        run: _Run,
    ) -> IntakeAnswer:
        """Keep the rejected batch with its reasons (the batch number stays taken: the same
        content again is answered the same; other content is a 409)."""
        now = utcnow()
        problems = run.listed()
        with self.sf() as session:
            batch = Batch(
                client_id=client_id,
                batch_no=batch_no,
                content_sha256=sha,
                content_key=content_key,
                state=BatchState.REJECTED,
                serial=None,
                # what was read, bounded by the columns: invalid amounts are in no total
                item_count=min(run.count, _INT32_MAX),
                total_fen=min(run.total, MAX_TOTAL_FEN),
                error_count=min(run.error_count, _INT32_MAX),
                warning_count=min(run.warning_count, _INT32_MAX),
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
                        "limit_value": p.limit,
                        "limit_unit": p.unit,
                    }
                    for p in problems
                ],
            )
            self._insert_warnings(session, batch.id, run)
            session.add(
                BatchEventRecord(
                    batch_id=batch.id,
                    event=BatchEvent.REJECT,
                    from_state=BatchState.RECEIVED,
                    to_state=BatchState.REJECTED,
                    actor=f"upstream:{client_id}",
                    at=now,
                    detail={"errors": run.error_count},
                )
            )
            session.commit()
            log.info("intake.rejected", batch_no=batch_no, errors=run.error_count)
            return IntakeAnswer(422, batch_answer(session, batch))


def count_by_state(session: Session, batch_id: int) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(PaymentItem.state, func.count(), func.coalesce(func.sum(PaymentItem.amount_fen), 0))
        .where(PaymentItem.batch_id == batch_id)
        .group_by(PaymentItem.state)
    ).all()
    return {state: (int(n), int(total)) for state, n, total in rows}


def _api_payer_name(profile: BankProfile) -> str | None:
    """The API profile's fallback payer name (``[api] payer_name``), if it has one."""
    value = profile.api_config.get("payer_name")
    return value if isinstance(value, str) else None
