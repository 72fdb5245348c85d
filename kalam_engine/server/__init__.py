"""``kalam serve``: KalamDB's HTTP and WebSocket API over one embedded engine.

Routes (reference: KalamDB v0.4.3): ``POST /v1/api/sql``, ``/v1/api/auth/`` login, refresh,
logout, me, status and setup (HS256 JWTs), localhost-only health checks and the ``GET /v1/ws``
live-query protocol, with KalamDB's limits (per-IP request and login rates, login lockout,
queries per user). Built on Starlette and uvicorn; the engine does all the work."""

from kalam_engine.server.app import create_app
from kalam_engine.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
