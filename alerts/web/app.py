"""The workbench's FastAPI application: pages (Jinja2, server-rendered) and the JSON API under
/api (OpenAPI at /api/openapi.json, docs at /api/docs).

``create_app`` takes what ``laborwatch run`` already has (settings, configs, the store) and
optionally the feedback publisher and the metrics registry; the SLA escalation runs in its
lifespan, every ``settings.sla_check_seconds``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from alerts.auth import Tokens
from alerts.store import workbench
from alerts.store.db import Database
from alerts.store.workbench import Forbidden, NotFound
from alerts.web import i18n
from alerts.web.deps import CsrfFailed, LoginRequired, csrf_token, translator
from alerts.workflow import TransitionError
from config.files import Configs
from config.settings import Settings
from streams.metrics import WebMetrics

HERE = Path(__file__).resolve().parent
log = logging.getLogger("laborwatch.web")


def create_app(settings: Settings, configs: Configs, db: Database, *, publisher=None,
               registry: CollectorRegistry | None = None, clock: Callable[[], datetime] = workbench.now_utc,
               background: bool = True) -> FastAPI:
    metrics = WebMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(_sla_loop(app)) if background else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    app = FastAPI(title="LaborWatch workbench", version="1", lifespan=lifespan,
                  description="Alerts of wage arrears and labour disputes, their triage, enterprise files and audit. "
                              "Authenticate with POST /api/auth/token (OAuth2 password form), then send "
                              "`Authorization: Bearer <token>`.",
                  openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None)
    app.state.settings = settings
    app.state.configs = configs
    app.state.db = db
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.publisher = publisher
    app.state.tokens = Tokens(settings.resolved_session_secret(), settings.session_hours * 3600)
    app.state.rule_features = {rule.code: rule.feature for rule in configs.rules.rules}
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(LEVEL_COLOUR=i18n.LEVEL_COLOUR, LEVEL_HANZI=i18n.LEVEL_HANZI)
    app.state.templates = templates

    app.add_middleware(SessionMiddleware, secret_key=settings.resolved_session_secret(),
                       session_cookie="laborwatch_session", max_age=int(settings.session_hours * 3600),
                       same_site="lax", https_only=False)

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        if getattr(request.state, "poke_publisher", False) and app.state.publisher is not None:
            app.state.publisher.poke()
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        if template.startswith("/static"):
            template = "/static"
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        metrics.request_seconds.labels(template).observe(time.perf_counter() - started)
        # Pages carry people's data: never cached, never framed.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from alerts.web.routes import alerts, audit, auth, enterprises

    for module in (auth, alerts, enterprises, audit):
        app.include_router(module.api)
        app.include_router(module.pages)
    _handlers(app)
    return app


def render(request: Request, template: str, context: dict, status_code: int = 200) -> HTMLResponse:
    t = translator(request)
    base = {"t": t, "lang": t.lang, "csrf": csrf_token(request), "path": request.url.path,
            "flash": request.session.pop("flash", None), "user": context.get("user")}
    return request.app.state.templates.TemplateResponse(request, template, {**base, **context},
                                                         status_code=status_code)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _page_error(request: Request, status_code: int, key: str, detail: str | None = None) -> HTMLResponse:
    user = None
    if request.session.get("user"):
        user = workbench.Principal(request.session["user"], request.session.get("role", ""))
    return render(request, "error.html", {"status": status_code, "key": key, "detail": detail, "user": user},
                  status_code)


def _handlers(app: FastAPI) -> None:
    def answer(status: int, message_key: str, tell: bool):
        """JSON for the API, a page otherwise; ``tell``: the exception's words are shown (a
        NotFound says nothing of what was asked for)."""

        async def handler(request: Request, exc: Exception):
            if _is_api(request):
                return JSONResponse({"detail": str(exc) if tell else "not found"}, status)
            return _page_error(request, status, message_key, str(exc) if tell else None)

        return handler

    for exc_type, status, message_key, tell in ((NotFound, 404, "not_found", False),
                                                (Forbidden, 403, "forbidden", True),
                                                (TransitionError, 409, "bad_request", True),
                                                (ValueError, 400, "bad_request", True)):
        app.add_exception_handler(exc_type, answer(status, message_key, tell))

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed):
        return _page_error(request, 403, "csrf_failed")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if _is_api(request) or exc.status_code in (401, 405):
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))
        return _page_error(request, exc.status_code, "not_found" if exc.status_code == 404 else "bad_request",
                           str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        if _is_api(request):
            return JSONResponse({"detail": errors}, 422)
        return _page_error(request, 422, "bad_request", "; ".join(e["msg"] for e in errors))


async def _sla_loop(app: FastAPI) -> None:
    """Escalate alerts past their SLA now and then (idempotent: each goes up once)."""
    settings: Settings = app.state.settings
    while True:
        try:
            n = await run_in_threadpool(workbench.escalate_overdue, app.state.db, app.state.configs, app.state.clock())
            if n:
                app.state.metrics.escalations.inc(n)
        except Exception as exc:  # noqa: BLE001 - the database may be away for a moment
            log.warning("SLA escalation failed: %s", exc)
        await asyncio.sleep(settings.sla_check_seconds)
