"""KalamDB's /v1/api/auth routes: login, refresh, logout, me, status and setup.

Errors are KalamDB's ``{"error": "<code>", "message": "..."}``: 401 ``unauthorized`` (one
message for a wrong password and an unknown user), 401 ``account_locked``, 428
``setup_required``, 429 ``rate_limited`` (20 attempts per second per client IP on login,
refresh and setup), 403 ``forbidden`` (status and setup answer only on localhost), 409
``already_configured`` / ``user_exists``, 400 ``bad_request`` / ``weak_password`` /
``invalid_user``."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kalam_engine.auth.passwords import hash_password, validate_password, verify_password
from kalam_engine.model.context import ROOT_USER, Role
from kalam_engine.model.errors import KalamError
from kalam_engine.server import lockout, tokens
from kalam_engine.server.http_body import RequestError, json_body
from kalam_engine.server.limits import KeyedBuckets, is_loopback
from kalam_engine.sql import user_commands as uc
from kalam_engine.sql.names import validate_user_id

if TYPE_CHECKING:
    from kalam_engine.engine import Engine
    from kalam_engine.server.config import ServerConfig

BAD_CREDENTIALS = "Invalid credentials"
_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def fail(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def client_host(request: Request) -> str:
    return request.client.host if request.client else ""


def user_info(user: tokens.UserRow) -> dict[str, Any]:
    return {"id": user.user_id, "role": user.role.label, "email": user.email,
            "created_at": _iso(user.created_at), "updated_at": _iso(user.updated_at)}


class AuthRoutes:
    def __init__(self, db: Engine, config: ServerConfig, attempts: KeyedBuckets) -> None:
        self.db = db
        self.config = config
        self.attempts = attempts  # per client IP, shared with WebSocket authentication
        self.setup_lock = asyncio.Lock()

    def routes(self) -> list[tuple[str, Any, str]]:
        return [("/v1/api/auth/login", self.login, "POST"),
                ("/v1/api/auth/refresh", self.refresh, "POST"),
                ("/v1/api/auth/logout", self.logout, "POST"),
                ("/v1/api/auth/me", self.me, "GET"),
                ("/v1/api/auth/status", self.status, "GET"),
                ("/v1/api/auth/setup", self.setup, "POST")]

    def tokens_body(self, user: tokens.UserRow) -> dict[str, Any]:
        secret = self.config.jwt_secret
        access, expires = tokens.issue(secret, user, tokens.ACCESS)
        refresh, refresh_expires = tokens.issue(secret, user, tokens.REFRESH)
        return {"user": user_info(user), "admin_ui_access": user.role >= Role.DBA,
                "expires_at": _iso(expires), "access_token": access,
                "refresh_token": refresh, "refresh_expires_at": _iso(refresh_expires)}

    def rate_limited(self, request: Request) -> Response | None:
        if self.attempts.allow(client_host(request)):
            return None
        return fail(429, "rate_limited", "Too many authentication attempts. Please retry "
                                         "shortly.")

    async def login(self, request: Request) -> Response:
        refused = self.rate_limited(request)
        if refused is not None:
            return refused
        try:
            name, password = _credentials(await json_body(request))
        except RequestError as exc:
            return fail(400, "bad_request", exc.message)
        user = await run_in_threadpool(tokens.load_live_user, self.db, name)
        if user is not None and user.user_id == ROOT_USER and not user.password_hash:
            return fail(428, "setup_required", "Server requires initial setup: root has no "
                        "password yet. Call POST /v1/api/auth/setup from localhost, or run "
                        "ALTER USER root SET PASSWORD '...' in the embedded engine")
        if user is not None:
            wait = await run_in_threadpool(lockout.locked_for, self.db, user.user_id)
            if wait > 0:
                return fail(401, "account_locked", lockout.locked_message(wait))
        # an unknown user costs one bcrypt check too, so timing does not tell who exists
        stored = user.password_hash if user is not None \
            else await run_in_threadpool(_dummy_hash)
        if not await run_in_threadpool(verify_password, password, stored) or user is None:
            if user is not None and user.password_hash:
                await run_in_threadpool(lockout.record_failure, self.db, user.user_id,
                                        self.config.max_failed_logins,
                                        self.config.lockout_seconds)
            return fail(401, "unauthorized", BAD_CREDENTIALS)
        await run_in_threadpool(lockout.record_success, self.db, user.user_id)
        return JSONResponse(self.tokens_body(user))

    async def refresh(self, request: Request) -> Response:
        refused = self.rate_limited(request)
        if refused is not None:
            return refused
        try:
            token = tokens.bearer(request.headers.get("authorization"))
            user = await run_in_threadpool(tokens.verify, self.db, self.config.jwt_secret,
                                           token, tokens.REFRESH)
        except tokens.AuthFailure as failure:
            return fail(401, "unauthorized", failure.message)
        return JSONResponse(self.tokens_body(user))

    async def logout(self, request: Request) -> Response:
        # as KalamDB: tokens are stateless and stay valid until they expire (or the user's
        # password changes); logging out means the client forgets them
        return JSONResponse({"message": "Logged out successfully"})

    async def me(self, request: Request) -> Response:
        try:
            token = tokens.bearer(request.headers.get("authorization"))
            user = await run_in_threadpool(tokens.verify, self.db, self.config.jwt_secret,
                                           token)
        except tokens.AuthFailure as failure:
            return fail(401, "unauthorized", failure.message)
        return JSONResponse(user_info(user))

    async def status(self, request: Request) -> Response:
        if not is_loopback(client_host(request)):
            return fail(403, "forbidden", "Setup status can only be checked from localhost")
        needs = await run_in_threadpool(self.needs_setup)
        message = ("Server requires initial setup. Call POST /v1/api/auth/setup with user, "
                   "password, root_password, and optional email.") if needs \
            else "Server is configured and ready."
        return JSONResponse({"needs_setup": needs, "message": message})

    def needs_setup(self) -> bool:
        root = tokens.load_live_user(self.db, ROOT_USER)
        return root is not None and not root.password_hash

    async def setup(self, request: Request) -> Response:
        refused = self.rate_limited(request)
        if refused is not None:
            return refused
        if not is_loopback(client_host(request)):
            return fail(403, "forbidden", "Server setup can only be performed from localhost")
        try:
            body = _setup_body(await json_body(request))
        except RequestError as exc:
            return fail(400, exc.code, exc.message)
        async with self.setup_lock:
            return await run_in_threadpool(self.configure, *body)

    def configure(self, user_id: str, password: str, root_password: str,
                  email: str | None) -> Response:
        """Set root's password and create a dba user (once: while root has no password)."""
        if not self.needs_setup():
            return fail(409, "already_configured",
                        "Server has already been configured. Root password is set.")
        if tokens.load_live_user(self.db, user_id) is not None:
            return fail(409, "user_exists", f"User '{user_id}' already exists")
        root = self.db.context(ROOT_USER)
        try:
            self.db.run_statement(uc.CreateUser(user_id, "password", password, "dba", email),
                                  root, None)
            self.db.run_statement(uc.AlterUser(ROOT_USER, "password", root_password), root,
                                  None)
        except KalamError as exc:
            return fail(400, "bad_request", str(exc))
        created = tokens.load_live_user(self.db, user_id)
        assert created is not None
        return JSONResponse({"user": user_info(created), "message":
                             f"Server setup complete. Root password configured and DBA user "
                             f"'{user_id}' created. Please login to continue."})


def _credentials(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict) or set(body) - {"user", "username", "password"}:
        raise RequestError("bad_request", 'Send {"user": "...", "password": "..."} and '
                                          "nothing else")
    name = body.get("user", body.get("username"))
    password = body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise RequestError("bad_request", '"user" and "password" must be strings')
    return name, password


def _setup_body(body: Any) -> tuple[str, str, str, str | None]:
    """(user, password, root_password, email) of a setup request, or RequestError."""
    fields = {"user", "password", "root_password", "email"}
    if not isinstance(body, dict) or set(body) - fields or not {"user", "password",
                                                                "root_password"} <= set(body):
        raise RequestError("bad_request", 'Send {"user", "password", "root_password"} and '
                                          'optionally "email", nothing else')
    user, email = body["user"], body.get("email")
    if not isinstance(user, str) or (email is not None and not isinstance(email, str)):
        raise RequestError("bad_request", '"user" and "email" must be strings')
    for key, label in (("password", "DBA user password"), ("root_password", "Root password")):
        try:
            validate_password(body[key])
        except KalamError as exc:
            raise RequestError("weak_password", f"{label}: {exc}") from None
    try:
        user_id = validate_user_id(user, creating=True)
    except KalamError as exc:
        raise RequestError("invalid_user", str(exc)) from None
    if user_id == ROOT_USER:
        raise RequestError("invalid_user", "Cannot create a DBA user with user 'root'. "
                                           "Choose a different user.")
    return user_id, body["password"], body["root_password"], email
