"""Fixtures shared by the integration tests that drive the diagnosis service in-process."""

from tests.integration.test_cli import cli_run  # noqa: F401 - the CLI run in-process, its output captured
from tests.integration.test_incidents import harness  # noqa: F401 - the service on moto, Nylas in memory, SES recorded
