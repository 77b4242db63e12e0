"""SweepFunction: on its EventBridge schedule, enqueues the failures whose webhook never came, closes the
episodes of the broken accounts Nylas no longer lists (SPEC §3b), enqueues the reminders due (SPEC §5), checks
the webhook feed and the client secret's clock (§3d), and takes the daily grant census (§3c).

The event itself carries nothing the sweep needs: every run lists what Nylas reports broken now.
A run cut short by Nylas (429 or 5xx beyond the retries) ends quietly and the next one resumes;
any other failure is raised after the summary is logged, so the function's Errors alarm fires.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.nylas import NylasConfigError
from account_doctor.settings import SweepSettings, get_settings
from account_doctor.sweep import build_sweep
from account_doctor.tally import tally
from account_doctor.watch import build_watch

settings = get_settings(SweepSettings)
logger = Logger()
metrics = Metrics()
tracer = Tracer()

sweep = build_sweep(settings)
watch = build_watch(settings, sweep.nylas)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def seconds_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    try:
        summary = sweep.run(seconds_left=seconds_left)
        # Reminders due since the last run: found here, sent by the diagnosis function.
        reminders = sweep.remind(datetime.now(UTC))
    finally:
        tally.publish(metrics)  # Recoveries by recovered_by, counted where the episodes end
    metrics.add_metric(name="MissedFailuresFound", unit=MetricUnit.Count, value=summary.enqueued)
    metrics.add_metric(name="RemindersDue", unit=MetricUnit.Count, value=reminders.enqueued)
    if summary.recovered:
        metrics.add_metric(name="RecoveriesFoundBySweep", unit=MetricUnit.Count, value=summary.recovered)
    if not summary.complete:
        metrics.add_metric(name="SweepsStoppedEarly", unit=MetricUnit.Count, value=1)
    log = logger.info if summary.complete else logger.error if summary.error else logger.warning
    log(f"{summary.line()}; {reminders.enqueued} reminders due", extra={"sweep": summary.to_dict()})
    result: dict[str, Any] = summary.to_dict()

    watched = watch.run(seconds_left=seconds_left)
    if watched.feed is not None:
        status = watched.feed.health.status
        if status != "unknown":
            metrics.add_metric(name="WebhookFeedUnhealthy", unit=MetricUnit.Count, value=int(status == "unhealthy"))
        logger.info(f"webhook feed: {status}", extra={"alerted": watched.feed.alerted})
        result["webhook_feed"] = status
    if watched.census is not None:
        (logger.error if watched.census.error else logger.info)(
            watched.census.line(), extra={"census": watched.census.to_dict()}
        )
        result["census"] = watched.census.to_dict()
    elif watched.error is not None:
        logger.error(f"the sweep could not watch its inputs: {type(watched.error).__name__}: {watched.error}")

    errors = [error for error in (summary.error, watched.error) if error is not None]
    if any(isinstance(error, NylasConfigError) for error in errors):
        # The same metric as the diagnosis': NylasCredentialsAlarm watches it.
        metrics.add_metric(name="NylasConfigErrors", unit=MetricUnit.Count, value=1)
    if errors:
        raise errors[0]
    return result
