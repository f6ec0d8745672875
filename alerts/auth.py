"""Passwords (argon2id), signed API tokens and CSRF tokens: the workbench's credentials.

No state of its own: a token is the username and its issue time, signed with the session secret,
so any process holding the secret can check it (and a changed secret ends every token).
"""
from __future__ import annotations

import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

_hasher = PasswordHasher()
# Verifying against this when the username is unknown makes both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not a password anyone has")
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


class Tokens:
    """Bearer tokens for the API: ``{"u": username}`` signed and timestamped."""

    def __init__(self, secret: str, max_age_seconds: float):
        self._serializer = URLSafeTimedSerializer(secret, salt="laborwatch-api-token")
        self.max_age = int(max_age_seconds)

    def issue(self, username: str) -> str:
        return self._serializer.dumps({"u": username})

    def read(self, token: str) -> str | None:
        try:
            data = self._serializer.loads(token, max_age=self.max_age)
        except (SignatureExpired, BadSignature):
            return None
        return data.get("u") if isinstance(data, dict) else None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(expected, given)
