"""DiagnosisFunction: consumes DiagnosisQueue batches; each record is recorded or diagnosed on its own thread."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.consumer import build_consumer
from account_doctor.notifications import build_notifier
from account_doctor.settings import get_settings
from account_doctor.tally import tally

logger = Logger()
metrics = Metrics()
tracer = Tracer()

settings = get_settings()
consumer = build_consumer(settings, build_notifier(settings))
# As many threads as the event source mapping's BatchSize: a batch's Nylas calls all overlap.
executor = ThreadPoolExecutor(max_workers=10, thread_name_prefix="record")
# Powertools' way to process a batch's records concurrently, each failing on its own. Given the
# logger, it logs every failed record with its traceback (otherwise a partial failure is silent).
processor = AsyncBatchProcessor(event_type=EventType.SQS, logger=logging.getLogger(logger.name))


async def record_handler(record: SQSRecord) -> dict[str, Any]:
    return await asyncio.get_running_loop().run_in_executor(executor, consumer.handle, record)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    consumer.idempotency.register_lambda_context(context)
    records = len(event.get("Records", []))
    failed = records  # unless the batch says otherwise: Powertools raises when every record failed
    try:
        response = async_process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        failed = len(response["batchItemFailures"])
        return response
    finally:
        # Metrics are added here, on the handler's thread, never from the record threads.
        metrics.add_metric(name="RecordsProcessed", unit=MetricUnit.Count, value=records - failed)
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=failed)
        tally.publish(metrics)
