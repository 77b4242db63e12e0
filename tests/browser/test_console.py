"""The operator console in a real browser (Playwright driving Debian's Chromium) against the local stack.

One stack for the module, seeded as `make serve` seeds it: the demo's scenarios, initech.com's domain incident
and the Microsoft connector outage with its customer emails held. The tests click what an operator clicks, in
file order (the forged requests run before the real release), and write screenshots at 375 and 1,280 px under
out/console/ for a look by eye.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from account_doctor.settings import get_settings
from account_doctor.stores.dynamo import Table, dynamodb_client
from account_doctor.stores.ledger import NotificationLedger
from account_doctor_console.pages import build_sources
from account_doctor_console.serve import console_in_thread
from local_stack.demo import get_json, run_demo
from local_stack.incident_demo import OUTAGE_WAVES, seed_incidents
from local_stack.stack import RunningStack, StackOptions, running_stack
from tests.browser.chromium import FLAGS

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "console"
WIDTHS = {"phone": (375, 812), "desktop": (1280, 900)}
# A name the attacker controls, resolving to the operator's own machine (DNS rebinding).
REBOUND = "rebound.example"
HELD = list(OUTAGE_WAVES[-1])  # diagnosed once the incident was open: their emails are held


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(StackOptions(api_port=0)) as running:
        run_demo(running, out_dir=tmp_path_factory.mktemp("emails"), report=lambda _line: None)
        act = seed_incidents(running, report=lambda _line: None)
        assert not act.problems, act.problems
        yield running


@pytest.fixture(autouse=True)
def _stack_environment(stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack's environment for this test's own AWS clients (the shared autouse fixture resets it)."""
    for name, value in stack.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.moto.url)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def console(stack: RunningStack) -> Iterator[str]:
    with console_in_thread(build_sources(get_settings()), port=0) as url:
        yield url.rstrip("/")


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        yield launch(playwright, chromium)


def launch(playwright: Playwright, chromium: Path) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(chromium), args=[*FLAGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"]
    )


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def attacker() -> Iterator[dict[str, Any]]:
    """Another web site on this machine: it serves whatever page the test puts in `pages`."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"port": server.server_address[1], "pages": pages}
    server.shutdown()
    server.server_close()


def connector_incident(stack: RunningStack) -> dict[str, Any]:
    status, listing = get_json(f"{stack.api_url}/incidents?status=all")
    assert status == 200
    (found,) = [i for i in listing["incidents"] if i["kind"] == "connector"]
    return dict(found)


def shoot(page: Page, name: str) -> None:
    """Screenshots of the page at a phone's and a desktop's width; at 375 px nothing scrolls sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}px.png"), full_page=True)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} scrolls sideways on a {label} ({wide} px wide at {width} px)"
    page.set_viewport_size({"width": 1280, "height": 900})


def broken_count(stack: RunningStack) -> int:
    """The broken list as `GET /accounts?status=broken` answers it, every page."""
    total, cursor = 0, ""
    while True:
        status, answer = get_json(f"{stack.api_url}/accounts?status=broken&limit=100{cursor}")
        assert status == 200
        total += len(answer["accounts"])
        if not answer["next"]:
            return total
        cursor = f"&next={answer['next']}"


# ---------------------------------------------------------------------------------------------------------------


def test_the_overview_shows_the_broken_count_and_the_open_incidents(
    stack: RunningStack, console: str, page: Page
) -> None:
    page.goto(console + "/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    count = page.locator("#broken-count strong").inner_text()
    assert int(count) == broken_count(stack)
    incidents = page.get_by_role("region", name="Open incidents")
    expect(incidents.get_by_role("link", name="connector · microsoft")).to_be_visible()
    expect(incidents.get_by_role("link", name="domain · initech.com")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("Broken accounts by cause"))).to_be_visible()
    # The recovery report and the feed's health, from GET /reports/recovery and GET /health's own core calls.
    expect(page.get_by_role("img", name=re.compile("Failures and recoveries per day"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Webhook feed: \w+"))).to_be_visible()
    shoot(page, "overview")


def test_the_keyboard_reaches_the_content_first_and_every_link_shows_its_focus(console: str, page: Page) -> None:
    page.goto(console + "/accounts")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    page.keyboard.press("Tab")  # from the content on: the first filter, not the navigation again
    expect(page.get_by_label("Cause")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused control shows no outline"


def test_filtering_the_broken_list_by_cause_narrows_it(console: str, page: Page) -> None:
    page.goto(console + "/")
    page.get_by_role("link", name="See the list").click()
    rows = page.locator("#broken-accounts tbody tr")
    everyone = rows.count()
    assert everyone > 3
    shoot(page, "broken")

    page.get_by_label("Cause").select_option("admin_disconnected")
    page.get_by_role("button", name="Filter").click()

    expect(page).to_have_url(re.compile(r"cause=admin_disconnected"))
    narrowed = rows.count()
    assert 0 < narrowed < everyone
    causes = page.locator('#broken-accounts td[data-label="Cause"]').all_inner_texts()
    assert set(causes) == {"admin_disconnected"}
    expect(page.get_by_label("Cause")).to_have_value("admin_disconnected")
    shoot(page, "broken-filtered")


def test_an_account_page_shows_the_verdicts_steps(stack: RunningStack, console: str, page: Page) -> None:
    status, answer = get_json(f"{stack.api_url}/accounts/grant-acme-1")
    assert status == 200
    steps = answer["latest_verdict"]["steps"]
    page.goto(console + "/accounts")
    page.get_by_role("link", name="grant-acme-1", exact=True).click()

    expect(page.locator("#account-status")).to_have_text("broken")
    latest = page.locator("li.verdict").first
    expect(latest.locator(".steps-list li")).to_have_count(len(steps))
    expect(latest.locator(".steps-list li .question").first).to_have_text(steps[0]["question"])
    expect(latest.get_by_text("The procedure, step by step")).to_be_visible()
    expect(page.locator("li.event").first).to_contain_text("grant.expired")
    shoot(page, "account")


def test_the_domain_page_and_incident_list_open_from_links(console: str, page: Page) -> None:
    page.goto(console + "/accounts/grant-acme-1")
    page.get_by_role("link", name="acme.example").first.click()
    expect(page.get_by_role("heading", name="Domain acme.example")).to_be_visible()
    shoot(page, "domain")
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Incidents").click()
    expect(page.get_by_role("link", name="connector · microsoft")).to_be_visible()
    shoot(page, "incidents")


def test_a_forged_post_from_another_site_changes_nothing(
    stack: RunningStack, console: str, browser: Browser, attacker: dict[str, Any]
) -> None:
    """The operator has the console open (a session with a token); another site's page posts a release form."""
    incident = connector_incident(stack)
    context = browser.new_context()
    operator = context.new_page()
    operator.goto(f"{console}/incidents/{incident['incident_id']}/release")  # the session and its token exist
    attacker["pages"]["/win-a-prize"] = (
        f'<form id="f" method="post" action="{console}/incidents/{incident["incident_id"]}/release">'
        '<input name="csrf_token" value="guessed"></form><script>document.getElementById("f").submit()</script>'
    )
    evil = context.new_page()
    with evil.expect_navigation():
        evil.goto(f"http://127.0.0.1:{attacker['port']}/win-a-prize")
    expect(evil.locator("body")).to_contain_text("Refused: the request did not come from a page of this console.")
    context.close()

    assert connector_incident(stack)["released_at"] is None
    assert connector_incident(stack)["held_emails"] == len(HELD)


def test_a_forged_post_under_another_host_name_changes_nothing(
    stack: RunningStack, console: str, page: Page, attacker: dict[str, Any]
) -> None:
    """DNS rebinding: a name the attacker controls now resolves to 127.0.0.1, so its page can reach the console's
    port as its own origin; the console answers nothing to a Host that is not its own."""
    incident = connector_incident(stack)
    port = console.rsplit(":", 1)[1]
    rebound = f"http://{REBOUND}:{port}"
    answer = page.goto(f"{rebound}/incidents/{incident['incident_id']}/release")
    assert answer is not None
    assert answer.status == 400
    attacker["pages"]["/rebound"] = (
        f'<form id="f" method="post" action="{rebound}/incidents/{incident["incident_id"]}/release">'
        '<input name="csrf_token" value="guessed"></form><script>document.getElementById("f").submit()</script>'
    )
    with page.expect_navigation():
        page.goto(f"http://{REBOUND}:{attacker['port']}/rebound")
    expect(page.locator("body")).to_contain_text("Invalid host header")

    assert connector_incident(stack)["released_at"] is None


def test_release_asks_for_confirmation_and_then_the_held_emails_are_sent(
    stack: RunningStack, console: str, page: Page
) -> None:
    settings = get_settings()
    ledger = NotificationLedger(Table(settings.notifications_table, dynamodb_client()))
    held = {member.account_id: latest_reconnect(stack, member.account_id) for member in HELD}
    assert {status for _, status in held.values()} == {"held"}

    page.goto(console + "/incidents")
    page.get_by_role("link", name="connector · microsoft").click()
    expect(page.locator("#held-emails")).to_have_text(str(len(HELD)))
    shoot(page, "incident")
    page.get_by_role("link", name="Release…").click()

    # The confirmation step: what will be sent, to how many customers; nothing is released yet.
    expect(page.locator("#confirm-text")).to_contain_text(f"held reconnect email to {len(HELD)} customers")
    assert connector_incident(stack)["released_at"] is None
    shoot(page, "release-confirmation")
    page.get_by_role("button", name="Yes, release it").focus()
    page.keyboard.press("Enter")  # keyboard-usable: the operator confirms without a mouse

    expect(page.locator("#flash")).to_contain_text("are being sent")
    assert stack.wait_until_drained(timeout=40)
    for account_id, (event_id, _) in held.items():
        recorded = ledger.sent(event_id, "customer") or ledger.sent(event_id, "customer#revision")
        assert recorded is not None, f"no reconnect email of {account_id} in the ledger"
        assert (recorded.kind, recorded.status) == ("reconnect", "sent")
    assert connector_incident(stack)["released_at"] is not None
    page.reload()
    expect(page.get_by_role("link", name="Release…")).to_have_count(0)


def latest_reconnect(stack: RunningStack, account_id: str) -> tuple[str, str]:
    """(event id, status) of the reconnect email on the account's latest verdict."""
    status, answer = get_json(f"{stack.api_url}/accounts/{account_id}")
    assert status == 200
    latest = answer["latest_verdict"]
    (reconnect,) = [n for n in latest["notifications"] if n["kind"] == "reconnect"]
    return str(latest["event_id"]), str(reconnect["status"])
