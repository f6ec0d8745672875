"""Dependencies of the routes: the store session, the person asking (bearer token for the API,
session cookie for the pages), the language, and the CSRF check of forms."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from alerts.auth import csrf_matches, new_csrf_token
from alerts.store import workbench
from alerts.store.db import Database
from alerts.store.workbench import Principal
from alerts.web.i18n import LANGS, Translator, negotiate
from config.files import Configs

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


class LoginRequired(Exception):
    """A page asked for by someone not logged in: they are sent to the login page."""


class CsrfFailed(Exception):
    pass


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_configs(request: Request) -> Configs:
    return request.app.state.configs


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent (scope="function")."""
    with request.app.state.db.session() as session:
        yield session


def get_now(request: Request) -> datetime:
    return request.app.state.clock()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ConfigsDep = Annotated[Configs, Depends(get_configs)]
NowDep = Annotated[datetime, Depends(get_now)]


def api_user(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    unauthorized = HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated",
                                 headers={"WWW-Authenticate": "Bearer"})
    username = request.app.state.tokens.read(token) if token else None
    if username is None:
        raise unauthorized
    with request.app.state.db.session() as session:
        user = workbench.get_user(session, username)
        if user is None:
            raise unauthorized
        return Principal.of(user)


def page_user(request: Request) -> Principal:
    username = request.session.get("user")
    if not username:
        raise LoginRequired()
    with request.app.state.db.session() as session:
        user = workbench.get_user(session, username)
        if user is None:
            request.session.clear()
            raise LoginRequired()
        return Principal.of(user)


ApiUser = Annotated[Principal, Depends(api_user)]
PageUser = Annotated[Principal, Depends(page_user)]


def language(request: Request) -> str:
    """?lang= first (the API), then the switch kept in the session, then Accept-Language."""
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked
    chosen = request.session.get("lang") if "session" in request.scope else None
    return chosen if chosen in LANGS else negotiate(request.headers.get("accept-language"))


def translator(request: Request) -> Translator:
    return Translator(language(request), request.app.state.rule_features)


TranslatorDep = Annotated[Translator, Depends(translator)]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = new_csrf_token()
    return token


def check_csrf(request: Request, given: str | None) -> None:
    if not csrf_matches(request.session.get("csrf"), given):
        raise CsrfFailed()
