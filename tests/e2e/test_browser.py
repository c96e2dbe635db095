"""End to end in a real browser (Chromium driven by Playwright) against the live server: an officer reviews and
overrides a denial, compliance exports decisions and verifies the audit chain and reads the fair-lending report on the
Boston Fed HMDA data, and a customer reads their private page with JavaScript off. Each test saves a full-page
screenshot under ``CANDOR_DATA_DIR/screenshots``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from audit.adverse import adverse_action_prepare, customer_link_issue, customer_link_url
from audit.explanations import explanation_record
from lending.models import Decision, ModelVersion, OfficerAction
from tests.conftest import demo_fields
from tests.e2e.workers import use_broker

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PASSWORD = "correct horse battery staple"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DENIAL = {"credit_score": 540, "revolving_utilization": 98, "delinquencies_2y": 4}
INTERNAL_NAMES = ("revolving_utilization", "credit_score", "delinquencies_2y", "inquiries_6m", "annual_income")


@pytest.fixture
def browser(transactional_db: None, live_server: Any) -> Iterator[Browser]:
    """Chromium for one test. Playwright's sync API keeps an event loop in this thread while it runs, so Django's
    async-safety guard is lifted until it stops (which is before the test database is flushed)."""
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        # While Playwright runs, asyncio sees a running loop in this thread, so Django keeps this thread's
        # database connections in a context variable instead of the thread-local (asgiref's thread-critical
        # Local). Connections the test opened live there: close them before the loop stops, or they are
        # orphaned, stay open, and PostgreSQL refuses to drop the test database at the end of the session.
        connections.close_all()
        playwright.stop()
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(autouse=True)
def quiet_broker(tmp_path: Path) -> Iterator[None]:
    """No worker runs here: follow-up tasks the app publishes go to a throwaway filesystem queue, and the test
    computes what it needs synchronously."""
    folder = tmp_path / "broker"
    for sub in ("in", "processed", "control"):
        (folder / sub).mkdir(parents=True)
    use_broker("filesystem://", {"data_folder_in": str(folder / "in"), "data_folder_out": str(folder / "in"),
                                 "processed_folder": str(folder / "processed"),
                                 "control_folder": str(folder / "control"), "store_processed": False})
    yield
    use_broker(settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)


def screenshot(page: Page, name: str) -> Path:
    folder = Path(settings.CANDOR_DATA_DIR) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def submit(client: Client, **overrides: Any) -> Decision:
    response = client.post("/api/v1/applications", content_type="application/json",
                           data=json.dumps({"product": "demo", "fields": demo_fields(**overrides)}))
    assert response.status_code == 201, response.content
    return Decision.objects.get(public_id=response.json()["id"])


def log_in(page: Page, base_url: str, user: User) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.locator("#id_username").fill(user.get_username())
    page.locator("#id_password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Log in")).to_have_count(0)


def test_an_officer_reviews_and_overrides_a_denial(
        transactional_db: None, live_server: Any, approved_demo: ModelVersion, officer: User,
        client_for: Callable[[User], Client], context: BrowserContext) -> None:
    client = client_for(officer)
    submit(client, applicant_name="Avery Approved", credit_score=790, revolving_utilization=8)
    denied = submit(client, applicant_name="Dana Denied", **DENIAL)
    assert denied.outcome == Decision.Outcome.DENIED
    explanation_record(decision_id=denied.pk)

    page = context.new_page()
    log_in(page, live_server.url, officer)
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    row = page.locator("tbody tr", has_text="Dana Denied")
    expect(row).to_contain_text("Denied")
    expect(page.locator("tbody tr", has_text="Avery Approved")).to_contain_text("Approved")
    screenshot(page, "officer-queue")

    row.get_by_role("link", name=re.compile("Open")).click()
    page.wait_for_url(f"**/decisions/{denied.public_id}/")
    expect(page.locator("h1")).to_contain_text("Dana Denied")
    expect(page.locator("h1 .badge")).to_have_text("Denied")
    expect(page.get_by_role("heading", name="Why: the explanation")).to_be_visible()
    waterfall = page.locator(".card svg").first
    expect(waterfall).to_be_visible()
    assert waterfall.bounding_box()["width"] > 100  # type: ignore[index]
    reasons = page.get_by_role("heading", name=re.compile("Factors against approval|Principal reasons stated"))
    expect(reasons).to_be_visible()
    reason_items = reasons.locator("xpath=..").locator("ol li")
    assert reason_items.count() >= 1
    expect(reason_items.first).not_to_have_text("None")
    expect(page.get_by_text("Additivity: passed")).to_be_visible()
    screenshot(page, "officer-decision")

    page.get_by_label("Override the model's outcome").check()
    page.locator("textarea[name=comment]").fill("Verified recent payoff of the revolving balance with the bank.")
    page.get_by_role("button", name="Record my decision").click()
    page.wait_for_url(f"**/decisions/{denied.public_id}/")
    expect(page.get_by_text("Your decision is recorded.")).to_be_visible()
    expect(page.locator("h1 .badge")).to_have_text("Approved by an officer")
    expect(page.get_by_role("heading", name="Officer actions")).to_be_visible()
    expect(page.get_by_text(re.compile(r"olivia_officer: Override"))).to_be_visible()
    screenshot(page, "officer-overridden")

    action = OfficerAction.objects.get(decision=denied)
    assert (action.officer_id, action.action, action.outcome) == (officer.pk, "override", "approved")

    page.goto(f"{live_server.url}/decisions/")
    expect(page.locator("tbody tr", has_text="Dana Denied")).to_contain_text("Decided by an officer")


def test_compliance_exports_decisions_and_verifies_the_audit_chain(
        transactional_db: None, live_server: Any, approved_demo: ModelVersion, officer: User, compliance: User,
        client_for: Callable[[User], Client], context: BrowserContext, tmp_path: Path) -> None:
    client = client_for(officer)
    submit(client, applicant_name="Avery Approved", credit_score=790, revolving_utilization=8)
    submit(client, applicant_name="Dana Denied", **DENIAL)

    page = context.new_page()
    log_in(page, live_server.url, compliance)
    page.goto(f"{live_server.url}/compliance/exports/")
    expect(page.get_by_role("heading", name="Exports", exact=True)).to_be_visible()
    expect(page.get_by_text("No exports yet.")).to_be_visible()
    page.locator("#id_product").select_option("demo")
    page.get_by_role("button", name="Export").click()
    page.wait_for_url("**/compliance/exports/")
    row = page.locator("tbody tr").first
    expect(row).to_contain_text("product=demo")
    expect(row).to_contain_text("Done")
    expect(row).to_contain_text("2 / 2")
    screenshot(page, "compliance-exports")

    with page.expect_download() as info:
        row.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename.endswith(".zip")
    path = tmp_path / download.suggested_filename
    download.save_as(str(path))
    with zipfile.ZipFile(path) as zf:
        assert set(zf.namelist()) == {"decisions.csv", "decisions.jsonl", "summary.pdf", "manifest.json"}
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["rows"] == 2
        assert manifest["filters"]["product"] == "demo"
        assert {f["name"] for f in manifest["files"]} == {"decisions.csv", "decisions.jsonl", "summary.pdf"}
        for entry in manifest["files"]:
            body = zf.read(entry["name"])
            assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["name"]
            assert len(body) == entry["size"], entry["name"]
        assert len(zf.read("decisions.csv").decode("utf-8").strip().splitlines()) == 3  # header and two rows

    page.goto(f"{live_server.url}/compliance/audit/")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.locator("#head-hash")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    # The head is kept outside the system: downloaded, it names the hash the page shows.
    with page.expect_download() as head_info:
        page.get_by_role("link", name="Download the head as JSON").click()
    head_path = tmp_path / head_info.value.suggested_filename
    head_info.value.save_as(str(head_path))
    kept = json.loads(head_path.read_text(encoding="utf-8"))
    assert kept["hash"] == page.locator("#head-hash").inner_text()
    assert head_info.value.suggested_filename == f"candor-audit-head-{kept['sequence']}.json"
    page.get_by_role("button", name="Verify now").click()
    result = page.locator("#verify-result")
    expect(result).to_contain_text("Intact")
    expect(result).to_contain_text(f"up to sequence {kept['sequence']} with hash {kept['hash']}")
    screenshot(page, "compliance-audit-verified")


def test_compliance_reads_the_fair_lending_report_on_the_boston_hmda_data(
        transactional_db: None, live_server: Any, hmda: ModelVersion, compliance: User,
        context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, live_server.url, compliance)
    page.get_by_role("link", name="Fair lending").click()
    expect(page.get_by_role("heading", name="Fair-lending report")).to_be_visible()
    page.locator("#f-product").select_option("hmda-boston")
    page.get_by_label("Reference dataset").check()
    page.get_by_role("button", name="Show report").click()
    page.wait_for_url("**/compliance/fairness/?*dataset=1*")
    model_report = page.locator("section", has=page.get_by_role("heading", name=re.compile("scored by model")))
    expect(model_report).to_contain_text("n = 2380 decisions")
    race = model_report.locator("table", has_text="Protected group").first
    air = race.locator("tbody tr", has_text="African American").first.locator("td.num").first
    expect(air).to_have_text(re.compile(r"^0\.\d{3}\[0\.\d{3}, [01]\.\d{3}\]$"))
    chart = model_report.locator(".chart svg")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(page.get_by_role("heading", name=re.compile("historical lender decisions"))).to_be_visible()
    screenshot(page, "compliance-fair-lending-hmda")


def customer_link_for_a_denial(client: Client) -> tuple[Decision, str]:
    """A denial with its explanation, its reasons stated and notice rendered, and a fresh private link."""
    denied = submit(client, applicant_name="Dana Denied", **DENIAL)
    assert denied.outcome == Decision.Outcome.DENIED
    explanation_record(decision_id=denied.pk)
    prepared = adverse_action_prepare(decision_id=denied.pk)
    assert prepared.statement is not None and prepared.notice is not None
    token, _link = customer_link_issue(decision=denied)
    return denied, customer_link_url(token, absolute=False)


def test_a_customer_reads_the_reasons_on_the_private_page_without_javascript(
        transactional_db: None, live_server: Any, approved_demo: ModelVersion, officer: User,
        client_for: Callable[[User], Client], browser: Browser) -> None:
    _denied, path = customer_link_for_a_denial(client_for(officer))
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1024, "height": 900})
    try:
        page = ctx.new_page()
        response = page.goto(live_server.url + path)
        assert response is not None and response.status == 200
        assert "/accounts/login/" not in page.url
        expect(page.get_by_role("heading", name="Your credit decision")).to_be_visible()
        expect(page.get_by_role("heading", name="Why we made this decision")).to_be_visible()
        reasons = page.locator("#reasons li")
        assert 1 <= reasons.count() <= 4
        expect(reasons.first).to_be_visible()
        expect(page.get_by_text("We were unable to approve your application")).to_be_visible()
        expect(page.get_by_role("heading", name="Your rights")).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_visible()
        text = page.locator("body").inner_text()
        for name in INTERNAL_NAMES:
            assert name not in text, name
        assert "<script" not in page.content().lower()
        screenshot(page, "customer-page")
    finally:
        ctx.close()


def test_a_customer_asks_for_a_review_from_the_private_page_without_javascript(
        transactional_db: None, live_server: Any, approved_demo: ModelVersion, officer: User,
        client_for: Callable[[User], Client], browser: Browser) -> None:
    denied, path = customer_link_for_a_denial(client_for(officer))
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 1024, "height": 900})
    try:
        page = ctx.new_page()
        page.goto(live_server.url + path)
        page.get_by_label("Ask for a person to review the decision").check()
        page.get_by_role("button", name="Send").click()
        page.wait_for_load_state()
        screenshot(page, "customer-page-request-sent")
        expect(page.get_by_role("status")).to_contain_text("We have received your request", timeout=5_000)
    finally:
        ctx.close()
    assert denied.customer_requests.count() == 1  # type: ignore[attr-defined]
