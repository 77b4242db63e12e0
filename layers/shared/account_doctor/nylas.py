"""The Nylas API client: what Nylas says about a grant (v3) or account (v2) right now (SPEC §3).

The one HTTP client setup of the project: a `requests.Session` whose adapter retries
timeouts, 429 (honouring Retry-After) and 5xx with backoff. When the retries run out the
caller gets `NylasUnavailable` and the queue message is retried later; when Nylas rejects
*our* credentials it gets `NylasConfigError`, never a verdict built on that answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import requests
from aws_lambda_powertools import Logger
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from account_doctor.addresses import mask_email
from account_doctor.credentials import NylasCredentials, load_credentials
from account_doctor.feed import Destination
from account_doctor.models import AccountEvent, AccountState, ApiVersion, from_epoch
from account_doctor.providers import EXCHANGE_PROVIDERS
from account_doctor.settings import Settings, SweepSettings

logger = Logger(child=True)

# (connect, read) seconds. The Lambda timeout is 60 s; a batch overlaps its calls, so one
# stuck call costs at most the read timeout times the attempts, well inside it.
TIMEOUTS = (3.05, 10.0)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A Retry-After longer than this is not waited out inside the invocation: the message goes
# back to the queue and its visibility timeout does the waiting.
MAX_RETRY_AFTER_SECONDS = 15.0
# The list endpoints' page sizes (SPEC §3b): v3 grants take limit=200; v2 accounts default to 100.
GRANTS_PAGE_SIZE = 200
V2_ACCOUNTS_PAGE_SIZE = 100
# v2 sync states that mean the account is broken (SPEC §3b); sync-error and the others are not listed.
V2_BROKEN_SYNC_STATES = frozenset({"invalid", "stopped"})
# 1,000,000 grants at 200 a page: beyond any application, and a stop for a server that ignores `offset`.
MAX_LIST_PAGES = 5000


class NylasError(RuntimeError):
    """Nylas could not answer; the queue message is retried."""


class NylasUnavailable(NylasError):
    """Timeouts, 429 or 5xx beyond the retries, or an unexpected answer."""


class NylasConfigError(NylasError):
    """Nylas rejected our credentials (401/403): the secret holds a wrong api_key or client_secret."""


class _BoundedRetry(Retry):
    """urllib3's Retry, except that an absurd Retry-After fails fast instead of stalling the batch."""

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is not None and seconds > MAX_RETRY_AFTER_SECONDS:
            raise NylasUnavailable(f"Nylas asked to retry after {seconds:.0f} s; leaving it to the queue")
        return seconds


@dataclass(frozen=True)
class ListedAccount:
    """A broken grant (v3) or account (v2) as Nylas's list endpoints describe it (SPEC §3b)."""

    account_id: str
    api_version: ApiVersion
    status: str  # v3 grant_status `invalid`; v2 sync_state `invalid` | `stopped`
    provider: str | None = None
    email: str | None = None
    updated_at: str | None = None  # v3 only: when Nylas last changed the grant (ISO)
    created_at: str | None = None  # v3 only: when the grant was made, its first consent (ISO)


def build_session(*, total_retries: int = 3, backoff_factor: float = 0.5, pool_size: int = 16) -> requests.Session:
    retry = _BoundedRetry(
        total=total_retries,
        connect=total_retries,
        read=total_retries,
        status=total_retries,
        backoff_factor=backoff_factor,
        backoff_max=8,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=True,
    )
    # Pool as large as a batch, so the batch's concurrent calls never queue for a connection.
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["Accept"] = "application/json"
    return session


class NylasClient:
    def __init__(
        self,
        settings: Settings | SweepSettings,
        *,
        credentials: Callable[[], NylasCredentials] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self._settings = settings
        # Read on every call: Powertools caches the secret, and a rotated one is picked up.
        self._credentials = credentials or (lambda: load_credentials(settings.nylas_secret_name))
        self._session = session or build_session()

    def account_state(self, event: AccountEvent) -> AccountState:
        if event.api_version == "v2":
            return self.v2_account(event.account_id)
        return self.grant(event.account_id)

    def grant(self, grant_id: str) -> AccountState:
        """v3 `GET /v3/grants/{id}`; a 404 means the grant is gone."""
        credentials = self._credentials()
        headers = {"Authorization": f"Bearer {credentials.api_key}"}
        url = f"{self._settings.nylas_api_uri}/v3/grants/{_segment(grant_id)}"
        response = self._get(url, headers=headers, check="api_key")
        if response.status_code == 404:
            return AccountState(exists=False)
        grant = _json(response).get("data")
        if not isinstance(grant, dict) or not isinstance(grant.get("grant_status"), str):
            # Without the grant's status any verdict would be a guess: fail, and let the queue retry.
            raise NylasUnavailable("Nylas answered a grant without data.grant_status")
        provider = _optional_text(grant.get("provider"))
        state = AccountState(
            exists=True,
            status=_optional_text(grant.get("grant_status")),
            provider=provider,
            email=_optional_text(grant.get("email")),
            created_at=_instant_from_epoch(grant.get("created_at")),
            updated_at=_instant_from_epoch(grant.get("updated_at")),
        )
        if provider and provider.lower() in EXCHANGE_PROVIDERS:
            state = replace(state, inbox_count=self._inbox_count(grant_id, headers))
        logger.debug("grant state", extra={"status": state.status, "email": mask_email(state.email)})
        return state

    def v2_account(self, account_id: str) -> AccountState:
        """v2 `GET /a/{client_id}/accounts/{id}`, HTTP Basic with the client secret."""
        credentials = self._credentials()
        url = f"{self._settings.nylas_v2_api_uri}/a/{_segment(credentials.client_id)}/accounts/{_segment(account_id)}"
        response = self._get(url, auth=(credentials.client_secret, ""), check="client_id/client_secret")
        if response.status_code == 404:
            return AccountState(exists=False)
        account = _json(response)
        if not isinstance(account.get("sync_state"), str):
            raise NylasUnavailable("Nylas answered an account without sync_state")
        return AccountState(
            exists=True,
            status=_optional_text(account.get("sync_state")),
            billing_state=_optional_text(account.get("billing_state")),
            provider=_optional_text(account.get("provider")),
            email=_optional_text(account.get("email_address") or account.get("email")),
        )

    # Listing (the reconciliation sweep, SPEC §3b) ------------------------------------------------

    def invalid_grants(self, *, page_size: int = GRANTS_PAGE_SIZE) -> Iterator[list[ListedAccount]]:
        """Every page of v3 `GET /v3/grants?grant_status=invalid`, one request after another.

        Sequential on purpose: the list endpoints share the application's rate limit with the
        diagnosis' grant lookups. A page that still gets 429 after the retries raises NylasUnavailable.
        """
        credentials = self._credentials()
        headers = {"Authorization": f"Bearer {credentials.api_key}"}
        url = f"{self._settings.nylas_api_uri}/v3/grants"
        filters = {"grant_status": "invalid"}
        for page in self._pages(url, page_size, _grants_of, params=filters, headers=headers, check="api_key"):
            # The filter is also applied here: a valid grant must never be reported as broken.
            yield [grant for grant in map(_listed_grant, page) if grant is not None and grant.status == "invalid"]

    def v2_configured(self) -> bool:
        """Whether the secret holds the v2 credentials (client_id and client_secret) the accounts list needs."""
        credentials = self._credentials()
        return bool(credentials.client_id and credentials.client_secret)

    def broken_v2_accounts(self, *, page_size: int = V2_ACCOUNTS_PAGE_SIZE) -> Iterator[list[ListedAccount]]:
        """Every page of v2 `GET /a/{client_id}/accounts`, keeping the `invalid` and `stopped` ones.

        The v2 list has no sync_state filter, so every account is read and the broken ones kept.
        """
        credentials = self._credentials()
        url = f"{self._settings.nylas_v2_api_uri}/a/{_segment(credentials.client_id)}/accounts"
        auth = (credentials.client_secret, "")
        for page in self._pages(url, page_size, _accounts_of, auth=auth, check="client_id/client_secret"):
            yield [
                account
                for account in map(_listed_v2_account, page)
                if account is not None and account.status in V2_BROKEN_SYNC_STATES
            ]

    # The census (SPEC §3c) and the webhook feed (§3d) -------------------------------------------

    def grants_page(self, offset: int, *, page_size: int = GRANTS_PAGE_SIZE) -> tuple[int, list[ListedAccount]]:
        """One page of every v3 grant, valid or not: (rows Nylas returned, the grants among them)."""
        credentials = self._credentials()
        headers = {"Authorization": f"Bearer {credentials.api_key}"}
        url = f"{self._settings.nylas_api_uri}/v3/grants"
        rows = self._page(url, offset, page_size, _grants_of, headers=headers, check="api_key")
        return len(rows), [grant for grant in map(_listed_grant, rows) if grant is not None]

    def v2_accounts_page(
        self, offset: int, *, page_size: int = V2_ACCOUNTS_PAGE_SIZE
    ) -> tuple[int, list[ListedAccount]]:
        """One page of every v2 account, whatever its sync state: (rows Nylas returned, the accounts among them)."""
        credentials = self._credentials()
        url = f"{self._settings.nylas_v2_api_uri}/a/{_segment(credentials.client_id)}/accounts"
        rows = self._page(
            url, offset, page_size, _accounts_of, auth=(credentials.client_secret, ""), check="client_id/client_secret"
        )
        return len(rows), [account for account in map(_listed_v2_account, rows) if account is not None]

    def webhook_destinations(self) -> list[Destination] | None:
        """v3 `GET /v3/webhooks`; None when Nylas could not be asked (404, 5xx or a timeout: the feed is unknown).
        Rejected credentials raise NylasConfigError, as everywhere."""
        credentials = self._credentials()
        headers = {"Authorization": f"Bearer {credentials.api_key}"}
        try:
            response = self._get(f"{self._settings.nylas_api_uri}/v3/webhooks", headers=headers, check="api_key")
            if response.status_code == 404:
                return None
            data = _json(response).get("data")
        except NylasConfigError:
            raise
        except NylasUnavailable as error:
            logger.warning(f"the webhook feed is unknown: {error}")
            return None
        if not isinstance(data, list):
            logger.warning("the webhook feed is unknown: Nylas answered GET /v3/webhooks without a data array")
            return None
        return [d for d in map(_destination, data) if d is not None]

    def _page(
        self,
        url: str,
        offset: int,
        page_size: int,
        items_of: Callable[[requests.Response], list[Any]],
        *,
        check: str,
        **kwargs: Any,
    ) -> list[Any]:
        query = {"limit": str(page_size), "offset": str(offset)}
        response = self._get(url, params=query, check=check, **kwargs)
        if response.status_code == 404:
            raise NylasConfigError(f"Nylas answered 404 to GET {_path(url)}: check the Nylas API URI parameters")
        return items_of(response)

    def _pages(
        self,
        url: str,
        page_size: int,
        items_of: Callable[[requests.Response], list[Any]],
        *,
        params: dict[str, str] | None = None,
        check: str,
        **kwargs: Any,
    ) -> Iterator[list[Any]]:
        """Each page's raw items, by limit and offset, until a page comes back short."""
        offset = 0
        for _ in range(MAX_LIST_PAGES):
            query = {**(params or {}), "limit": str(page_size), "offset": str(offset)}
            response = self._get(url, params=query, check=check, **kwargs)
            if response.status_code == 404:
                # A list endpoint exists whatever the application holds: the API URI is wrong.
                raise NylasConfigError(f"Nylas answered 404 to GET {_path(url)}: check the Nylas API URI parameters")
            items = items_of(response)
            yield items
            if len(items) < page_size:
                return
            offset += len(items)
        logger.warning("stopped listing after the page limit", extra={"path": _path(url), "pages": MAX_LIST_PAGES})

    def _inbox_count(self, grant_id: str, headers: dict[str, str]) -> int | None:
        """The INBOX folder's total_count, or None when Nylas cannot tell (an invalid grant usually cannot)."""
        url = f"{self._settings.nylas_api_uri}/v3/grants/{_segment(grant_id)}/folders"
        try:
            response = self._session.get(url, headers=headers, timeout=TIMEOUTS)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None
        try:
            folders = response.json().get("data") or []
        except ValueError:
            return None
        for folder in folders:
            if not isinstance(folder, dict):
                continue
            names = {str(folder.get("id", "")).upper(), str(folder.get("name", "")).upper()}
            attributes = {str(a).lower() for a in folder.get("attributes") or []}
            if "INBOX" in names or "\\inbox" in attributes:
                count = folder.get("total_count")
                return int(count) if isinstance(count, int) else None
        return None

    def _get(self, url: str, *, check: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.get(url, timeout=TIMEOUTS, **kwargs)
        except NylasUnavailable:
            raise
        except requests.RequestException as error:
            raise NylasUnavailable(f"Nylas did not answer GET {_path(url)}: {type(error).__name__}") from error
        if response.status_code in (401, 403):
            logger.error(
                f"Nylas rejected our credentials ({response.status_code}) for GET {_path(url)}: "
                f"check {check} in secret {self._settings.nylas_secret_name}",
                extra={"status_code": response.status_code},
            )
            raise NylasConfigError(
                f"Nylas answered {response.status_code}: check {check} in secret {self._settings.nylas_secret_name}"
            )
        if response.status_code != 404 and not response.ok:
            raise NylasUnavailable(f"Nylas answered {response.status_code} to GET {_path(url)}")
        return response


def _grants_of(response: requests.Response) -> list[Any]:
    data = _json(response).get("data")
    if not isinstance(data, list):
        raise NylasUnavailable("Nylas answered a grants list without a data array")
    return data


def _accounts_of(response: requests.Response) -> list[Any]:
    body = _body(response)
    if not isinstance(body, list):
        raise NylasUnavailable("Nylas answered an accounts list that is not a JSON array")
    return body


def _listed_grant(grant: Any) -> ListedAccount | None:
    if not isinstance(grant, dict) or not _optional_text(grant.get("id")):
        return None
    return ListedAccount(
        account_id=str(grant["id"]),
        api_version="v3",
        status=_optional_text(grant.get("grant_status")) or "",
        provider=_optional_text(grant.get("provider")),
        email=_optional_text(grant.get("email")),
        updated_at=_instant_from_epoch(grant.get("updated_at")),
        created_at=_instant_from_epoch(grant.get("created_at")),
    )


def _destination(item: Any) -> Destination | None:
    if not isinstance(item, dict) or not _optional_text(item.get("id")):
        return None
    triggers = item.get("trigger_types")
    return Destination(
        webhook_id=str(item["id"]),
        status=_optional_text(item.get("status")) or "unknown",
        trigger_types=tuple(str(t) for t in triggers) if isinstance(triggers, list) else (),
        webhook_url=_optional_text(item.get("webhook_url")),
        description=_optional_text(item.get("description")),
    )


def _listed_v2_account(account: Any) -> ListedAccount | None:
    if not isinstance(account, dict):
        return None
    # The id webhooks carry as account_id; the management list names it both ways.
    account_id = _optional_text(account.get("account_id")) or _optional_text(account.get("id"))
    if account_id is None:
        return None
    return ListedAccount(
        account_id=account_id,
        api_version="v2",
        status=_optional_text(account.get("sync_state")) or "",
        provider=_optional_text(account.get("provider")),
        email=_optional_text(account.get("email_address") or account.get("email")),
    )


def _segment(value: str) -> str:
    return quote(value, safe="")


def _path(url: str) -> str:
    """The URL without its host, for logs: ids only, and v2's client_id (a credential) as a placeholder."""
    path = "/" + url.split("://", 1)[-1].split("/", 1)[-1]
    return re.sub(r"^/a/[^/]+/", "/a/{client_id}/", path)


def _json(response: requests.Response) -> dict[str, Any]:
    body = _body(response)
    if not isinstance(body, dict):
        raise NylasUnavailable("Nylas answered with JSON that is not an object")
    return body


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise NylasUnavailable(f"Nylas answered {response.status_code} with a body that is not JSON") from error


def _optional_text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _instant_from_epoch(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return from_epoch(value)
    return None
