"""HS256 JWTs as KalamDB issues them, and who a token stands for.

Claims ``{sub, iss: "kalamdb", exp, iat, email, role, token_type}`` plus ``pwv``, a keyed
fingerprint of the user's password hash. A token is honoured only while its user is live in
system.users with the role the token names (the stored role is used) and the password it was
issued under: a dropped user, a new role or a new password ends every token issued before.
A token without ``pwv`` (issued elsewhere with the shared secret) ends when the user's row
changes after its ``iat``.

A verified signature is remembered per (secret, token text), bounded, so a request costs a
dictionary lookup and one indexed SQLite read instead of a full JWT decode; expiry is checked
each time."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from kalam_engine.auth.users import role_from_row
from kalam_engine.model.context import Role

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

ISSUER = "kalamdb"
ACCESS_SECONDS = 24 * 3600
REFRESH_SECONDS = 7 * ACCESS_SECONDS
LEEWAY_SECONDS = 60
ACCESS, REFRESH = "access", "refresh"
STAMP_CLAIM = "pwv"
MAX_CACHED_TOKENS = 10_000
_verified: dict[tuple[str, str], dict[str, Any]] = {}  # (secret, token) -> verified claims


class AuthFailure(Exception):
    """A request that is not authenticated: ``code`` is KalamDB's (HTTP 401)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: str
    role: Role
    email: str | None
    created_at: float
    updated_at: float
    password_hash: str | None


def load_live_user(db: Engine, user_id: str) -> UserRow | None:
    """The live (not dropped) user ``user_id`` of system.users, or None."""
    rows = db._db.query(
        "SELECT user_id, role, email, created_at, updated_at, password_hash FROM users "
        "WHERE user_id = ? AND deleted_at IS NULL", (user_id,))
    if not rows:
        return None
    uid, role, email, created, updated, pw_hash = rows[0]
    return UserRow(uid, role_from_row(role), email, created or 0.0, updated or 0.0, pw_hash)


def issue(secret: str, user: UserRow, token_type: str, now: float | None = None) -> tuple[str, int]:
    """A signed token and its expiry (Unix seconds)."""
    now = int(time.time() if now is None else now)
    exp = now + (ACCESS_SECONDS if token_type == ACCESS else REFRESH_SECONDS)
    claims: dict[str, Any] = {"sub": user.user_id, "iss": ISSUER, "exp": exp, "iat": now,
                              "email": user.email, "role": user.role.label,
                              "token_type": token_type, STAMP_CLAIM: password_stamp(secret, user)}
    return jwt.encode(claims, secret, algorithm="HS256"), exp


def password_stamp(secret: str, user: UserRow) -> str:
    """A keyed fingerprint of the user's password hash: changes with every new password."""
    digest = hmac.new(secret.encode("utf-8"), (user.password_hash or "").encode("utf-8"),
                      hashlib.sha256)
    return digest.hexdigest()[:22]


def decode(secret: str, token: str) -> dict[str, Any]:
    """The claims of a token signed with ``secret`` and not expired, or AuthFailure."""
    key = (secret, token)
    claims = _verified.get(key)
    if claims is None:
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                                leeway=LEEWAY_SECONDS,
                                options={"require": ["sub", "exp", "iat", "role",
                                                     "token_type"]})
        except jwt.ExpiredSignatureError:
            raise _expired() from None
        except jwt.PyJWTError:
            raise AuthFailure("INVALID_CREDENTIALS", "Invalid token") from None
        if len(_verified) >= MAX_CACHED_TOKENS:
            _verified.clear()
        _verified[key] = claims
    elif not isinstance(claims["exp"], int | float) \
            or claims["exp"] + LEEWAY_SECONDS < time.time():
        raise _expired()
    return claims


def _expired() -> AuthFailure:
    return AuthFailure("TOKEN_EXPIRED", "The token has expired; log in again or use "
                                        "/v1/api/auth/refresh")


def verify(db: Engine, secret: str, token: str, token_type: str = ACCESS) -> UserRow:
    """The user a valid, unexpired ``token_type`` token stands for, or AuthFailure."""
    claims = decode(secret, token)
    if claims.get("token_type") != token_type or not isinstance(claims.get("sub"), str):
        raise AuthFailure("INVALID_CREDENTIALS", f"An {token_type} token is required")
    user = load_live_user(db, claims["sub"])
    if user is None or user.role.label != claims.get("role"):
        raise AuthFailure("INVALID_CREDENTIALS",
                          "The token's user no longer exists or has another role; log in again")
    if not still_current(secret, user, claims):
        raise AuthFailure("INVALID_CREDENTIALS", "The password changed since this token was "
                                                 "issued; log in again")
    return user


def still_current(secret: str, user: UserRow, claims: dict[str, Any]) -> bool:
    """Whether ``claims`` were issued under the user's present password."""
    stamp = claims.get(STAMP_CLAIM)
    if stamp is not None:
        return hmac.compare_digest(str(stamp), password_stamp(secret, user))
    issued = claims.get("iat")
    return isinstance(issued, int | float) and issued >= int(user.updated_at)


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <JWT>`` header, or AuthFailure."""
    if not header:
        raise AuthFailure("MISSING_AUTHORIZATION",
                          "Missing Authorization header: send 'Authorization: Bearer <token>' "
                          "with a token from /v1/api/auth/login")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthFailure("INVALID_CREDENTIALS",
                          "Only 'Authorization: Bearer <token>' is accepted; get a token from "
                          "/v1/api/auth/login")
    return token.strip()
