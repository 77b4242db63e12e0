"""SweepFunction: on its EventBridge schedule, enqueues the failures whose webhook never came (SPEC §3b), checks
the webhook feed and the client secret's clock (§3d), and takes the daily grant census (§3c).

The event itself carries nothing the sweep needs: every run lists what Nylas reports broken now.
A run cut short by Nylas (429 or 5xx beyond the retries) ends quietly and the next one resumes;
any other failure is raised after the summary is logged, so the function's Errors alarm fires.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.census import Source
from account_doctor.census_run import Census
from account_doctor.clocks import secret_expiry
from account_doctor.notifications.mailer import SesMailer
from account_doctor.notifications.watch_alerts import OperatorAlerts
from account_doctor.nylas import ListedAccount, NylasClient, NylasConfigError
from account_doctor.queue import DiagnosisQueue
from account_doctor.settings import SweepSettings, get_settings
from account_doctor.stores.census import CensusAggregates
from account_doctor.stores.dynamo import Table
from account_doctor.stores.events import EventHistory
from account_doctor.stores.watch import WatchStore
from account_doctor.sweep import Sweep, latest_events_of
from account_doctor.watch import InputsWatch

settings = get_settings(SweepSettings)
logger = Logger()
metrics = Metrics()
tracer = Tracer()

nylas = NylasClient(settings)
events_table = Table(settings.events_table, boto3.client("dynamodb"))
history = EventHistory(events_table)
queue = DiagnosisQueue(boto3.client("sqs"), settings.diagnosis_queue_url, settings.grace_seconds)
sweep = Sweep(
    latest_events=latest_events_of(history.latest_from_states, history.latest_event),
    enqueue=queue.enqueue,
    notify_days=settings.sweep_notify_days,
)
mailer = None if settings.notification_mode == "dry-run" else SesMailer(boto3.client("sesv2"), settings)
watch = InputsWatch(
    store=WatchStore(events_table),
    alerts=OperatorAlerts(settings, mailer),
    nylas_api_uri=settings.nylas_api_uri,
    secret_expires_on=secret_expiry(settings.microsoft_client_secret_expires_on),
)
census = Census(
    store=CensusAggregates(events_table),
    pages={"v3": nylas.grants_page, "v2": nylas.v2_accounts_page},
    sources=lambda: _census_sources(),
)


def _sources() -> Iterator[Iterator[list[ListedAccount]]]:
    """v3 grants, then v2 accounts when the secret holds v2 credentials; lazily, so a failure is the run's."""
    yield nylas.invalid_grants()
    if nylas.v2_configured():
        yield nylas.broken_v2_accounts()


def _census_sources() -> Sequence[Source]:
    return ("v3", "v2") if nylas.v2_configured() else ("v3",)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def seconds_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    summary = sweep.run(_sources(), seconds_left=seconds_left)
    metrics.add_metric(name="MissedFailuresFound", unit=MetricUnit.Count, value=summary.enqueued)
    if not summary.complete:
        metrics.add_metric(name="SweepsStoppedEarly", unit=MetricUnit.Count, value=1)
    log = logger.info if summary.complete else logger.error if summary.error else logger.warning
    log(summary.line(), extra={"sweep": summary.to_dict()})
    errors: list[Exception] = [summary.error] if summary.error else []
    result: dict[str, Any] = summary.to_dict()
    try:
        feed = watch.check_feed(nylas.webhook_destinations())
        if feed.health.status != "unknown":
            metrics.add_metric(
                name="WebhookFeedUnhealthy", unit=MetricUnit.Count, value=int(feed.health.status == "unhealthy")
            )
        logger.info(f"webhook feed: {feed.health.status}", extra={"alerted": feed.alerted})
        result["webhook_feed"] = feed.health.status
        watch.check_client_secret()
        taken = census.run(seconds_left=seconds_left)
        (logger.error if taken.error else logger.info)(taken.line(), extra={"census": taken.to_dict()})
        result["census"] = taken.to_dict()
        if taken.error:
            errors.append(taken.error)
    except Exception as error:  # raised below, after the metrics are counted
        logger.exception("the sweep could not watch its inputs")
        errors.append(error)
    if any(isinstance(error, NylasConfigError) for error in errors):
        # The same metric as the diagnosis': NylasCredentialsAlarm watches it.
        metrics.add_metric(name="NylasConfigErrors", unit=MetricUnit.Count, value=1)
    if errors:
        raise errors[0]
    return result
