"""AccountsApiFunction: the IAM-authenticated read API over accounts, domains, incidents and recovery (SPEC §6)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.accounts_api import BrokenFilter, InvalidRequest, NotFound, build_read_api, page_limit
from account_doctor.settings import ReadApiSettings, get_settings
from account_doctor.stores.dynamo import InvalidCursor

# Routes are not traced one by one: each makes one call into the core, whose DynamoDB calls X-Ray already
# shows under the handler's segment.
# No Powertools Metrics: a read has nothing to count that API Gateway's own request, latency and
# error metrics do not already show.
logger = Logger()
tracer = Tracer()
app = APIGatewayRestResolver()

api = build_read_api(get_settings(ReadApiSettings))


def bad_request(error: ValueError) -> Response[str]:
    """Every malformed id, domain, status, limit or cursor: a 400 that says what is expected."""
    return _error(400, str(error))


def not_found(error: NotFound) -> Response[str]:
    """An account, domain or incident this stack never saw: a 404 that names it."""
    return _error(404, str(error))


# Registered by call rather than as a decorator: Powertools' decorator is untyped, and would hide the signature.
app.exception_handler([InvalidRequest, InvalidCursor])(bad_request)
app.exception_handler(NotFound)(not_found)


def _error(status: int, message: str) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=_dumps({"message": message}))


def _dumps(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value)


def _paging() -> tuple[int, str | None]:
    return page_limit(app.current_event.get_query_string_value("limit")), app.current_event.get_query_string_value(
        "next"
    )


@app.get("/accounts")
def list_accounts() -> dict[str, Any]:
    status = app.current_event.get_query_string_value("status", "broken")
    if status != "broken":
        raise InvalidRequest("status must be broken (the list of accounts whose latest event is a failure)")
    query = app.current_event.get_query_string_value
    wanted = BrokenFilter.of(query("cause"), query("provider"), query("domain"))
    return api.broken_accounts(*_paging(), wanted=wanted)


@app.get("/accounts/<account_id>")
def get_account(account_id: str) -> dict[str, Any]:
    return api.account(account_id, *_paging())


@app.get("/domains/<domain>")
def get_domain(domain: str) -> dict[str, Any]:
    return api.domain(domain, *_paging())


@app.get("/incidents")
def list_incidents() -> dict[str, Any]:
    return api.incidents_list(app.current_event.get_query_string_value("status", "open"), *_paging())


@app.get("/incidents/<incident_id>")
def get_incident(incident_id: str) -> dict[str, Any]:
    return api.incident(incident_id, *_paging(), app.current_event.get_query_string_value("at_risk_next"))


@app.post("/incidents/<incident_id>/release")
def release_incident(incident_id: str) -> dict[str, Any]:
    return api.release_incident(incident_id)


@app.post("/incidents/<incident_id>/resolve")
def resolve_incident(incident_id: str) -> dict[str, Any]:
    return api.resolve_incident(incident_id)


@app.get("/reports/recovery")
def recovery_report() -> dict[str, Any]:
    return api.recovery_report(app.current_event.get_query_string_value("days"))


@app.get("/health")
def get_health() -> dict[str, Any]:
    return api.health()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
