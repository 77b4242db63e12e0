"""Opens every email the service sends in headless Chromium, on a phone (375 px) and a desktop (800 px).

Each must fit the width (no horizontal scroll) and show what its reader acts on: the reconnect link, the
section to forward, the operator alert's title, actions, evidence and affected accounts. Screenshots are
kept under out/browser/ for a look by eye.
"""

from __future__ import annotations

import json
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from account_doctor.notifications.render import RenderedEmail
from local_stack.emails import previews, sample_settings
from tests.browser.chromium import FLAGS as CHROMIUM_FLAGS

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "browser"
FLAGS = [*CHROMIUM_FLAGS, "--hide-scrollbars", "--force-device-scale-factor=1"]
WIDTHS = (375, 800)
HEIGHT = 1400
# Headless Chromium's window is at least 500 px wide, so the email is laid out in a frame of the width
# under test: inside it, the viewport (window.innerWidth, percentages, media queries) is that width.
MIN_WINDOW = 500

SETTINGS = sample_settings(ReplyToEmail="support@app.example")
PREVIEWS: dict[str, RenderedEmail] = previews(SETTINGS)


def must_see(name: str, email: RenderedEmail) -> list[str]:
    """The elements a reader must be able to see (and click), by kind of email."""
    if email.kind == "reconnect":
        return ["reconnect-link", "reply-to"]
    if email.kind == "admin_contact" or (email.kind == "reminder" and 'id="admin-section"' in email.html):
        return ["admin-section", "reconnect-link", "reply-to"]
    if email.kind == "reminder":
        return ["reconnect-link", "reply-to"]
    if email.kind == "outage_notice":
        return ["headline", "outage-notice", "reply-to"]
    if name.startswith("ses_"):
        return ["title", "summary", "reason", "actions", "account"]
    seen = ["title", "summary", "actions", "evidence", "steps"]
    return seen + (["accounts"] if 'id="accounts"' in email.html else ["account"])


# Runs in a copy of the email only: measures each element as laid out, checks that the point at its centre
# is the element itself (not covered, clipped or off-screen), and how wide the page really is.
PROBE = """
<script>
(function () {
  var found = {};
  %s.forEach(function (id) {
    var el = document.getElementById(id);
    if (!el) { return; }
    el.scrollIntoView({block: "center", inline: "nearest"});
    var r = el.getBoundingClientRect(), s = getComputedStyle(el);
    var x = r.left + Math.min(r.width / 2, 20), y = r.top + Math.min(r.height / 2, 10);
    var hit = document.elementFromPoint(x, y);
    found[id] = {width: r.width, height: r.height, left: r.left, right: r.right, display: s.display,
                 visibility: s.visibility, opacity: s.opacity, on_top: !!hit && (hit === el || el.contains(hit)),
                 href: el.getAttribute("href"), text: el.innerText};
  });
  window.scrollTo(0, 0);
  var page = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  parent.postMessage(JSON.stringify({elements: found, viewport: window.innerWidth, page_width: page}), "*");
})();
</script>
"""
# The page Chromium opens: the email in a frame `width` px wide, and what the probe inside reports.
FRAME = """<!DOCTYPE html>
<html><body style="margin:0;background:#ffffff;">
<iframe src="%s" width="%d" height="%d" style="border:0;display:block;"></iframe>
<script>window.addEventListener("message", function (e) { document.body.setAttribute("data-probe", e.data); });</script>
</body></html>
"""

CASES = [(name, width) for name in PREVIEWS for width in WIDTHS]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emails")
    for name, email in PREVIEWS.items():
        (out / f"{name}.html").write_text(email.html, encoding="utf-8")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return out


def run_chromium(chromium: Path, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    profile.mkdir(exist_ok=True)
    return subprocess.run(  # noqa: S603 - a fixed binary and our own arguments
        [str(chromium), *FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


class _BodyProbe(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.probe: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        value = dict(attrs).get("data-probe")
        if tag == "body" and value:
            self.probe = json.loads(value)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_every_email_the_service_sends_is_previewed() -> None:
    kinds = {email.kind for email in PREVIEWS.values()}
    assert kinds == {"reconnect", "admin_contact", "outage_notice", "reminder", "operator_alert"}
    assert {"oauth_revoked-reminder", "admin_disconnected-reminder"} <= set(PREVIEWS)
    incidents = [name for name, email in PREVIEWS.items() if 'id="accounts"' in email.html]
    assert sorted(incidents) == [
        "admin_disconnected-operator_alert",
        "admin_session_policy-operator_alert",
        "connector_outage-operator_alert",
        "google_testing_mode-operator_alert",
    ]
    assert {"ses_rejected-operator_alert", "ses_bounced-operator_alert", "ses_complained-operator_alert"} <= set(
        PREVIEWS
    )


@pytest.mark.parametrize(("name", "width"), CASES, ids=[f"{n}-{w}px" for n, w in CASES])
def test_email_fits_the_screen_and_shows_what_its_reader_acts_on(
    chromium: Path, rendered: Path, tmp_path: Path, name: str, width: int
) -> None:
    email = PREVIEWS[name]
    page = rendered / f"{name}.html"
    targets = must_see(name, email)
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE % json.dumps(targets) + "</body>"))
    window = f"--window-size={max(width, MIN_WINDOW)},{HEIGHT}"
    framed = tmp_path / "framed.html"
    framed.write_text(FRAME % (page.as_uri(), width, HEIGHT), encoding="utf-8")
    # The phone's screenshot shows its 375 px frame at the left of the narrowest window Chromium opens.
    screenshot = SCREENSHOTS / f"{name}-{width}px.png"
    run_chromium(chromium, tmp_path / "shot", f"--screenshot={screenshot}", window, framed.as_uri())
    assert png_size(screenshot) == (max(width, MIN_WINDOW), HEIGHT)
    assert screenshot.stat().st_size > 10_000, "the screenshot is blank"

    framed.write_text(FRAME % (probed.as_uri(), width, HEIGHT), encoding="utf-8")
    dom = run_chromium(
        chromium, tmp_path / "dom", "--dump-dom", "--virtual-time-budget=3000", window, framed.as_uri()
    ).stdout
    parser = _BodyProbe()
    parser.feed(dom)
    probe = parser.probe
    assert probe is not None, f"the probe did not run in {page.name}"
    assert probe["viewport"] == width
    assert probe["page_width"] <= width, f"{name} scrolls sideways at {width} px ({probe['page_width']} px wide)"
    elements = probe["elements"]
    for target in targets:
        assert target in elements, f"#{target} is missing from {page.name}"
        box = elements[target]
        assert box["width"] > 0, f"#{target} has no width in {page.name}"
        assert box["height"] > 0, f"#{target} has no height in {page.name}"
        assert box["display"] != "none"
        assert box["visibility"] == "visible"
        assert float(box["opacity"]) > 0
        assert box["left"] >= 0, f"#{target} is cut off on the left at {width} px"
        assert box["right"] <= width, f"#{target} is cut off on the right at {width} px"
        assert box["on_top"], f"#{target} is covered by another element in {page.name}"
    if "reconnect-link" in elements:
        link = elements["reconnect-link"]
        assert link["href"].startswith(SETTINGS.nylas_api_uri + "/v3/connect/auth?")
        assert link["href"] in email.text
        assert link["text"].strip() == "Reconnect your mailbox"
    if "admin-section" in elements:
        assert "forward to your it administrator" in elements["admin-section"]["text"].lower()
    if "reply-to" in elements:
        assert "support@app.example" in elements["reply-to"]["text"]
    if "accounts" in elements:
        assert "Affected accounts" in elements["accounts"]["text"]
