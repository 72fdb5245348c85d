"""The Starlette application: routes, JSON errors and authentication of HTTP requests.

Engine calls block (SQLite, DataFusion, bcrypt), so they run in the thread pool; the event
loop only moves bytes."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from kalam_engine.auth.passwords import hash_password, verify_password
from kalam_engine.model.context import ROOT_USER, Role
from kalam_engine.server import tokens
from kalam_engine.server.sql_api import RequestError, check_request, error_response, run_batch
from kalam_engine.server.ws import LiveSockets

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

API_VERSION = "v1"
MAX_BODY_BYTES = 10 * 1024 * 1024
_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass
class ServerConfig:
    """What a server needs besides the engine. ``jwt_secret`` defaults to a random secret for
    this process (tokens then end with it); give one to keep tokens valid across restarts."""

    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    auth_timeout: float = 3.0
    idle_timeout: float = 10.0
    max_message_bytes: int = 1024 * 1024
    messages_per_second: int = 50
    subscriptions_per_user: int = 10


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("kalam-notebooks")
    except Exception:  # not installed as a package
        return "0.1.0"


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _auth_error(failure: tokens.AuthFailure) -> JSONResponse:
    status, body = error_response(401, failure.code, failure.message)
    return JSONResponse(body, status_code=status)


async def _json_body(request: Request) -> Any:
    """The parsed JSON body, or a RequestError (too large, not JSON)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError("INVALID_INPUT", f"The body is larger than {MAX_BODY_BYTES} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise RequestError("INVALID_INPUT",
                               f"The body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("INVALID_INPUT", f"The body is not valid JSON: {exc}") from None


def create_app(db: Engine, config: ServerConfig | None = None) -> Starlette:
    """The ASGI app serving ``db`` (which stays owned by the caller)."""
    config = config or ServerConfig()
    secret = config.jwt_secret
    sockets = LiveSockets(db, config)

    def local_only(request: Request) -> Response | None:
        host = request.client.host if request.client else ""
        if host not in _LOCAL_HOSTS:
            return JSONResponse({"error": "forbidden",
                                 "message": "Health endpoints answer only on localhost"},
                                status_code=403)
        return None

    async def health(request: Request) -> Response:
        return local_only(request) or JSONResponse(
            {"status": "healthy", "version": _version(), "api_version": API_VERSION,
             "build_date": "embedded"})

    async def cluster_health(request: Request) -> Response:
        addr = f"{request.url.hostname}:{request.url.port}"
        return local_only(request) or JSONResponse(
            {"status": "healthy", "is_cluster_mode": False, "node_id": 1, "is_leader": True,
             "current_term": 0,
             "nodes": [{"node_id": 1, "role": "leader", "status": "active", "api_addr": addr,
                        "is_leader": True, "replication_lag": 0}]})

    async def sql(request: Request) -> Response:
        try:
            token = tokens.bearer(request.headers.get("authorization"))
            user = await run_in_threadpool(tokens.verify, db, secret, token)
        except tokens.AuthFailure as failure:
            return _auth_error(failure)
        try:
            text, params, namespace = check_request(await _json_body(request))
        except RequestError as exc:
            status, body = error_response(400, exc.code, exc.message)
            return JSONResponse(body, status_code=status)
        status, body = await run_in_threadpool(run_batch, db, user.user_id, text, params,
                                               namespace)
        return JSONResponse(body, status_code=status)

    def login_body(user: tokens.UserRow) -> dict[str, Any]:
        access, expires = tokens.issue(secret, user, tokens.ACCESS)
        refresh, refresh_expires = tokens.issue(secret, user, tokens.REFRESH)
        return {"user": {"id": user.user_id, "role": user.role.label, "email": user.email,
                         "created_at": _iso(user.created_at),
                         "updated_at": _iso(user.updated_at)},
                "admin_ui_access": user.role >= Role.DBA,
                "expires_at": _iso(expires), "access_token": access,
                "refresh_token": refresh, "refresh_expires_at": _iso(refresh_expires)}

    def unauthorized(message: str) -> JSONResponse:
        return JSONResponse({"error": "invalid_credentials", "message": message},
                            status_code=401)

    async def login(request: Request) -> Response:
        try:
            body = await _json_body(request)
        except RequestError as exc:
            return JSONResponse({"error": "bad_request", "message": exc.message},
                                status_code=400)
        if not isinstance(body, dict) or set(body) - {"user", "username", "password"}:
            return JSONResponse({"error": "bad_request", "message":
                                 'Send {"user": "...", "password": "..."} and nothing else'},
                                status_code=400)
        name = body.get("user", body.get("username"))
        password = body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return JSONResponse({"error": "bad_request",
                                 "message": '"user" and "password" must be strings'},
                                status_code=400)
        user = await run_in_threadpool(tokens.load_live_user, db, name)
        if user is not None and user.user_id == ROOT_USER and not user.password_hash:
            return JSONResponse({"error": "setup_required", "message":
                                 "root has no password yet: run ALTER USER root SET PASSWORD "
                                 "'...' in the embedded engine first"}, status_code=428)
        # an unknown user costs one bcrypt check too, so timing does not tell who exists
        stored = user.password_hash if user is not None \
            else await run_in_threadpool(_dummy_hash)
        ok = await run_in_threadpool(verify_password, password, stored)
        if not ok or user is None:
            return unauthorized("Invalid username or password")
        return JSONResponse(login_body(user))

    async def refresh(request: Request) -> Response:
        try:
            token = tokens.bearer(request.headers.get("authorization"))
            user = await run_in_threadpool(tokens.verify, db, secret, token, tokens.REFRESH)
        except tokens.AuthFailure as failure:
            return unauthorized(failure.message)
        return JSONResponse(login_body(user))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/api/healthcheck", health, methods=["GET"]),
        Route("/v1/api/cluster/health", cluster_health, methods=["GET"]),
        Route("/v1/api/sql", sql, methods=["POST"]),
        Route("/v1/api/auth/login", login, methods=["POST"]),
        Route("/v1/api/auth/refresh", refresh, methods=["POST"]),
        WebSocketRoute("/v1/ws", sockets.endpoint),
    ]
    app = Starlette(routes=routes)
    app.state.db = db
    app.state.config = config
    return app
