"""One payment item (明细): its facts (masked), events, bank results, SMS notices, operator
cases, discrepancies, correction lists, refunds and re-issue links — and, on a form post
with a stated reason, the person's data in clear (audited as ``pii.unmask``).

Also a person's payment history (个人发放记录, ``/people``): every item of one ID number,
found through the blind index (``gateway.rework.history``). The ID number is posted (never
in a URL) and never written back into the page; entries of other regions are counted, not
shown."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from gateway.dashboard import queries_overview as q
from gateway.dashboard.web import (
    FormRejected,
    NotFound,
    Viewer,
    audit,
    check_region,
    checked_form,
    ctx_of,
    form_text,
    payments_viewer,
    render,
    unit_of_work,
)
from gateway.kit.identity import id_number_problem, normalize_id_number
from gateway.rework.errors import InvalidIdNumberError
from gateway.rework.history import PaymentChain, payment_history

router = APIRouter()


def _facts(session: Session, viewer: Viewer, item_id: int) -> q.ItemFacts:
    found = q.find_item(session, item_id)
    if found is None:
        raise NotFound
    item, batch = found
    check_region(viewer, batch.region_code)
    return q.item_facts(session, item, batch)


@router.get("/items/{item_id:id}", response_class=HTMLResponse)
def item_page(
    request: Request,
    item_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    with unit_of_work(request) as s:
        facts = _facts(s, viewer, item_id)
        audit(s, viewer, "view.item", target_type="item", target_id=item_id)
    return render(
        request, "items_detail.html", viewer, f=facts, clear=None,
        **q.template_helpers(viewer.lang),
    )  # fmt: skip


@router.post("/items/{item_id:id}/unmask", response_class=HTMLResponse)
def item_unmask(
    request: Request,
    item_id: int,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    """The clear name, ID number, account number and phone, in this response only."""
    reason = form_text(form, "reason")
    with unit_of_work(request) as s:
        facts = _facts(s, viewer, item_id)
        if not reason:
            raise FormRejected(
                "reason_required",
                "查看完整个人信息必须填写理由",
                "a reason is required to show personal data in clear",
                back=f"/items/{item_id}",
            )
        clear = q.item_clear(ctx_of(request), facts.item)
        audit(
            s, viewer, "pii.unmask", target_type="item", target_id=item_id, reason=reason,
            detail={"fields": [name for name, value in clear.items() if value]},
        )  # fmt: skip
    return render(
        request, "items_detail.html", viewer, f=facts, clear=clear, unmask_reason=reason,
        **q.template_helpers(viewer.lang),
    )  # fmt: skip


# why an ID number is refused, for the person typing it
_ID_PROBLEMS = {
    "id_number_length": ("身份证号码应为18位", "an ID number has 18 characters"),
    "id_number_characters": (
        "身份证号码只能是数字，最后一位可以是X",
        "only digits, and X as the last character",
    ),
    "id_number_birth_date": ("身份证号码中的出生日期无效", "the birth date in it is not a date"),
    "id_number_check_digit": ("身份证号码校验位不符，请核对", "the check character does not match"),
}


@router.get("/people", response_class=HTMLResponse)
def people_page(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
) -> Response:
    return render(request, "people.html", viewer, chains=None, error=None)


@router.post("/people", response_class=HTMLResponse)
def people_lookup(
    request: Request,
    viewer: Viewer = Depends(payments_viewer),  # noqa: B008
    form: FormData = Depends(checked_form),  # noqa: B008
) -> Response:
    ctx = ctx_of(request)
    id_number = normalize_id_number(form_text(form, "id_number", max_len=64))
    try:
        found = payment_history(ctx, id_number, operator=viewer.actor)
    except InvalidIdNumberError as exc:
        zh, en = _ID_PROBLEMS.get(
            id_number_problem(id_number) or "", (exc.message_zh, exc.message_en)
        )
        if not id_number:
            zh, en = "请输入身份证号码", "enter an ID number"
        return render(
            request, "people.html", viewer, status_code=400, chains=None,
            error=(f"身份证号码无效：{zh}", f"invalid ID number: {en}"),
        )  # fmt: skip
    chains: list[PaymentChain] = []
    hidden = 0
    for chain in found.chains:
        shown = [e for e in chain.entries if viewer.principal.may_see_region(e.region_code)]
        hidden += len(chain.entries) - len(shown)
        if shown:
            chains.append(PaymentChain(shown))
    with unit_of_work(request) as s:
        audit(
            s, viewer, "view.people", target_type="person",
            target_id=ctx.pii.blind_index("id_number", id_number),
            detail={"shown": sum(len(c.entries) for c in chains), "other_regions": hidden},
        )  # fmt: skip
    return render(
        request, "people.html", viewer, chains=chains, hidden=hidden,
        id_masked=found.id_number_masked, error=None, **q.template_helpers(viewer.lang),
    )  # fmt: skip
