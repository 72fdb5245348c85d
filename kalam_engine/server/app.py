"""The Starlette application: routes, the per-IP guard and POST /v1/api/sql.

Engine calls block (SQLite, DataFusion, bcrypt), so they run in the thread pool; the event
loop only moves bytes. A SQL request makes one trip to a worker thread: token check, the
per-user query limit and the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from kalam_engine.server import tokens
from kalam_engine.server.auth_routes import AuthRoutes, client_host
from kalam_engine.server.config import ServerConfig
from kalam_engine.server.http_body import MAX_BODY_BYTES, RequestError, json_body
from kalam_engine.server.limits import IpGuard, KeyedBuckets, is_loopback
from kalam_engine.server.sql_api import BatchAnswer, check_request, error_response, run_batch
from kalam_engine.server.ws import LiveSockets

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

__all__ = ["MAX_BODY_BYTES", "ServerConfig", "create_app"]
API_VERSION = "v1"


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("kalam-notebooks")
    except Exception:  # not installed as a package
        return "0.1.0"


def _local_only(request: Request) -> Response | None:
    if is_loopback(client_host(request)):
        return None
    return JSONResponse({"error": "forbidden",
                         "message": "Health endpoints answer only on localhost"},
                        status_code=403)


async def health(request: Request) -> Response:
    return _local_only(request) or JSONResponse(
        {"status": "healthy", "version": _version(), "api_version": API_VERSION,
         "build_date": "embedded"})


async def cluster_health(request: Request) -> Response:
    addr = f"{request.url.hostname}:{request.url.port}"
    return _local_only(request) or JSONResponse(
        {"status": "healthy", "is_cluster_mode": False, "node_id": 1, "is_leader": True,
         "current_term": 0,
         "nodes": [{"node_id": 1, "role": "leader", "status": "active", "api_addr": addr,
                    "is_leader": True, "replication_lag": 0}]})


class SqlEndpoint:
    """POST /v1/api/sql: 401 before 400, then KalamDB's 100 queries per second per user."""

    def __init__(self, db: Engine, config: ServerConfig, sockets: LiveSockets) -> None:
        self.db = db
        self.secret = config.jwt_secret
        self.queries = KeyedBuckets(config.queries_per_user_per_second)
        self.sockets = sockets

    async def handle(self, request: Request) -> Response:
        header = request.headers.get("authorization")
        try:
            checked: Any = check_request(await json_body(request))
        except RequestError as exc:
            checked = exc
        answer = await run_in_threadpool(self.answer, header, checked)
        if answer.users_changed:
            self.sockets.check_soon()
        return JSONResponse(answer.body, status_code=answer.status)

    def answer(self, header: str | None, checked: Any) -> BatchAnswer:
        try:
            user = tokens.verify(self.db, self.secret, tokens.bearer(header))
        except tokens.AuthFailure as failure:
            return BatchAnswer(*error_response(401, failure.code, failure.message), False)
        if isinstance(checked, RequestError):
            return BatchAnswer(*error_response(400, checked.code, checked.message), False)
        if not self.queries.allow(user.user_id):
            return BatchAnswer(*error_response(429, "RATE_LIMIT_EXCEEDED", "Too many queries "
                                               "per second. Please slow down."), False)
        return run_batch(self.db, user.user_id, *checked)


class IpGuardMiddleware:
    """KalamDB's per-IP request limit, before any route (loopback clients are exempt)."""

    def __init__(self, app: ASGIApp, guard: IpGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            refused = self.guard.check(client[0] if client else "")
            if refused is not None:
                status, body, wait = refused
                if scope["type"] == "websocket":  # refuse the upgrade
                    await send({"type": "websocket.close", "code": 1008,
                                "reason": str(body["error"])})
                    return
                headers = {"Retry-After": str(wait), "X-RateLimit-Reset": str(wait)}
                await JSONResponse(body, status_code=status, headers=headers)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(db: Engine, config: ServerConfig | None = None) -> Starlette:
    """The ASGI app serving ``db`` (which stays owned by the caller)."""
    config = config or ServerConfig()
    attempts = KeyedBuckets(config.auth_requests_per_ip_per_second)  # login and WebSocket
    sockets = LiveSockets(db, config, attempts)
    auth = AuthRoutes(db, config, attempts)
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/api/healthcheck", health, methods=["GET"]),
        Route("/v1/api/cluster/health", cluster_health, methods=["GET"]),
        Route("/v1/api/sql", SqlEndpoint(db, config, sockets).handle, methods=["POST"]),
        *(Route(path, endpoint, methods=[method]) for path, endpoint, method in auth.routes()),
        WebSocketRoute("/v1/ws", sockets.endpoint),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(IpGuardMiddleware,
                       guard=IpGuard(config.requests_per_ip_per_second, config.ban_seconds))
    app.state.db = db
    app.state.config = config
    return app
