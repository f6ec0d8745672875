"""Logging in: the login page (session cookie), the API's token endpoint (OAuth2 password form),
both throttled per username; logging out; the language switch."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from fastapi.security import OAuth2PasswordRequestForm

from alerts.auth import hash_password, needs_rehash, new_csrf_token, verify_password
from alerts.store import workbench
from alerts.store.workbench import Principal
from alerts.web.deps import ApiUser, check_csrf
from alerts.web.i18n import LANGS
from alerts.web.schemas import TokenOut, UserOut

api = APIRouter(prefix="/api", tags=["auth"])
pages = APIRouter(include_in_schema=False)


class _Locked(Exception):
    pass


def authenticate(request: Request, username: str, password: str) -> Principal | None:
    """The user, if the password is right and the username is not locked by failed attempts.

    Raises _Locked while locked (even with the right password, so guessing cannot go on)."""
    app = request.app
    settings = app.state.settings
    now = app.state.clock()
    db = app.state.db
    username = username.strip()
    with db.session() as session:
        if workbench.login_locked(session, username, settings.login_max_failures, settings.login_window_seconds, now):
            app.state.metrics.login_failures.inc()
            raise _Locked()
        user = workbench.get_user(session, username)
        if verify_password(user.password_hash if user else None, password):
            workbench.clear_login_failures(session, username)
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            return Principal.of(user)
    workbench.record_login_failure(db, username, now)
    app.state.metrics.login_failures.inc()
    return None


@api.post("/auth/token", response_model=TokenOut, summary="A bearer token for the API (OAuth2 password form)")
async def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
    try:
        user = await run_in_threadpool(authenticate, request, form.username, form.password)
    except _Locked:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; try again later") from None
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password",
                            headers={"WWW-Authenticate": "Bearer"})
    tokens = request.app.state.tokens
    return TokenOut(access_token=tokens.issue(user.username), expires_in=tokens.max_age)


@api.get("/me", response_model=UserOut, summary="Who the token belongs to")
def me(user: ApiUser) -> UserOut:
    return UserOut(username=user.username, role=user.role, street=user.street, district=user.district)


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host) may follow a login."""
    if not target:
        return "/queue"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/queue"
    return target


@pages.get("/login")
def login_page(request: Request, next: str | None = None):
    from alerts.web.app import render

    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@pages.post("/login")
async def login(request: Request, username: Annotated[str, Form()], password: Annotated[str, Form()],
                csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/queue"):
    from alerts.web.app import render

    check_csrf(request, csrf_token)
    try:
        user = await run_in_threadpool(authenticate, request, username, password)
        error = None if user else "login_failed"
    except _Locked:
        user, error = None, "login_locked"
    if user is None:
        return render(request, "login.html", {"next": _safe_next(next), "error": error, "username": username},
                      status_code=429 if error == "login_locked" else 401)
    lang = request.session.get("lang")
    request.session.clear()  # a fresh session on login (no fixation), with a new CSRF token
    request.session.update({"user": user.username, "role": user.role, "csrf": new_csrf_token()})
    if lang:
        request.session["lang"] = lang
    return RedirectResponse(_safe_next(next), status_code=303)


@pages.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = ""):
    check_csrf(request, csrf_token)
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang
    return RedirectResponse("/login", status_code=303)


@pages.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str | None = None):
    if code in LANGS:
        request.session["lang"] = code
    return RedirectResponse(_safe_next(next), status_code=303)


@pages.get("/")
def home():
    return RedirectResponse("/queue", status_code=303)
