"""Finding the stack the commands act on: its tables, queues, secret and thresholds, as a `Target`.

In this order: an env file (`--env-file out/local-stack.env` while `make serve` runs) or the
functions' variables already in the environment; otherwise the deployed CloudFormation stack named
by --stack-name or by samconfig.toml's --config-env (region and profile likewise). From AWS the
settings are the deployed DiagnosisFunction's own environment, so the CLI diagnoses with the
thresholds and endpoints the service uses.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from account_doctor.settings import Settings, SettingsError
from account_doctor_cli.errors import OperatorError

SAMCONFIG = "samconfig.toml"
DLQ_ENV = "DIAGNOSIS_DLQ_URL"
DIAGNOSIS_FUNCTION = "DiagnosisFunction"
DLQ_OUTPUT = "DiagnosisDLQUrl"
# The variables that say "the functions' environment is here": the local stack's, or a deployed one's copied.
ENVIRONMENT_MARKERS = ("VERDICTS_TABLE", "DIAGNOSIS_QUEUE_URL")


@dataclass(frozen=True)
class Target:
    """Where the commands act: the diagnosis function's settings, the dead-letter queue, and where they came from."""

    settings: Settings
    dlq_url: str
    source: str


@dataclass(frozen=True)
class StackOptions:
    """How the operator named the stack (the global command-line options)."""

    env_file: Path | None = None
    config_env: str = "default"
    samconfig: Path = Path(SAMCONFIG)
    stack_name: str | None = None
    region: str | None = None
    profile: str | None = None


def find_target(options: StackOptions, environ: MutableMapping[str, str] = os.environ) -> Target:
    """The target the options name. Sets the process's AWS profile/region/endpoint so every client follows it."""
    if options.env_file is not None:
        values = read_env_file(options.env_file)
        missing = [name for name in ENVIRONMENT_MARKERS if not values.get(name)]
        if missing:
            raise OperatorError(
                f"{options.env_file} does not hold the functions' environment ({', '.join(missing)} not set): "
                "use the file `make serve` writes (out/local-stack.env)"
            )
        # boto3 clients built later (the stores, Powertools' secret reader) read AWS_ENDPOINT_URL and keys from here.
        environ.update(values)
        return _target_from_environment(environ, f"env file {options.env_file}")
    if not options.stack_name and all(environ.get(name) for name in ENVIRONMENT_MARKERS):
        return _target_from_environment(environ, "the environment")
    samconfig = load_samconfig(options.samconfig, options.config_env)
    stack_name = options.stack_name or samconfig.get("stack_name")
    if not stack_name:
        raise OperatorError(
            "no stack to act on: pass --stack-name, set stack_name in samconfig.toml, or use the local stack "
            "(`account-doctor --env-file out/local-stack.env …` while `make serve` runs)"
        )
    region = options.region or samconfig.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    profile = options.profile or samconfig.get("profile")
    if profile:
        environ["AWS_PROFILE"] = str(profile)
    if region:
        environ["AWS_DEFAULT_REGION"] = str(region)
    session = boto3.Session(profile_name=str(profile) if profile else None, region_name=str(region) if region else None)
    return _target_from_stack(str(stack_name), session)


def load_samconfig(path: Path, config_env: str) -> dict[str, Any]:
    """samconfig.toml's global parameters (stack_name, region, profile) for one environment; {} without the file."""
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            config = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise OperatorError(f"{path} is not valid TOML ({error}): fix it or pass --samconfig") from error
    if not isinstance(config.get(config_env), dict):
        known = ", ".join(name for name, value in config.items() if isinstance(value, dict)) or "none"
        raise OperatorError(f"{path} has no [{config_env}] environment (known: {known}): pass --config-env")
    parameters = config[config_env].get("global", {}).get("parameters", {})
    return dict(parameters) if isinstance(parameters, dict) else {}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments are skipped."""
    if not path.is_file():
        raise OperatorError(f"{path} does not exist: start the local stack with `make serve`, which writes it")
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, separator, value = line.partition("=")
        if separator and name.strip() and not name.lstrip().startswith("#"):
            values[name.strip()] = value
    return values


def _target_from_environment(environ: Mapping[str, str], where: str) -> Target:
    try:
        settings = Settings.from_env(environ)
    except SettingsError as error:
        raise OperatorError(f"the functions' environment from {where} is incomplete: {error}") from error
    endpoint = environ.get("AWS_ENDPOINT_URL")
    return Target(settings, environ.get(DLQ_ENV, ""), f"{where} ({endpoint or 'AWS'})")


def _target_from_stack(stack_name: str, session: boto3.Session) -> Target:
    """The settings the deployed DiagnosisFunction runs with: its own environment variables."""
    cloudformation = session.client("cloudformation")
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        function_name = cloudformation.describe_stack_resource(
            StackName=stack_name, LogicalResourceId=DIAGNOSIS_FUNCTION
        )["StackResourceDetail"]["PhysicalResourceId"]
    except ClientError as error:
        # CloudFormation answers a missing stack or resource with a ValidationError, not a NotFound code.
        if "does not exist" in str(error):
            raise OperatorError(
                f"stack {stack_name} (or its {DIAGNOSIS_FUNCTION}) does not exist in {session.region_name}: "
                "deploy it with `sam deploy`, or pass --stack-name/--region/--config-env"
            ) from error
        raise
    configuration = session.client("lambda").get_function_configuration(FunctionName=function_name)
    environment = configuration.get("Environment", {}).get("Variables", {})
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    try:
        settings = Settings.from_env(environment)
    except SettingsError as error:
        raise OperatorError(f"{function_name} of stack {stack_name} is not configured as expected: {error}") from error
    return Target(settings, outputs.get(DLQ_OUTPUT, ""), f"stack {stack_name} ({session.region_name})")
