"""The dashboard's ASGI application (Starlette, Jinja2 templates rendered on the server).

Security, in one place (:class:`_Guard`):

- an access token, when one is set (``pgdurable ui`` sets one whenever it is bound to anything but
  localhost): every request must carry it, as the ``pgdurable_ui_token`` cookie, an
  ``Authorization: Bearer`` header, or ``?token=`` on the first visit (which sets the cookie and
  redirects to the same page without it); 401 otherwise;
- actions are POSTs carrying a CSRF token (double submit: a form field equal to the
  ``pgdurable_csrf`` cookie, a SameSite=Strict cookie), and a POST whose ``Origin`` is not the
  dashboard's own is refused; each action asks for confirmation first;
- read-only mode refuses every POST (403) and its pages show no action;
- without a token, only requests whose Host is localhost, 127.0.0.1 or [::1] are answered (a page
  of another site cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import _store as store
from .. import errors
from ..client import Client
from ..connection import Connection
from . import _views as views

__all__ = ["ACTIONS", "CSRF_COOKIE", "TOKEN_COOKIE", "create_app"]

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "pgdurable_ui_token"
CSRF_COOKIE = "pgdurable_csrf"
ACTIONS = ("signal", "cancel", "interrupt", "reset")
STATUSES = ("running", "completed", "failed", "cancelled", "interrupted", "continued")
PAGE_SIZES = (20, 50, 100, 200)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _link(workflow_id: str, **query: Any) -> str:
    """The URL of a workflow's page (any id: slashes and all are quoted)."""
    extra = {k: v for k, v in query.items() if v is not None}
    return f"/workflows/{quote(workflow_id, safe='')}" + (f"?{urlencode(extra)}" if extra else "")


def _action_url(action: str, workflow_id: str) -> str:
    return f"/actions/{action}/{quote(workflow_id, safe='')}"


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.globals.update(link=_link, action_url=_action_url, statuses=STATUSES, page_sizes=PAGE_SIZES)
    env.filters.update(time=views.utc_time, pending=views.pending_text, event_text=views.describe_event,
                       duration=views.duration)
    return Jinja2Templates(env=env)


class _Guard(BaseHTTPMiddleware):
    """The access token, the CSRF cookie, read-only mode and the Origin check of every request."""

    def __init__(self, app: Any, *, token: str | None, read_only: bool) -> None:
        super().__init__(app)
        self.token = token
        self.read_only = read_only

    def _has_token(self, request: Request) -> bool:
        assert self.token is not None
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else ""
        given = [request.cookies.get(TOKEN_COOKIE, ""), bearer]
        return any(g and hmac.compare_digest(g.encode(), self.token.encode()) for g in given)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is None and _host_name(request) not in LOCAL_HOSTS:
            # Without a token only this machine may ask: a page of another site that rebinds its
            # name to 127.0.0.1 (DNS rebinding) sends its own name as the Host.
            return _message(request, 403, "refused",
                            "This dashboard has no access token, so it answers only requests addressed to "
                            "localhost, 127.0.0.1 or [::1]: give it one (--token) to serve other names.")
        if self.token is not None and not self._has_token(request):
            given = request.query_params.get("token")
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = _same_site_path(request) + (f"?{urlencode(rest)}" if rest else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="lax")
                return response
            return _message(request, 401, "access token required",
                            "This dashboard is bound to a non-local address: open the URL `pgdurable ui` "
                            "printed (it ends in ?token=...), or send the token as 'Authorization: Bearer "
                            "<token>'.")
        csrf = request.cookies.get(CSRF_COOKIE)
        new_csrf = None
        if not csrf:
            csrf = new_csrf = secrets.token_urlsafe(24)
        request.state.csrf = csrf
        request.state.read_only = self.read_only
        if request.method not in ("GET", "HEAD"):
            if self.read_only:
                return _message(request, 403, "read-only dashboard",
                                "This dashboard was started with --read-only: it refuses every action.")
        response = await call_next(request)
        # No other site may frame the dashboard (clickjacking its confirmed actions), nor sniff types.
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if new_csrf is not None:
            response.set_cookie(CSRF_COOKIE, new_csrf, httponly=True, samesite="strict")
        return response


def _same_site_path(request: Request) -> str:
    """The request's path as sent (still percent-encoded), with one leading slash: a path that
    starts with ``//`` or ``/\\`` would make a Location header point at another site."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(request.url.path)
    return "/" + path.lstrip("/\\")


def _host_name(request: Request) -> str:
    """The Host header's name, without its port."""
    host = request.headers.get("host", "")
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _message(request: Request, status: int, title: str, text: str) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    request.state.read_only = getattr(request.state, "read_only", request.app.state.read_only)
    return templates.TemplateResponse(request, "message.html", {"title": title, "text": text},
                                      status_code=status)


def _client(request: Request) -> Client:
    return request.app.state.client  # type: ignore[no-any-return]


# -- the workflows list --------------------------------------------------------------------

def _when(text: str | None, field_name: str) -> datetime | None:
    """A datetime-local field's value (UTC) or None; InvalidArgumentError when it is no time."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise errors.InvalidArgumentError(f"{field_name}: {text!r} is not a date and time "
                                          "(YYYY-MM-DDTHH:MM)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), row["workflow_id"], row["run_id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _from_cursor(text: str | None) -> tuple[datetime, str, int] | None:
    if not text:
        return None
    try:
        at, workflow_id, run_id = json.loads(base64.urlsafe_b64decode(text.encode()))
        return datetime.fromisoformat(at), str(workflow_id), int(run_id)
    except (ValueError, TypeError):
        raise errors.InvalidArgumentError("the page cursor is damaged: go back to the first page") from None


async def workflows(request: Request) -> Response:
    q = request.query_params
    filters = {k: (q.get(k) or "").strip() for k in ("status", "name", "queue", "after", "before", "id")}
    try:
        limit = int(q.get("limit") or 50)
    except ValueError:
        limit = 50
    limit = max(1, min(limit, 200))
    client = _client(request)
    status = filters["status"] or None
    if status is not None and status not in STATUSES:
        raise errors.InvalidArgumentError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    created_after = _when(filters["after"], "created after")
    created_before = _when(filters["before"], "created before")
    before = _from_cursor(q.get("page"))
    rows = await client.connection.run(lambda conn: store.search_workflows(
        conn, client.namespace, status=status, workflow_name=filters["name"] or None,
        task_queue=filters["queue"] or None, created_after=created_after, created_before=created_before,
        id_prefix=filters["id"] or None, before=before, limit=limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    kept = {k: v for k, v in filters.items() if v}
    if limit != 50:
        kept["limit"] = str(limit)
    next_url = "/?" + urlencode({**kept, "page": _cursor(rows[-1])}) if more and rows else None
    first_url = "/?" + urlencode(kept) if before is not None else None
    exact = None
    if filters["id"] and not any(r["workflow_id"] == filters["id"] for r in rows):
        with contextlib.suppress(errors.WorkflowNotFoundError, errors.InvalidArgumentError):
            await client.workflow.get_handle(filters["id"]).status()
            exact = filters["id"]
    return request.app.state.templates.TemplateResponse(request, "workflows.html", {
        "rows": rows, "filters": filters, "limit": limit, "next_url": next_url, "first_url": first_url,
        "exact": exact, "page": "workflows"})


# -- a workflow -------------------------------------------------------------------------------

async def workflow(request: Request) -> Response:
    workflow_id = request.path_params["workflow_id"]
    run = request.query_params.get("run")
    page = await views.workflow_page(_client(request), workflow_id,
                                     int(run) if run and run.isdigit() else None)
    if request.query_params.get("format") == "json":
        return JSONResponse(json.loads(page["raw_history"]))
    done = request.query_params.get("done")
    notice = {"signal": "signal sent", "cancel": "cancellation requested",
              "interrupt": "workflow interrupted",
              "reset": "workflow reset: a new run started"}.get(done or "")
    return request.app.state.templates.TemplateResponse(request, "workflow.html", {
        **page, "workflow_id": workflow_id, "notice": notice, "page": "workflows"})


def _csrf_refusal(request: Request, form: Any) -> Response | None:
    """A 403 page unless the form comes from this dashboard: its Origin (when the browser sends one;
    ``null``, an opaque origin, is refused) is the dashboard's own and its ``csrf`` field equals this
    browser's CSRF cookie."""
    origin = request.headers.get("origin")
    # The host and port only: a TLS proxy in front makes the browser's scheme https.
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        return _message(request, 403, "refused", f"a form posted from {origin} may not act here.")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = str(form.get("csrf") or "")
    if not (cookie and given and hmac.compare_digest(given.encode(), cookie.encode())):
        return _message(request, 403, "CSRF check failed",
                        "The form's CSRF token does not match this browser's: reload the page and try again.")
    return None


def _action_fields(action: str, form: Any) -> dict[str, str]:
    keep = {"signal": ("signal_id", "data"), "cancel": (), "interrupt": ("reason",),
            "reset": ("event_id", "reason")}[action]
    return {k: str(form.get(k) or "") for k in keep}


def _summary(action: str, workflow_id: str, fields: dict[str, str]) -> str:
    if action == "signal":
        return (f"Send signal {fields['signal_id']!r} with data {fields['data'] or 'null'} to workflow "
                f"{workflow_id!r} (handle.signal: only this workflow can take it).")
    if action == "cancel":
        return (f"Request cancellation of workflow {workflow_id!r}: it gets CancelledFailure at its next "
                "await.")
    if action == "interrupt":
        return (f"Interrupt workflow {workflow_id!r}: it stops hard, nothing of it runs again"
                + (f" (reason: {fields['reason']!r})." if fields["reason"] else "."))
    return (f"Reset workflow {workflow_id!r} to event {fields['event_id']}: a new run re-runs the code from "
            "that durable call; a running run ends.")


async def act(request: Request) -> Response:
    action = request.path_params["action"]
    workflow_id = request.path_params["workflow_id"]
    if action not in ACTIONS:
        return _message(request, 404, "no such action", f"{action!r} is none of {', '.join(ACTIONS)}.")
    form = await request.form()
    refused = _csrf_refusal(request, form)
    if refused is not None:
        return refused
    fields = _action_fields(action, form)
    if form.get("confirmed") != "yes":
        return request.app.state.templates.TemplateResponse(request, "confirm.html", {
            "action": action, "workflow_id": workflow_id, "fields": fields,
            "summary": _summary(action, workflow_id, fields), "page": "workflows"})
    handle = _client(request).workflow.get_handle(workflow_id)
    extra: dict[str, Any] = {}
    if action == "signal":
        try:
            data = json.loads(fields["data"]) if fields["data"].strip() else None
        except json.JSONDecodeError as exc:
            raise errors.InvalidArgumentError(f"the signal's data is not JSON: {exc.msg} at character "
                                              f"{exc.pos}") from None
        await handle.signal(fields["signal_id"], data)
    elif action == "cancel":
        if not await handle.cancel():
            raise errors.InvalidArgumentError(f"workflow {workflow_id!r} is not running (or is already "
                                              "being cancelled): nothing to cancel")
    elif action == "interrupt":
        if not await handle.interrupt(fields["reason"] or None):
            raise errors.InvalidArgumentError(
                f"workflow {workflow_id!r} is not running: nothing to interrupt")
    else:
        try:
            event_id = int(fields["event_id"])
        except ValueError:
            raise errors.InvalidArgumentError("pick the event to reset to") from None
        extra["run"] = await handle.reset(event_id, reason=fields["reason"] or None)
    return RedirectResponse(_link(workflow_id, done=action, **extra), status_code=303)


# -- streams, workers, roles, schedules ------------------------------------------------------

async def streams(request: Request) -> Response:
    client = _client(request)

    async def read(conn: Any) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        rows = await store.stream_stats(conn, client.namespace)
        limits = {row["stream"]: row for row in await store.stream_limits(conn, client.namespace)}
        shown = {row["stream"] for row in rows}
        # A limited stream with no tasks yet has no statistics row: it is shown all the same.
        rows += [{"stream": stream, "queued": 0, "delayed": 0, "running": 0, "oldest_queued_age": None,
                  "started_last_minute": 0, "failed_last_minute": 0}
                 for stream in sorted(limits) if stream not in shown]
        return rows, limits

    rows, limits = await client.connection.run(read)
    return request.app.state.templates.TemplateResponse(request, "streams.html",
                                                        {"rows": rows, "limits": limits, "page": "streams"})


async def workers(request: Request) -> Response:
    client = _client(request)
    rows = await client.connection.run(lambda conn: store.list_workers(conn, client.namespace))
    return request.app.state.templates.TemplateResponse(request, "workers.html",
                                                        {"rows": rows, "page": "workers"})


async def roles(request: Request) -> Response:
    client = _client(request)
    rows = await client.connection.run(lambda conn: store.list_worker_roles(conn, client.namespace))
    return request.app.state.templates.TemplateResponse(request, "roles.html",
                                                        {"rows": rows, "page": "roles"})


async def schedules(request: Request) -> Response:
    client = _client(request)

    rows = await client.connection.run(lambda conn: store.list_schedules(conn, client.namespace))
    return request.app.state.templates.TemplateResponse(request, "schedules.html",
                                                        {"rows": rows, "page": "schedules"})


# -- errors ----------------------------------------------------------------------------------

_STATUS_OF = [(errors.WorkflowNotFoundError, 404), (errors.InvalidArgumentError, 400),
              (errors.AuthorizationError, 403), (errors.WorkerRoleError, 403),
              (errors.DatabaseUnavailableError, 503)]


async def _durable_error(request: Request, exc: Exception) -> Response:
    status = next((code for kind, code in _STATUS_OF if isinstance(exc, kind)), 500)
    title = {404: "not found", 400: "cannot do that", 403: "not allowed", 503: "database unavailable"}.get(
        status, "error")
    return _message(request, status, title, str(exc))


# -- the application ---------------------------------------------------------------------------

def create_app(dsn: str | Connection | None = None, *, namespace: str = "durable", read_only: bool = False,
               token: str | None = None) -> Starlette:
    """The dashboard of namespace ``namespace`` of the database at ``dsn`` (a DSN or a
    :class:`~pgdurable.Connection`; ``None``: ``PGDURABLE_DSN``, then ``DATABASE_URL``).

    ``token``: when set, every request must carry it (see the module's docstring); ``read_only``:
    no action, every POST refused with 403. Payloads are decoded through the codec registered in
    this process (``pgdurable.register_codec``)."""
    connection = dsn if isinstance(dsn, Connection) else Connection(dsn, pool_size=4)
    owned = not isinstance(dsn, Connection)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                await connection.close()

    app = Starlette(
        routes=[
            Route("/", workflows),
            Route("/workflows/{workflow_id:path}", workflow),
            Route("/actions/{action}/{workflow_id:path}", act, methods=["POST"]),
            Route("/streams", streams),
            Route("/workers", workers),
            Route("/worker-roles", roles),
            Route("/schedules", schedules),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[Middleware(_Guard, token=token, read_only=read_only)],
        exception_handlers={errors.DurableError: _durable_error},
        lifespan=lifespan,
    )
    app.state.client = Client(connection=connection, namespace=namespace)
    app.state.templates = _templates()
    app.state.read_only = read_only
    app.state.namespace = namespace
    return app

