"""SweepFunction: on its EventBridge schedule, enqueues the failures whose webhook never came, closes the
episodes of the broken accounts Nylas no longer lists (SPEC §3b), and enqueues the reminders due (SPEC §5).

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

settings = get_settings(SweepSettings)
logger = Logger()
metrics = Metrics()
tracer = Tracer()

sweep = build_sweep(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        summary = sweep.run(seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
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
    if isinstance(summary.error, NylasConfigError):
        # The same metric as the diagnosis': NylasCredentialsAlarm watches it.
        metrics.add_metric(name="NylasConfigErrors", unit=MetricUnit.Count, value=1)
    log = logger.info if summary.complete else logger.error if summary.error else logger.warning
    log(f"{summary.line()}; {reminders.enqueued} reminders due", extra={"sweep": summary.to_dict()})
    if summary.error is not None:
        raise summary.error
    return summary.to_dict()
