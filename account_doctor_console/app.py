"""The console's routes: each asks `pages` for what it shows and renders one Jinja2 template (autoescaped)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from account_doctor.accounts_api import InvalidRequest, NotFound
from account_doctor.models import parse_iso
from account_doctor.stores.dynamo import InvalidCursor
from account_doctor_console import pages
from account_doctor_console.guard import CONSOLE_HOSTS, CSRF_FIELD, SecurityHeaders, csrf_token, writes
from account_doctor_console.pages import Sources

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "account_doctor_console"


def template_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        # Every value a page shows (an address, a provider's error text, an id) is escaped, in every template.
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["q"] = lambda value: quote(str(value), safe="")
    environment.filters["when"] = when
    environment.globals["query"] = lambda **values: urlencode({k: v for k, v in values.items() if v})
    return environment


def when(value: object) -> str:
    """An ISO 8601 UTC instant as people read it ("2026-12-01 17:50 UTC"); anything else as it is."""
    text = str(value or "")
    try:
        moment = parse_iso(text)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M UTC")


TEMPLATES = template_environment()


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    flash = request.session.pop("flash", None)
    page = TEMPLATES.get_template(name).render(
        {
            **context,
            "read_only": request.app.state.read_only,
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(request),
            "flash": flash,
            "path": request.url.path,
        }
    )
    return HTMLResponse(page, status_code=status)


def _query(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _sources(request: Request) -> Sources:
    sources: Sources = request.app.state.sources
    return sources


async def overview(request: Request) -> Response:
    return render(request, "overview.html", pages.overview(_sources(request)))


async def broken(request: Request) -> Response:
    return render(request, "broken.html", pages.broken(_sources(request), _query(request)))


async def account(request: Request) -> Response:
    account_id = request.path_params["account_id"]
    return render(request, "account.html", pages.account(_sources(request), account_id, _query(request)))


async def incidents(request: Request) -> Response:
    return render(request, "incidents.html", pages.incidents(_sources(request), _query(request)))


async def incident(request: Request) -> Response:
    incident_id = request.path_params["incident_id"]
    return render(request, "incident.html", pages.incident(_sources(request), incident_id, _query(request)))


async def domain(request: Request) -> Response:
    name = request.path_params["domain"]
    return render(request, "domain.html", pages.domain(_sources(request), name, _query(request)))


async def go(request: Request) -> Response:
    """The overview's "open an account / a domain" forms: straight to its page (which checks what was typed)."""
    wanted_domain = request.query_params.get("domain", "").strip()
    if wanted_domain:
        return RedirectResponse(f"/domains/{quote(wanted_domain, safe='')}", status_code=303)
    wanted_account = request.query_params.get("account", "").strip()
    if wanted_account:
        return RedirectResponse(f"/accounts/{quote(wanted_account, safe='')}", status_code=303)
    return RedirectResponse("/", status_code=303)


_ACTIONS = {"release": "Release", "resolve": "Resolve"}


async def confirm(request: Request) -> Response:
    """The confirmation step of Release and Resolve: what will happen, to how many customers."""
    action = request.path_params["action"]
    if action not in _ACTIONS:
        raise HTTPException(404)
    if request.app.state.read_only:
        raise HTTPException(403, "This console was started with --read-only: it changes nothing.")
    shown = pages.incident(_sources(request), request.path_params["incident_id"], {})
    explained = shown["actions"][action]
    context = {"incident": shown["incident"], "action": action, "verb": _ACTIONS[action], "explained": explained}
    return render(request, "confirm.html", context)


@writes
async def act(request: Request) -> Response:
    action = request.path_params["action"]
    incident_id = request.path_params["incident_id"]
    api = _sources(request).api
    if action == "release":
        done = api.release_incident(incident_id)
        request.session["flash"] = (
            f"Released: the held emails of {incident_id} are being sent."
            if done.get("release") == "started"
            else f"{incident_id} was already released: nothing more was sent."
        )
    elif action == "resolve":
        api.resolve_incident(incident_id)
        request.session["flash"] = f"{incident_id} is resolved. No email was sent."
    else:
        raise HTTPException(404)
    return RedirectResponse(f"/incidents/{quote(incident_id, safe='')}", status_code=303)


# Errors: a mistake in the address is a page that says what to do, never a traceback -------------------------


async def bad_request(request: Request, error: Exception) -> Response:
    return render(request, "error.html", {"title": "Not a valid request", "message": str(error)}, 400)


async def not_found(request: Request, error: Exception) -> Response:
    return render(request, "error.html", {"title": "Not found", "message": str(error)}, 404)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    titles = {403: "Refused", 404: "Not found", 405: "Not allowed"}
    message = error.detail if error.status_code != 404 else "There is no such page in the console."
    return render(
        request, "error.html", {"title": titles.get(error.status_code, "Error"), "message": message}, error.status_code
    )


async def aws_failed(request: Request, error: Exception) -> Response:
    message = " ".join(f"AWS failed the call: {error}".split())
    return render(request, "error.html", {"title": "AWS did not answer", "message": message}, 502)


def create_app(sources: Sources, *, read_only: bool = False, hosts: tuple[str, ...] = CONSOLE_HOSTS) -> Starlette:
    """The console over these sources; only requests whose Host is one of `hosts` reach a route."""
    app = Starlette(
        routes=[
            Route("/", overview),
            Route("/accounts", broken),
            Route("/accounts/{account_id}", account),
            Route("/domains/{domain}", domain),
            Route("/go", go),
            Route("/incidents", incidents),
            Route("/incidents/{incident_id}", incident),
            Route("/incidents/{incident_id}/{action}", confirm, methods=["GET"]),
            Route("/incidents/{incident_id}/{action}", act, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)),
            # The key lives as long as this process: a restarted console starts new sessions.
            Middleware(
                SessionMiddleware,
                secret_key=secrets.token_urlsafe(32),
                session_cookie=SESSION_COOKIE,
                same_site="strict",
                max_age=None,
            ),
        ],
        exception_handlers={
            InvalidRequest: bad_request,
            InvalidCursor: bad_request,
            NotFound: not_found,
            HTTPException: http_error,
            ClientError: aws_failed,
            BotoCoreError: aws_failed,
        },
    )
    app.state.sources = sources
    app.state.read_only = read_only
    return app
