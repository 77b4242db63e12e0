"""The demo's sweep hook on the local stack: a grant whose webhook never came is found, diagnosed and emailed once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from account_doctor.stores.dynamo import Table
from account_doctor.stores.verdicts import VerdictStore, page_verdicts
from local_stack.scenarios import MISSED_WEBHOOK, load_simulator
from local_stack.stack import RunningStack, StackOptions, running_stack
from local_stack.sweep_demo import run_sweep

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningStack]:
    with running_stack(StackOptions(api_port=0, log_level="WARNING")) as running:
        for name, value in running.environment.items():
            monkeypatch.setenv(name, value)
        yield running


def test_the_sweep_finds_the_missed_webhook_scenario(stack: RunningStack) -> None:
    load_simulator(stack.simulator, [MISSED_WEBHOOK])

    first = run_sweep(stack)
    assert (first["enqueued"], first["missed"], first["complete"]) == (1, [MISSED_WEBHOOK.account_id], True)
    assert stack.wait_until_drained(timeout=60)

    verdicts = page_verdicts(
        VerdictStore(Table(stack.environment["VERDICTS_TABLE"])).account_verdicts(MISSED_WEBHOOK.account_id, 10)
    )
    assert [v.cause for v in verdicts] == [MISSED_WEBHOOK.expected_cause]
    assert len(stack.outbox.to(MISSED_WEBHOOK.email)) == 1

    again = run_sweep(stack)
    assert (again["enqueued"], again["already_known"]) == (0, 1)
    assert stack.wait_until_drained(timeout=30)
    assert len(stack.outbox.to(MISSED_WEBHOOK.email)) == 1
