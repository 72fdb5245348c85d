"""HS256 JWTs as KalamDB issues them, and who a token stands for.

Claims ``{sub, iss: "kalamdb", exp, iat, email, role, token_type}``. A token is honoured only
while its user is live in system.users with the role the token names; the stored role is used."""

from __future__ import annotations

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
                              "token_type": token_type}
    return jwt.encode(claims, secret, algorithm="HS256"), exp


def verify(db: Engine, secret: str, token: str, token_type: str = ACCESS) -> UserRow:
    """The user a valid, unexpired ``token_type`` token stands for, or AuthFailure."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER,
                            leeway=LEEWAY_SECONDS,
                            options={"require": ["sub", "exp", "iat", "role", "token_type"]})
    except jwt.ExpiredSignatureError:
        raise AuthFailure("TOKEN_EXPIRED", "The token has expired; log in again or "
                                           "use /v1/api/auth/refresh") from None
    except jwt.PyJWTError:
        raise AuthFailure("INVALID_CREDENTIALS", "Invalid token") from None
    if claims.get("token_type") != token_type or not isinstance(claims.get("sub"), str):
        raise AuthFailure("INVALID_CREDENTIALS", f"An {token_type} token is required")
    user = load_live_user(db, claims["sub"])
    if user is None or user.role.label != claims.get("role"):
        raise AuthFailure("INVALID_CREDENTIALS",
                          "The token's user no longer exists or has another role; log in again")
    return user


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
