"""POST/GET /webhook: answers the Nylas challenge, verifies signed webhooks and enqueues their account events.

Routing is two methods on one path, so the event is handled directly rather than through
Powertools' APIGatewayRestResolver: its import costs ~30 ms, which alone would use most of the
import budget (≤ 1.3× boto3 plus an SQS client; bench/bench_webhook.py measures it).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor import webhook
from account_doctor.addresses import mask_email
from account_doctor.intake import NotEnqueued, build_intake
from account_doctor.settings import WebhookSettings, get_settings

settings = get_settings(WebhookSettings)
logger = Logger()
metrics = Metrics()
# No Powertools Tracer here: the X-Ray SDK (with wrapt and asyncio) costs 40-60 ms of every cold
# start, a quarter of the import budget, to trace one SQS call. The function's own X-Ray segment
# still comes from `Tracing: Active` in template.yaml; the diagnosis and read API use the Tracer.
sqs = boto3.client("sqs")
intake = build_intake(settings, sqs)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    method = event.get("httpMethod")
    try:
        if method == "GET":
            metrics.add_metric(name="Challenges", unit=MetricUnit.Count, value=1)
            return _response(200, webhook.challenge(event), content_type="text/plain")
        if method == "POST":
            return _notification(event)
    except webhook.WebhookError as error:
        return _refuse(error)
    metrics.add_metric(name="RejectedWebhooks", unit=MetricUnit.Count, value=1)
    return _response(405, json.dumps({"message": "use GET (challenge) or POST (notification)"}))


def _notification(event: dict[str, Any]) -> dict[str, Any]:
    try:
        received, sent = intake.receive(event)
    except NotEnqueued as failure:
        _counted(failure.received)
        logger.exception("could not enqueue; Nylas will retry", extra={"event_ids": _ids(failure.received)})
        metrics.add_metric(name="EnqueueFailures", unit=MetricUnit.Count, value=1)
        return _response(503, json.dumps({"message": str(failure)}))
    _counted(received)
    logger.info(
        "webhook accepted",
        extra={
            "api_version": received.api_version,
            "events": [
                {
                    "event_id": e.event_id,
                    "trigger": e.trigger,
                    "account_id": e.account_id,
                    "provider": e.provider,
                    "email": mask_email(e.email),
                }
                for e in received.events
            ],
            "ignored": list(received.ignored),
            "messages_sent": sent,
        },
    )
    answer = {"accepted": len(received.events), "ignored": len(received.ignored)}
    if received.stale:
        answer["stale"] = len(received.stale)
    return _response(200, json.dumps(answer))


def _counted(received: webhook.Webhook) -> None:
    """The webhook's delivery id on its logs; webhooks by type, and the ignored ones by type (each type is its
    own dimension value)."""
    if received.delivery_id:
        logger.set_correlation_id(received.delivery_id)
    for name, types in (("Webhooks", [e.trigger for e in received.events]), ("IgnoredWebhooks", received.ignored)):
        for kind in sorted(set(types)):
            with single_metric(
                name=name,
                unit=MetricUnit.Count,
                value=types.count(kind),
                default_dimensions=metrics.default_dimensions,
            ) as metric:
                metric.add_dimension(name="type", value=kind)
    if received.stale:
        # Acknowledged so Nylas stops retrying, but not acted on (SPEC §2); the sweep covers a genuine miss.
        metrics.add_metric(name="StaleWebhooks", unit=MetricUnit.Count, value=len(received.stale))
        logger.warning(
            "stale account events acknowledged, not enqueued",
            extra={
                "stale": [
                    {
                        "event_id": e.event_id,
                        "trigger": e.trigger,
                        "account_id": e.account_id,
                        "occurred_at": e.occurred_at,
                    }
                    for e in received.stale
                ],
                "max_age_hours": settings.webhook_max_age_hours,
            },
        )
    metrics.add_metric(name="WebhooksAccepted", unit=MetricUnit.Count, value=1)


def _refuse(error: webhook.WebhookError) -> dict[str, Any]:
    if isinstance(error, webhook.Unauthorized):
        metrics.add_metric(name="SignatureFailures", unit=MetricUnit.Count, value=1)
    elif isinstance(error, webhook.NotConfigured):
        metrics.add_metric(name="WebhookSecretUnavailable", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="RejectedWebhooks", unit=MetricUnit.Count, value=1)
    log = logger.error if error.status >= 500 else logger.warning
    log("webhook refused", extra={"status": error.status, "reason": error.message})
    return _response(error.status, json.dumps({"message": error.message}))


def _ids(received: webhook.Webhook) -> list[str]:
    return [e.event_id for e in received.events]


def _response(status: int, body: str, *, content_type: str = "application/json") -> dict[str, Any]:
    # nosniff: the challenge echoes the caller's text, which a browser must never read as HTML or script.
    headers = {"Content-Type": content_type, "X-Content-Type-Options": "nosniff"}
    return {"statusCode": status, "headers": headers, "body": body}
