"""SesEventsFunction: SES delivery feedback from the default EventBridge bus, recorded on the notifications.

Invoked asynchronously by an EventBridge rule, one SES event per invocation. An error (DynamoDB, or SES
while alerting the operator) is raised, so Lambda retries the event and then hands it to the dead-letter
queue; nothing is half-done, because recording a status twice changes nothing and the alert is claimed
per message id.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.delivery import build_delivery_recorder
from account_doctor.settings import SesEventsSettings, get_settings
from account_doctor.tally import tally

logger = Logger()
metrics = Metrics()
tracer = Tracer()

settings = get_settings(SesEventsSettings)
recorder = build_delivery_recorder(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        outcome = recorder.handle(event)
    finally:
        tally.publish(metrics)
    return {"status": outcome.status, "recorded": outcome.recorded, "operator_alerted": outcome.operator_alerted}
