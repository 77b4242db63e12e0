"""SweepFunction: on its EventBridge schedule, enqueues the failures whose webhook never came and closes the
episodes of the broken accounts Nylas no longer lists (SPEC §3b).

The event itself carries nothing the sweep needs: every run lists what Nylas reports broken now.
A run cut short by Nylas (429 or 5xx beyond the retries) ends quietly and the next one resumes;
any other failure is raised after the summary is logged, so the function's Errors alarm fires.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.episodes import Recovery
from account_doctor.events_out import publisher_for
from account_doctor.models import AccountState
from account_doctor.nylas import ListedAccount, NylasClient, NylasConfigError
from account_doctor.queue import DiagnosisQueue, ReminderQueue
from account_doctor.reminders import enqueue_due
from account_doctor.settings import SweepSettings, get_settings
from account_doctor.stores.dynamo import Table
from account_doctor.stores.episodes import EpisodeRecords
from account_doctor.stores.events import EventHistory
from account_doctor.sweep import Sweep, UnlistedCloser, broken_list, latest_events_of
from account_doctor.tally import tally

settings = get_settings(SweepSettings)
logger = Logger()
metrics = Metrics()
tracer = Tracer()

nylas = NylasClient(settings)
events_table = Table(settings.events_table, boto3.client("dynamodb"))
history = EventHistory(events_table)
queue = DiagnosisQueue(boto3.client("sqs"), settings.diagnosis_queue_url, settings.grace_seconds)
episodes = EpisodeRecords(events_table)
recovery = Recovery(episodes, publisher_for(settings.event_bus_name))
reminder_queue = ReminderQueue(settings.diagnosis_queue_url)


def _account_state(account_id: str, api_version: str) -> AccountState:
    return nylas.v2_account(account_id) if api_version == "v2" else nylas.grant(account_id)


def _sweep(run: str) -> Sweep:
    versions = frozenset({"v3", "v2"} if nylas.v2_configured() else {"v3"})
    return Sweep(
        latest_events=latest_events_of(history.latest_from_states, history.latest_event),
        enqueue=queue.enqueue,
        notify_days=settings.sweep_notify_days,
        grant_updated_at=lambda grant_id: nylas.grant(grant_id).updated_at,
        close_unlisted=UnlistedCloser(
            broken_accounts=broken_list(history.broken_accounts),
            account_state=_account_state,
            looked_up=recovery.account_looked_up,
            versions=versions,
            run=run,
        ),
    )


def _sources() -> Iterator[Iterator[list[ListedAccount]]]:
    """v3 grants, then v2 accounts when the secret holds v2 credentials; lazily, so a failure is the run's."""
    yield nylas.invalid_grants()
    if nylas.v2_configured():
        yield nylas.broken_v2_accounts()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        summary = _sweep(f"sweep-{context.aws_request_id}").run(
            _sources(), seconds_left=lambda: context.get_remaining_time_in_millis() / 1000
        )
    finally:
        tally.publish(metrics)  # Recoveries by recovered_by, counted where the episodes end
    metrics.add_metric(name="MissedFailuresFound", unit=MetricUnit.Count, value=summary.enqueued)
    if summary.recovered:
        metrics.add_metric(name="RecoveriesFoundBySweep", unit=MetricUnit.Count, value=summary.recovered)
    # Reminders due since the last run (SPEC §5): found here, sent by the diagnosis function.
    reminders = enqueue_due(episodes, reminder_queue.send, datetime.now(UTC))
    metrics.add_metric(name="RemindersDue", unit=MetricUnit.Count, value=reminders.enqueued)
    if not summary.complete:
        metrics.add_metric(name="SweepsStoppedEarly", unit=MetricUnit.Count, value=1)
    if isinstance(summary.error, NylasConfigError):
        # The same metric as the diagnosis': NylasCredentialsAlarm watches it.
        metrics.add_metric(name="NylasConfigErrors", unit=MetricUnit.Count, value=1)
    log = logger.info if summary.complete else logger.error if summary.error else logger.warning
    log(summary.line() + f"; {reminders.enqueued} reminders due", extra={"sweep": summary.to_dict()})
    if summary.error is not None:
        raise summary.error
    return summary.to_dict()
