"""AccountsApiFunction: GET /accounts/{account_id} and GET /domains/{domain} over the verdicts (IAM-authenticated)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from account_doctor.accounts_api import AccountsApi, InvalidRequest
from account_doctor.history import History
from account_doctor.service import policy_from
from account_doctor.settings import get_settings

# No Powertools Metrics: a read has nothing to count that API Gateway's own request, latency and
# error metrics do not already show.
logger = Logger()
tracer = Tracer()
app = APIGatewayRestResolver()

settings = get_settings()
api = AccountsApi(History(settings.events_table, settings.verdicts_table), policy_from(settings))


@app.get("/accounts/<account_id>")
@tracer.capture_method
def get_account(account_id: str) -> dict[str, Any]:
    try:
        account = api.account(account_id)
    except InvalidRequest as error:
        raise BadRequestError(str(error)) from error
    if account is None:
        raise NotFoundError(f"no events or verdicts for account {account_id}")
    return account


@app.get("/domains/<domain>")
@tracer.capture_method
def get_domain(domain: str) -> dict[str, Any]:
    try:
        found = api.domain(domain)
    except InvalidRequest as error:
        raise BadRequestError(str(error)) from error
    if found is None:
        raise NotFoundError(f"no failures or verdicts for domain {domain}")
    return found


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
