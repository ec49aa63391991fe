"""The operators' dashboard in a real browser: Debian's Chromium driven by Playwright against
``gateway demo --serve-only`` on the demo's own database (every batch, file, result, SMS
and self-check finding of a real demo run).

Screenshots of the main pages are written to a temporary directory, or to the directory
``GATEWAY_SCREENSHOTS_DIR`` names: ``make screenshots`` refreshes ``docs/screenshots/`` (the
README shows them) this way, so that the suite never rewrites files of the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from gateway.demo.data import people, round_two
from gateway.demo.serve import DEMO_PASSWORD
from tests.ports import reserve_port
from tests.waits import wait_until

# one demo run serves both modules: pytest-xdist (--dist loadgroup) keeps them on one worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

SEED = 20261128
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RAW_ID = re.compile(r"\b\d{17}[\dX]\b")


@pytest.fixture(scope="module")
def served(demo_run: tuple[dict[str, object], Path]) -> Iterator[str]:
    """``gateway demo --serve-only`` on the demo's database; yields the dashboard's URL."""
    _, workdir = demo_run
    port = reserve_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir.parent),
        # the demo's items are of fiscal year 2026: let this year's unpaid items be refunded
        "GATEWAY_REFUND_CUTOFF": "01-01",
    }
    log = (workdir / "logs" / "serve.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--serve-only", "--workdir", "run",
         "--port", str(port)],
        cwd=workdir.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (workdir / "logs" / "serve.out").read_text()
        return False

    try:
        wait_until(healthy, timeout=60, max_interval=0.2, what="the dashboard to start")
        yield base + "/dashboard"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _page(browser: Any) -> Any:
    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, locale="zh-CN", accept_downloads=True
    )
    return context.new_page()


def login(browser: Any, url: str, username: str) -> Any:
    page = _page(browser)
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url, page.content()[:2000]
    return page


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: GATEWAY_SCREENSHOTS_DIR, else a temporary directory."""
    named = os.environ.get("GATEWAY_SCREENSHOTS_DIR")
    directory = Path(named) if named else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def shot(shots: Path, page: Any, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def logout(page: Any) -> None:
    page.click("form[action$='/logout'] button")
    page.wait_for_load_state()
    assert "/login" in page.url
    page.context.close()


def _raw_secrets() -> set[str]:
    out: set[str] = set()
    persons = people(SEED, 80)
    for p in [*persons, *round_two(SEED, persons).people]:
        out |= {p.id_number, p.account_no, p.phone}
    return out


def _assert_masked(html: str) -> None:
    leaks = [s for s in _raw_secrets() if s in html]
    assert not leaks, f"unmasked personal data on the page: {len(leaks)} values"


def test_operator_exports_and_proposes_supervisor_approves_auditor_follows(
    served: str, browser: Any, shots: Path, tmp_path: Path
) -> None:
    op = login(browser, served, "county.op")
    assert op.url.endswith("/dashboard/overview")
    assert op.locator("h1").first.inner_text()
    _assert_masked(op.content())
    shot(shots, op, "overview")

    op.goto(served + "/batches")
    _assert_masked(op.content())
    shot(shots, op, "batches")
    op.locator("table a[href*='/batches/']").first.click()
    op.wait_for_load_state()
    _assert_masked(op.content())
    shot(shots, op, "batch")

    # find a failed payment: the account-name mismatch, with its reason and action
    op.goto(served + "/failed?reason=name_mismatch")
    queue = op.content()
    _assert_masked(queue)
    assert "户名不符" in queue
    assert "对照身份证核对姓名" in queue
    shot(shots, op, "failed")
    op.locator("input[name=item]").first.check()
    with op.expect_download() as download_info:
        op.click("button[name=action][value=export]")
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.suffix == ".xlsx"
    workbook = load_workbook(saved)
    cells = [
        str(c) for ws in workbook.worksheets for row in ws.iter_rows(values_only=True) for c in row
    ]
    text = "\n".join(cells)
    assert "户名不符" in text
    _assert_masked(text)
    assert not RAW_ID.search(text)

    # the item behind it: masked until unmasked with a reason (then audited)
    op.goto(served + "/failed?reason=name_mismatch")
    op.locator("table.failed-queue a[href*='/items/']").first.click()
    op.wait_for_load_state()
    _assert_masked(op.content())
    shot(shots, op, "item")

    # propose a treasury refund for an account that does not exist
    op.goto(served + "/failed?reason=account_not_found")
    op.locator("input[name=item]").first.check()
    op.fill("input[name=refund_reason]", "账户不存在且本年度无法更正，申请退回国库")
    op.click("button[name=action][value=refund]")
    op.wait_for_load_state()
    found = re.search(r"/refunds/\d+", op.url)
    assert found, op.url
    refund_url = served + found.group(0)
    assert "待复核" in op.content() or "proposed" in op.content()
    # the maker cannot approve: an operator sees no approval form at all
    assert op.locator("form[action$='/approve']").count() == 0
    logout(op)

    sup = login(browser, served, "county.sup")
    sup.goto(refund_url)
    sup.click("form[action$='/approve'] button[type=submit]")
    sup.wait_for_load_state()
    approved = sup.content()
    assert "已批准" in approved or "approved" in approved
    shot(shots, sup, "refund")
    sup.goto(served + "/inactive")
    shot(shots, sup, "inactive")
    logout(sup)

    # the auditor follows every step in the audit log
    aud = login(browser, served, "auditor")
    aud.goto(served + "/audit")
    trail = aud.content()
    for actor in ("county.op", "county.sup"):
        assert actor in trail
    shot(shots, aud, "audit")
    aud.goto(served + "/audit?actor=county.op")
    mine = aud.content()
    assert "login.ok" in mine
    assert "correction" in mine.lower() or "更正" in mine
    assert "refund" in mine.lower()
    aud.goto(served + "/audit?actor=county.sup")
    assert "refund" in aud.content().lower()
    logout(aud)


def test_township_user_sees_only_its_own_township(served: str, browser: Any) -> None:
    town = login(browser, served, "town101.op")
    town.goto(served + "/batches")
    listed = town.content()
    assert "430621101" in listed
    assert "430621102" not in listed
    assert "430621103" not in listed
    # a batch of another township answers "not found", even by its address
    county = login(browser, served, "county.op")
    county.goto(served + "/batches?region=430621102")
    link = county.locator("table a[href*='/batches/']").first.get_attribute("href")
    assert link
    other_batch = link.rsplit("/", 1)[-1]
    response = town.goto(served + "/batches/" + other_batch)
    assert response.status == 404
    assert "未找到" in town.content()
    logout(town)
    logout(county)


def test_auditor_reads_everything_but_cannot_act(served: str, browser: Any, shots: Path) -> None:
    aud = login(browser, served, "auditor")
    aud.goto(served + "/failed")
    page = aud.content()
    assert "户名不符" in page
    # no checkboxes, no action buttons
    assert aud.locator("input[name=item]").count() == 0
    assert aud.locator("button[name=action]").count() == 0
    # and a hand-made post is refused
    token = aud.locator("input[name=csrf_token]").first.get_attribute("value")
    response = aud.request.post(
        served + "/failed/actions",
        form={"csrf_token": token or "", "action": "refund", "scope": "filter",
              "refund_reason": "auditor tries"},
    )  # fmt: skip
    assert response.status == 403
    for path, name in (("/cases", "cases"), ("/sms", "sms"), ("/selfcheck", "selfcheck")):
        aud.goto(served + path)
        _assert_masked(aud.content())
        shot(shots, aud, name)
    # the latest self-check report with its five planted findings
    aud.goto(served + "/selfcheck")
    aud.locator("table a[href*='/selfcheck/']").first.click()
    aud.wait_for_load_state()
    report = aud.content()
    _assert_masked(report)
    shot(shots, aud, "selfcheck_report")
    logout(aud)


def test_administrator_manages_accounts_only(served: str, browser: Any, shots: Path) -> None:
    admin = login(browser, served, "admin")
    assert admin.url.endswith("/dashboard/accounts")
    shot(shots, admin, "accounts")
    response = admin.goto(served + "/failed")
    assert response.status == 403
    logout(admin)
