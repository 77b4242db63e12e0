"""What every bench runs in: quiet Powertools, fake credentials, a function's own settings; all put back after.

And moto as the local stack runs it (local_stack/moto_fast.py): its answers are moto's, without the
costs that grow with its tables (which no figure here is about, and which made seeding 2,000-member
incidents take minutes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools.utilities import parameters as powertools_parameters

from account_doctor.settings import get_settings
from local_stack import moto_fast
from local_stack.template import ProvisionedStack

moto_fast.install()

# No traces, metrics or info logs: they would be timed with the code, and fill the bench's output.
QUIET = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def quiet_environment(variables: dict[str, str] | None = None) -> Iterator[None]:
    """QUIET and these variables for the block; the environment and every settings cache as they were after it."""
    saved = dict(os.environ)
    os.environ.update({**QUIET, **(variables or {})})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        # The cached secret and its client (bound to this stack's endpoint) must not reach the next bench.
        powertools_parameters.clear_caches()  # type: ignore[no-untyped-call]


def use_function_settings(stack: ProvisionedStack, function: str | None = None, **variables: str) -> None:
    """The function's environment as the template gives it (every function's when None), still quiet."""
    os.environ.update({**stack.function_environment(function), **QUIET, **variables})
    get_settings.cache_clear()
