"""Opens every rendered HTML email in headless Chromium: the reconnect link or admin section must be visible."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from account_doctor.models import Cause
from account_doctor.notifications.render import compose
from local_stack.emails import SCENARIO_CAUSES, render_scenarios, sample_link, sample_settings, sample_verdict

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
WIDTH = 800

# What a reader must be able to see and click, by kind of email.
MUST_SEE = {
    "reconnect": ["reconnect-link"],
    "admin_contact": ["admin-section", "reconnect-link"],
    "operator_alert": ["summary", "actions"],
}

# Runs in a copy of the email only: measures each element as laid out, and checks that the point at
# its centre is the element itself (not covered, clipped or off-screen).
PROBE = """
<script>
(function () {
  var found = {};
  %s.forEach(function (id) {
    var el = document.getElementById(id);
    if (!el) { return; }
    el.scrollIntoView({block: "center"});
    var r = el.getBoundingClientRect(), s = getComputedStyle(el);
    var hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    found[id] = {width: r.width, height: r.height, left: r.left, right: r.right, display: s.display,
                 visibility: s.visibility, opacity: s.opacity, on_top: !!hit && (hit === el || el.contains(hit)),
                 href: el.getAttribute("href"), text: el.innerText};
  });
  document.body.setAttribute("data-probe", JSON.stringify({elements: found, viewport: window.innerWidth}));
})();
</script>
"""

SETTINGS = sample_settings()
CASES = [
    (cause, outgoing.email.kind)
    for cause in SCENARIO_CAUSES
    for outgoing in compose(sample_verdict(cause), SETTINGS, sample_link(sample_verdict(cause), SETTINGS))
]


@pytest.fixture(scope="module")
def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI the browser test must run")
    pytest.skip(message)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emails")
    render_scenarios(out, SETTINGS)
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


@pytest.mark.parametrize(("cause", "kind"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_email_shows_its_call_to_action(
    chromium: Path, rendered: Path, tmp_path: Path, cause: Cause, kind: str
) -> None:
    page = rendered / f"{cause}-{kind}.html"
    screenshot = rendered / f"{cause}-{kind}.png"
    run_chromium(
        chromium, tmp_path / "shot", f"--screenshot={screenshot}", f"--window-size={WIDTH},1400", page.as_uri()
    )
    assert png_size(screenshot) == (WIDTH, 1400)
    assert screenshot.stat().st_size > 10_000, "the screenshot is blank"

    targets = MUST_SEE[kind]
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE % json.dumps(targets) + "</body>"))
    dom = run_chromium(
        chromium,
        tmp_path / "dom",
        "--dump-dom",
        "--virtual-time-budget=2000",
        f"--window-size={WIDTH},1400",
        probed.as_uri(),
    ).stdout
    parser = _BodyProbe()
    parser.feed(dom)
    assert parser.probe is not None, f"the probe did not run in {page.name}"
    elements = parser.probe["elements"]
    for target in targets:
        assert target in elements, f"#{target} is missing from {page.name}"
        box = elements[target]
        assert box["width"] > 0, f"#{target} has no width in {page.name}"
        assert box["height"] > 0, f"#{target} has no height in {page.name}"
        assert box["display"] != "none"
        assert box["visibility"] == "visible"
        assert float(box["opacity"]) > 0
        assert box["left"] >= 0, f"#{target} is cut off on the left"
        assert box["right"] <= parser.probe["viewport"], f"#{target} is cut off on the right"
        assert box["on_top"], f"#{target} is covered by another element in {page.name}"
    if "reconnect-link" in elements:
        link = elements["reconnect-link"]
        verdict = sample_verdict(cause)
        assert link["href"] == sample_link(verdict, SETTINGS)
        assert link["text"].strip() == "Reconnect your mailbox"
    if "admin-section" in elements:
        assert "forward to your it administrator" in elements["admin-section"]["text"].lower()
