"""SweepFunction: on its EventBridge schedule, enqueues the failures whose webhook never came (SPEC §3b).

The event itself carries nothing the sweep needs: every run lists what Nylas reports broken now.
A run cut short by Nylas (429 or 5xx beyond the retries) ends quietly and the next one resumes;
any other failure is raised after the summary is logged, so the function's Errors alarm fires.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.nylas import NylasConfigError
from account_doctor.settings import SweepSettings, get_settings
from account_doctor.sweep import build_sweep

settings = get_settings(SweepSettings)
logger = Logger()
metrics = Metrics()
tracer = Tracer()

sweep = build_sweep(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = sweep.run(seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
    metrics.add_metric(name="MissedFailuresFound", unit=MetricUnit.Count, value=summary.enqueued)
    if not summary.complete:
        metrics.add_metric(name="SweepsStoppedEarly", unit=MetricUnit.Count, value=1)
    if isinstance(summary.error, NylasConfigError):
        # The same metric as the diagnosis': NylasCredentialsAlarm watches it.
        metrics.add_metric(name="NylasConfigErrors", unit=MetricUnit.Count, value=1)
    log = logger.info if summary.complete else logger.error if summary.error else logger.warning
    log(summary.line(), extra={"sweep": summary.to_dict()})
    if summary.error is not None:
        raise summary.error
    return summary.to_dict()
