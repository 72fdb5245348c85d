"""``kalam serve``: KalamDB's HTTP and WebSocket API over one embedded engine.

Routes (reference: KalamDB v0.4.3): ``POST /v1/api/sql``, ``POST /v1/api/auth/login`` and
``/refresh`` (HS256 JWTs), localhost-only health checks and the ``GET /v1/ws`` live-query
protocol. Built on Starlette and uvicorn; the engine does all the work."""

from kalam_engine.server.app import ServerConfig, create_app

__all__ = ["ServerConfig", "create_app"]
