"""Creates the stack's AWS resources from template.yaml's own definitions, against moto or any endpoint.

Tests and the local stack both go through here, so there is exactly one copy of every
table key, index, queue setting and environment variable: the template's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import decode

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template with its short-form tags (!Ref, !GetAtt, !Sub, …) in their long forms, as cfn-lint reads it."""
    template, problems = decode(str(path))
    if problems or template is None:
        raise ValueError(f"{path} cannot be read: " + "; ".join(str(problem) for problem in problems))
    # cfn-lint's nodes are dict/list/str subclasses carrying line numbers, defined per call: they cannot be
    # pickled. Plain JSON values are all the local stack and the tests need.
    plain: dict[str, Any] = json.loads(json.dumps(template))
    return plain


@dataclass
class ProvisionedStack:
    """The resources created for one run: physical names by logical id, and the functions' environment."""

    template: dict[str, Any]
    parameters: dict[str, str]
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """Evaluates the intrinsic functions the template uses for environment values."""
        if isinstance(value, dict) and len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Ref":
                if arg in self.parameters:
                    return self.parameters[arg]
                if arg == "AWS::Region":
                    return "us-east-1"
                return self.physical[arg]
            if name == "Fn::GetAtt":
                return self.attributes[(arg[0], arg[1])]
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ValueError(f"template value {value!r} cannot be resolved locally")

    def function_environment(self, function: str | None = None) -> dict[str, str]:
        """A function's environment (Globals plus its own variables), every reference resolved locally.

        Without a function: every function's variables together, as one process running them all (the
        local stack, the tests) needs them. Functions agree on the value of every variable they share but
        NYLAS_SECRET_NAME: WebhookFunction's names its own secret (verification keys only) and comes first
        in the template, so the merged value is the API credentials' secret the diagnosis and the CLI need;
        every local secret holds the full test credentials, so the webhook verifies with either.
        """
        variables = dict(self.template["Globals"]["Function"]["Environment"]["Variables"])
        for logical_id, properties in self.resources_of("AWS::Serverless::Function").items():
            if function is None or logical_id == function:
                variables.update(properties.get("Environment", {}).get("Variables", {}))
        return {name: self.resolve(value) for name, value in variables.items()}

    def resources_of(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource.get("Properties", {})
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type
        }


def default_parameters(template: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


def provision(
    *,
    secret: Mapping[str, str],
    parameters: Mapping[str, str] | None = None,
    session: boto3.Session | None = None,
    prefix: str = "account-doctor",
    template_path: Path = TEMPLATE_PATH,
) -> ProvisionedStack:
    """Creates the template's queues, tables, secret and SES identity; returns names and environment.

    Works against whatever endpoint boto3 is pointed at (moto's `mock_aws`, or a moto
    server through AWS_ENDPOINT_URL). Only the resource types the stack uses are supported.
    """
    template = load_template(template_path)
    stack = ProvisionedStack(template=template, parameters={**default_parameters(template), **(parameters or {})})
    session = session or boto3.Session(region_name="us-east-1")
    _create_queues(stack, session, prefix)
    _create_tables(stack, session, prefix)
    _create_secrets(stack, session, prefix, secret)
    _create_identities(stack, session)
    _create_event_buses(stack, session, prefix)
    _create_configuration_sets(stack, session, prefix)
    return stack


def _create_queues(stack: ProvisionedStack, session: boto3.Session, prefix: str) -> None:
    sqs = session.client("sqs")
    pending = stack.resources_of("AWS::SQS::Queue")
    # Dead-letter queues first: their ARNs go into the redrive policies of the others.
    for logical_id in sorted(pending, key=lambda lid: "RedrivePolicy" in pending[lid]):
        properties = pending[logical_id]
        attributes: dict[Any, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "SqsManagedSseEnabled"):
            if key in properties:
                attributes[key] = (
                    str(properties[key]).lower() if isinstance(properties[key], bool) else str(properties[key])
                )
        if "RedrivePolicy" in properties:
            policy = properties["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": stack.resolve(policy["deadLetterTargetArn"]),
                    "maxReceiveCount": str(policy["maxReceiveCount"]),
                }
            )
        url = sqs.create_queue(QueueName=f"{prefix}-{logical_id}", Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.physical[logical_id] = url
        stack.attributes[(logical_id, "Arn")] = arn
        stack.attributes[(logical_id, "QueueName")] = f"{prefix}-{logical_id}"


def _create_tables(stack: ProvisionedStack, session: boto3.Session, prefix: str) -> None:
    dynamodb = session.client("dynamodb")
    for logical_id, properties in stack.resources_of("AWS::DynamoDB::Table").items():
        name = f"{prefix}-{logical_id}"
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if "GlobalSecondaryIndexes" in properties:
            request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        dynamodb.create_table(**request)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        stack.physical[logical_id] = name


def _create_secrets(stack: ProvisionedStack, session: boto3.Session, prefix: str, secret: Mapping[str, str]) -> None:
    secretsmanager = session.client("secretsmanager")
    for logical_id, properties in stack.resources_of("AWS::SecretsManager::Secret").items():
        # The template creates its secrets empty (a redeploy must never overwrite what the operator put in);
        # locally each gets the given credentials, keyed as SPEC §7 names them.
        value = {**json.loads(properties.get("SecretString", "{}")), **secret}
        name = f"{prefix}-{logical_id}"
        secretsmanager.create_secret(Name=name, SecretString=json.dumps(value))
        stack.physical[logical_id] = name


def _create_identities(stack: ProvisionedStack, session: boto3.Session) -> None:
    ses = session.client("sesv2")
    for logical_id, properties in stack.resources_of("AWS::SES::EmailIdentity").items():
        identity = stack.resolve(properties["EmailIdentity"])
        ses.create_email_identity(EmailIdentity=identity)
        stack.physical[logical_id] = identity


def _create_event_buses(stack: ProvisionedStack, session: boto3.Session, prefix: str) -> None:
    events = session.client("events")
    for logical_id in stack.resources_of("AWS::Events::EventBus"):
        name = f"{prefix}-{logical_id}"
        arn = events.create_event_bus(Name=name)["EventBusArn"]
        stack.physical[logical_id] = name
        stack.attributes[(logical_id, "Arn")] = arn
        stack.attributes[(logical_id, "Name")] = name


def _create_configuration_sets(stack: ProvisionedStack, session: boto3.Session, prefix: str) -> None:
    ses = session.client("sesv2")
    for logical_id in stack.resources_of("AWS::SES::ConfigurationSet"):
        name = f"{prefix}-{logical_id}"
        ses.create_configuration_set(ConfigurationSetName=name)
        stack.physical[logical_id] = name
