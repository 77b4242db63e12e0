"""A pytest plugin: fails any test during which the code logged a secret or a full email address.

It looks at two things for every phase (setup, call, teardown) of every test:
- every log record, formatted the way the Lambda writes it (the Powertools JSON formatter of the
  record's logger), caught by a handler on the root logger, so it works whatever stream the
  Powertools handler writes to and also in tests that consume stdout themselves (capsys);
- whatever pytest captured on stdout and stderr (metrics, prints, warnings).

A leak is any value of TEST_SECRET, or an address matching EMAIL that is not masked
(accounts.mask_email writes `j***@example.com`, which the pattern cannot match: `*` before `@`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator

import pytest

from local_stack.payloads import TEST_SECRET

# An unmasked address: a plain local part, or a quoted one ("jane doe"@…, JSON-escaped in a log line), at a
# domain in any script (用户@例子.广告).
EMAIL = re.compile(r'(?:\\?"[^"\\\n]+\\?"|[^\s"*]+)@[^\s"]+\.[^\W\d_]+')
SECRETS = {key: value for key, value in TEST_SECRET.items() if value}
# Output that must name an address in full, with the reason. Empty: nothing needs one so far.
ALLOWED: tuple[re.Pattern[str], ...] = ()

_collector_key = pytest.StashKey["_Collector"]()


class _Collector(logging.Handler):
    """Keeps every record, rendered as the function would write it."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.lines: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        # Powertools adds a SuppressFilter to the root's handlers when a logger is first set up;
        # this handler must still see every record.
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(_render(record))

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def _render(record: logging.LogRecord) -> str:
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        handler = getattr(logger, "powertools_handler", None)
        if handler is not None and handler.formatter is not None:
            try:
                return str(handler.formatter.format(record))
            except Exception:  # fall back to the plain rendering below
                break
        logger = logger.parent
    # Not a Powertools logger (or an orphaned child): the message, the traceback and every extra.
    try:
        text = logging.Formatter().format(record)
    except Exception:
        text = str(record.msg)
    return f"{text} {vars(record)!r}"


def leaks(text: str) -> list[str]:
    found = [f"the secret's {key}" for key, secret in SECRETS.items() if secret in text]
    for match in EMAIL.finditer(text):
        line = text[max(0, match.start() - 80) : match.end() + 80]
        if not any(allowed.search(line) for allowed in ALLOWED):
            found.append(f"address {match.group()!r} in …{line}…")
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    collector = _Collector()
    item.stash[_collector_key] = collector
    logging.getLogger().addHandler(collector)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    collector = item.stash.get(_collector_key, None)
    logged = collector.take() if collector is not None else []
    if report.when == "teardown" and collector is not None:
        logging.getLogger().removeHandler(collector)
    captured = [content for name, content in report.sections if name.endswith(f" {report.when}")]
    found = leaks("\n".join([*logged, *captured]))
    if found and not report.failed:
        report.outcome = "failed"
        report.longrepr = (
            f"log hygiene ({report.when}): the code wrote what must never be logged "
            "(mask addresses with addresses.mask_email or mask_addresses, never log credentials):\n  "
            + "\n  ".join(found)
        )
    return report
