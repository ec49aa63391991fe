"""No page and no export shows a clear ID number, account number, phone number or full name
unless someone unmasked it on purpose: a crawl of every page reachable from the dashboard's
links, as each role that sees payment data, with every XLSX it links to opened and read."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from openpyxl import load_workbook

from gateway.dashboard.web import PAGE_SIZE
from gateway.rework.corrections import export_correction_list
from gateway.selfcheck.service import run_selfcheck
from tests.gateway.dashboard.support import DashClient
from tests.gateway.helpers import persons
from tests.gateway.rework.support import batch, bounce, fail, item, pay

PEOPLE = persons(12, seed=91)
HREF = re.compile(r'href="([^"#]+)"')
# never followed: they change the session or only switch the language
SKIP = ("/dashboard/logout", "/dashboard/lang/", "/dashboard/static/")


def _secrets() -> dict[str, str]:
    out: dict[str, str] = {}
    for p in PEOPLE:
        out[p.id_number] = "ID number"
        out[p.account_no] = "account number"
        out[p.phone] = "phone number"
        if len(p.name) >= 3:
            out[p.name] = "name"
    return out


def _plant(ctx: Any) -> None:
    batch(ctx, "PII-1", PEOPLE[:8])
    pay(ctx, "PII-1", [1, 2, 3])
    fail(ctx, "PII-1", [4, 5])
    fail(ctx, "PII-1", [6], code="name_mismatch", bank=("E102", "户名不符"))
    pay(ctx, "PII-1", [7])
    bounce(ctx, "PII-1", [7])
    batch(ctx, "PII-2", PEOPLE[8:], region="430621102")
    fail(ctx, "PII-2", [1])
    run_selfcheck(ctx, requested_by="test")
    # a correction list, so its printable page is crawled too
    export_correction_list(ctx, operator="op", batch_nos=["PII-1"])


def _xlsx_text(data: bytes) -> str:
    book = load_workbook(io.BytesIO(data))
    return "\n".join(
        str(c) for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row
    )


def _crawl(client: DashClient, start: str, limit: int = 400) -> dict[str, str]:
    """Every dashboard page (and XLSX) reachable by links from ``start``: url → text."""
    seen: dict[str, str] = {}
    queue = [start]
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        response = client.http.get(url, follow_redirects=True)
        assert response.status_code in {200, 403, 404}, (url, response.status_code)
        kind = response.headers.get("content-type", "")
        if "spreadsheetml" in kind:
            seen[url] = _xlsx_text(response.content)
            continue
        seen[url] = response.text
        for href in HREF.findall(response.text):
            target = urljoin(url, href.replace("&amp;", "&"))
            parts = urlsplit(target)
            path = parts.path + ("?" + parts.query if parts.query else "")
            if parts.path.startswith("/dashboard") and not path.startswith(SKIP):
                queue.append(path)
    return seen


def _leaks(pages: dict[str, str]) -> list[tuple[str, str]]:
    return [
        (url, what) for url, text in pages.items() for value, what in _secrets().items()
        if value in text
    ]  # fmt: skip


def test_no_page_or_export_shows_clear_personal_data(
    ctx: Any, dash: Callable[[str], DashClient]
) -> None:
    _plant(ctx)
    assert PAGE_SIZE >= 8  # every planted item fits on the first page of each list
    for username in ("op", "sup", "aud"):
        client = dash(username)
        pages = _crawl(client, "/dashboard/overview")
        # the crawl reached the detail pages and a correction-list or self-check export
        assert any("/items/" in u for u in pages), sorted(pages)
        assert any("/batches/" in u for u in pages)
        assert any("/selfcheck/" in u for u in pages)
        assert any(u.endswith(".xlsx") for u in pages)
        assert any(u.endswith("/print") for u in pages)
        assert not _leaks(pages), _leaks(pages)


def test_unmasking_on_purpose_shows_the_data_and_only_there(
    ctx: Any, dash: Callable[[str], DashClient]
) -> None:
    """The crawl above can see clear data when it is there: the unmask page shows it."""
    _plant(ctx)
    client = dash("op")
    it = item(ctx, "PII-1", 4)
    shown = client.post(f"/items/{it.id}/unmask", {"reason": "核对户名，乡镇财政所来电"})
    assert shown.status_code == 200
    assert PEOPLE[3].id_number in shown.text
    assert PEOPLE[3].account_no in shown.text
    assert shown.headers["cache-control"] == "no-store"
    # and it stays on that one answer: the item page is masked again
    again = client.get(f"/items/{it.id}")
    assert PEOPLE[3].id_number not in again.text
