"""Every `next` cursor a caller tampered with is a 400 on the read API and exit 2 on the CLI, never a 502.

A cursor is opaque but comes back from the caller: whatever its shape, it must be refused before boto3 or
the store's paging reads it (boto3's ParamValidationError and a ValueError were 502s that tripped the alarm).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from account_doctor.stores.dynamo import InvalidCursor, Table, dynamodb_client
from account_doctor.stores.incidents import IncidentStore
from local_stack.payloads import FakeLambdaContext, api_gateway_event, load_handler
from local_stack.template import ProvisionedStack
from tests.integration.test_cli import Run, assert_operator_mistake

pytestmark = pytest.mark.usefixtures("aws")


def token(value: Any) -> str:
    """A cursor as this API encodes one (base64url JSON), holding whatever a caller chose to put in it."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


KEY_CURSORS = {
    "not base64": "%%%",
    "not JSON": token("x")[:-2] + "!!",
    "a list": token([1]),
    "a number where a typed value belongs": token({"account_id": {"S": 5}}),
    "an unknown DynamoDB type": token({"account_id": {"X": "y"}}),
    "two types in one value": token({"account_id": {"S": "a", "N": "1"}}),
    "a number that is not one": token({"account_id": {"S": "a"}, "sk": {"N": "x"}}),
    "a nested map": token({"account_id": {"M": {"a": {"S": "b"}}}}),
    "too many attributes": token({f"k{n}": {"S": "v"} for n in range(9)}),
    "an empty key": token({}),
}
SHARDED_CURSORS = {
    # "²".isdigit() is true, int("²") is a ValueError.
    "a superscript shard": "²:",
    "a shard past the last": "9:",
    "a negative shard": "-1:",
    "no shard at all": "nonsense",
    "a tampered position": "0:" + token({"pk": {"S": 5}}),
}
BROKEN_CURSORS = {
    **KEY_CURSORS,
    "a shard missing": token({str(n): None for n in range(7)}),
    "a position of the wrong type": token({str(n): [1] for n in range(8)}),
    "a tampered position": token({**{str(n): None for n in range(8)}, "0": token({"account_id": {"S": 5}})}),
}

ROUTES: list[tuple[str, str, dict[str, str] | None, dict[str, str], dict[str, str]]] = [
    ("/accounts/grant-1", "/accounts/{account_id}", {"account_id": "grant-1"}, {}, KEY_CURSORS),
    ("/domains/acme.example", "/domains/{domain}", {"domain": "acme.example"}, {}, KEY_CURSORS),
    ("/accounts", "/accounts", None, {"status": "broken"}, BROKEN_CURSORS),
    ("/incidents", "/incidents", None, {"status": "open"}, KEY_CURSORS),
    ("/incidents", "/incidents", None, {"status": "resolved"}, KEY_CURSORS),
    ("/incidents", "/incidents", None, {"status": "all"}, SHARDED_CURSORS),
]
CASES = [
    pytest.param(path, resource, params, {**query, "next": cursor}, id=f"{path}?{query}-{name}")
    for path, resource, params, query, cursors in ROUTES
    for name, cursor in cursors.items()
]


@pytest.mark.parametrize(("path", "resource", "params", "query"), CASES)
def test_a_tampered_cursor_is_a_400_that_says_what_to_pass(
    path: str, resource: str, params: dict[str, str] | None, query: dict[str, str]
) -> None:
    api = load_handler("accounts_api")
    event = api_gateway_event("GET", path, resource=resource, path_parameters=params, query=list(query.items()))
    response = api.lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 400, response
    assert "pass the `next` value of the previous page" in json.loads(response["body"])["message"]


@pytest.mark.parametrize("cursor", [*SHARDED_CURSORS.values(), "0:%%%"])
def test_a_tampered_member_cursor_is_refused(aws: ProvisionedStack, cursor: str) -> None:
    incidents = IncidentStore(Table(aws.function_environment()["INCIDENTS_TABLE"], dynamodb_client()))
    with pytest.raises(InvalidCursor):
        incidents.members("domain-acme.example-20261122T0812-1a2b3c4d5e", 10, cursor)


def test_the_cursors_this_api_hands_out_still_page(aws: ProvisionedStack) -> None:
    incidents = IncidentStore(Table(aws.function_environment()["INCIDENTS_TABLE"], dynamodb_client()))
    assert incidents.by_status("all", 10, "1:") == ([], None)
    assert incidents.members("domain-acme.example-20261122T0812-1a2b3c4d5e", 10, "7:") == ([], None)


@pytest.mark.parametrize(
    "argv",
    [
        ["broken", "--cursor", BROKEN_CURSORS["a number where a typed value belongs"]],
        ["verdicts", "grant-1", "--cursor", KEY_CURSORS["an unknown DynamoDB type"]],
        ["incidents", "--status", "all", "--cursor", "²:"],
    ],
)
def test_the_cli_names_a_tampered_cursor_in_one_line(cli_run: Callable[..., Run], argv: list[str]) -> None:
    assert_operator_mistake(cli_run(*argv), "next", "previous page")
