"""What a server needs besides the engine: its JWT secret, timeouts and KalamDB's limits."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass
class ServerConfig:
    """``jwt_secret`` defaults to a random secret for this process (tokens then end with it);
    give one to keep tokens valid across restarts. The limits are KalamDB's defaults
    (``[rate_limit]`` and the login tracker); a rate of 0 turns that limit off."""

    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    auth_timeout: float = 3.0
    idle_timeout: float = 10.0
    max_message_bytes: int = 1024 * 1024
    messages_per_second: int = 50
    subscriptions_per_user: int = 10
    # per client IP: login, refresh, setup and WebSocket authenticate (loopback included)
    auth_requests_per_ip_per_second: int = 20
    # per client IP, before authentication; loopback addresses are exempt, as in KalamDB
    requests_per_ip_per_second: int = 200
    ban_seconds: float = 300.0
    # per user on POST /v1/api/sql
    queries_per_user_per_second: int = 100
    # login lockout, stored in system.users (failed_login_attempts, locked_until)
    max_failed_logins: int = 5
    lockout_seconds: float = 15 * 60.0
    # how often open WebSockets are checked against system.users (dropped user, new password)
    revocation_check_seconds: float = 1.0
