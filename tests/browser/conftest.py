"""Fixtures shared by the browser tests."""

from tests.browser.chromium import chromium  # noqa: F401 - Debian's Chromium, or a skip (a failure under CI)
