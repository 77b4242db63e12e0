"""What the CLI tells an operator when a command cannot run: one line that says what to do, and an exit status.

Status 2 is a mistake the operator can fix (an id, a flag, credentials, a stack that is not there);
status 1 is AWS or Nylas failing on their side. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)

from account_doctor.accounts_api import InvalidRequest
from account_doctor.credentials import CredentialsError
from account_doctor.nylas import NylasConfigError, NylasError
from account_doctor.settings import SettingsError
from account_doctor.stores.dynamo import InvalidCursor

OPERATOR_MISTAKE = 2
# AWS or Nylas failing on their side: trying again later may work.
UPSTREAM_FAILURE = 1

# Codes that mean "your credentials, permissions or resources", not "AWS is having a bad day".
_FIXABLE_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)
_CREDENTIALS_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)


class OperatorError(RuntimeError):
    """Something the operator can fix; the message says how."""


@dataclass(frozen=True)
class Failure:
    message: str
    status: int


def explain(error: BaseException) -> Failure | None:
    """The line to print for an error an operator or AWS caused; None for a bug."""
    if isinstance(error, (OperatorError, SettingsError, InvalidRequest, InvalidCursor)):
        return _fixable(str(error))
    if isinstance(error, (NylasConfigError, CredentialsError)):
        return _fixable(f"Nylas credentials: {error}")
    if isinstance(error, NylasError):
        return Failure(_one_line(f"{error}; try again later"), UPSTREAM_FAILURE)
    if isinstance(error, _CREDENTIALS_ERRORS):
        return _fixable(f"no usable AWS credentials ({error}): pass --profile, set AWS_PROFILE, or run `aws sso login`")
    if isinstance(error, ProfileNotFound):
        return _fixable(f"{error}: pass an existing --profile (see ~/.aws/config)")
    if isinstance(error, NoRegionError):
        return _fixable("no AWS region: pass --region, or set region in samconfig.toml or AWS_REGION")
    if isinstance(error, EndpointConnectionError):
        local = os.environ.get("AWS_ENDPOINT_URL")
        hint = f": is the local stack running (`make serve`, endpoint {local})?" if local else ""
        return _fixable(f"{error}{hint}")
    if isinstance(error, GetParameterError):
        # Powertools wraps whatever stopped the secret's read (permissions, a missing secret, credentials).
        return _fixable(f"cannot read the Nylas secret ({error}): diagnose needs secretsmanager:GetSecretValue on it")
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _FIXABLE_CODES:
            return _fixable(f"AWS refused the call: {error}")
        return Failure(_one_line(f"AWS failed the call, try again: {error}"), UPSTREAM_FAILURE)
    if isinstance(error, BotoCoreError):
        return Failure(_one_line(f"AWS failed the call, try again: {error}"), UPSTREAM_FAILURE)
    return None


def _fixable(message: str) -> Failure:
    return Failure(_one_line(message), OPERATOR_MISTAKE)


def _one_line(message: str) -> str:
    """AWS messages sometimes carry newlines; the operator gets one line whatever the source."""
    return " ".join(message.split())
