"""The embedded local stack: moto for AWS, the Nylas simulator, the REST API over HTTP, and the queue poller.

Everything runs in this process, on 127.0.0.1, from template.yaml's own definitions: the resources
(`provision`), the functions' environment (`function_environment`), the API routes and the queue's
event source mapping. Only the Nylas URLs and the grace period are set for local use.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters as powertools_parameters

from account_doctor.settings import get_settings
from local_stack.aws import MotoServer, Outbox
from local_stack.bus import BusCapture, capture_bus
from local_stack.functions import LambdaFunction, functions_from_template
from local_stack.gateway import ApiGateway, binary_media_types
from local_stack.payloads import TEST_SECRET
from local_stack.poller import SqsPoller, wait_until_drained
from local_stack.simulator import NylasSimulator
from local_stack.template import ProvisionedStack, provision

REGION = "us-east-1"


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    api_port: int = 3000  # `sam local start-api`'s port; 0 picks a free one
    aws_port: int = 0  # 0 picks a free one
    nylas_port: int = 0
    grace_seconds: int = 2
    # Redeliver a failed message after this many seconds rather than the queue's 6 minutes.
    visibility_timeout: int | None = 5
    parameters: dict[str, str] = field(default_factory=dict)  # other template parameter overrides
    secret: dict[str, str] = field(default_factory=lambda: dict(TEST_SECRET))
    log_level: str = "INFO"


@dataclass
class RunningStack:
    """Handles on everything the local stack started."""

    options: StackOptions
    moto: MotoServer
    simulator: NylasSimulator
    resources: ProvisionedStack
    functions: dict[str, LambdaFunction]
    gateway: ApiGateway
    pollers: list[SqsPoller]
    environment: dict[str, str]
    # A rule on the stack's event bus to a queue: `local_stack.bus.captured_events` reads what was published.
    bus_capture: BusCapture | None = None

    @property
    def api_url(self) -> str:
        return self.gateway.url

    @property
    def webhook_url(self) -> str:
        return f"{self.gateway.url}/webhook"

    @property
    def outbox(self) -> Outbox:
        return self.moto.outbox

    @property
    def queue_url(self) -> str:
        return self.resources.physical["DiagnosisQueue"]

    @property
    def dlq_url(self) -> str:
        return self.resources.physical["DiagnosisDLQ"]

    def wait_until_drained(self, timeout: float = 30) -> bool:
        return wait_until_drained([poller.queue_url for poller in self.pollers], self.pollers, timeout=timeout)

    def secret(self, key: str) -> str:
        return self.options.secret[key]


@contextmanager
def running_stack(options: StackOptions | None = None) -> Iterator[RunningStack]:
    """Starts the whole local stack, yields it, and stops everything it started (restoring the environment)."""
    options = options or StackOptions()
    saved = dict(os.environ)
    moto = MotoServer(options.host, options.aws_port)
    simulator = NylasSimulator(
        api_key=options.secret["api_key"],
        client_id=options.secret["client_id"],
        client_secret=options.secret["client_secret"],
        host=options.host,
        port=options.nylas_port,
    )
    gateway: ApiGateway | None = None
    pollers: list[SqsPoller] = []
    moto.start()
    simulator.start()
    try:
        # moto's backends are process-wide: start from an empty account even if a stack ran before.
        urllib.request.urlopen(urllib.request.Request(f"{moto.url}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310
        _point_boto3_at(moto.url)
        resources = provision(
            secret=options.secret,
            parameters={
                "NylasApiUri": simulator.url,
                "NylasV2ApiUri": simulator.url,
                "GraceSeconds": str(options.grace_seconds),
                **options.parameters,
            },
            session=boto3.Session(region_name=REGION),
        )
        bus_capture = capture_bus(resources, boto3.Session(region_name=REGION))
        environment = {
            **resources.function_environment(),
            "AWS_ENDPOINT_URL": moto.url,
            "POWERTOOLS_LOG_LEVEL": options.log_level,
        }
        os.environ.update(environment)
        get_settings.cache_clear()
        powertools_parameters.clear_caches()  # type: ignore[no-untyped-call]
        functions = functions_from_template(resources.template)
        gateway = ApiGateway(
            [f for f in functions.values() if f.routes],
            host=options.host,
            port=options.api_port,
            binary_media_types=binary_media_types(resources.template),
        ).start()
        pollers = [
            SqsPoller(
                function=functions[logical_id],
                queue_url=resources.physical[queue_id],
                queue_arn=resources.attributes[(queue_id, "Arn")],
                batch_size=batch_size,
                visibility_timeout=options.visibility_timeout,
            ).start()
            for logical_id, queue_id, batch_size in _sqs_event_sources(resources.template)
        ]
        yield RunningStack(
            options=options,
            moto=moto,
            simulator=simulator,
            resources=resources,
            functions=functions,
            gateway=gateway,
            pollers=pollers,
            environment=environment,
            bus_capture=bus_capture,
        )
    finally:
        for poller in pollers:
            poller.stop()
        if gateway:
            gateway.stop()
        simulator.stop()
        moto.stop()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        powertools_parameters.clear_caches()  # type: ignore[no-untyped-call]


def _point_boto3_at(endpoint: str) -> None:
    """Every AWS call of this process goes to moto, with throwaway credentials: never to a real account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # No X-Ray daemon locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )


def _sqs_event_sources(template: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(function, queue logical id, batch size) for every SQS trigger in the template: a SAM `Events: SQS` of a
    function, or an AWS::Lambda::EventSourceMapping on a queue (how DiagnosisFunction's are declared)."""
    sources: list[tuple[str, str, int]] = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::EventSourceMapping":
            mapping = resource["Properties"]
            function, queue = mapping["FunctionName"]["Ref"], mapping["EventSourceArn"]["Fn::GetAtt"][0]
            sources.append((function, queue, int(mapping.get("BatchSize", 10))))
            continue
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for event in resource["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            queue = event["Properties"]["Queue"]
            queue_id = queue["Fn::GetAtt"][0] if isinstance(queue, dict) else str(queue)
            sources.append((logical_id, queue_id, int(event["Properties"].get("BatchSize", 10))))
    return sources
