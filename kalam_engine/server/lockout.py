"""Login lockout as KalamDB's login tracker does it, kept in system.users.

A failed password adds one to ``failed_login_attempts``; at ``max_failed`` (5) the account is
locked until ``locked_until`` (now + 15 minutes). A locked account is refused before its
password is checked. A successful login clears both, writing only when there was something
to clear. ``updated_at`` is left alone: it says when the account itself changed."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kalam_engine.engine import Engine


def locked_for(db: Engine, user_id: str, now: float | None = None) -> float:
    """Seconds the live user ``user_id`` stays locked (0 when not locked)."""
    rows = db._db.query("SELECT locked_until FROM users WHERE user_id = ? AND "
                        "deleted_at IS NULL", (user_id,))
    until = rows[0][0] if rows else None
    now = time.time() if now is None else now
    return max(0.0, until - now) if until is not None else 0.0


def record_failure(db: Engine, user_id: str, max_failed: int, lockout_seconds: float) -> bool:
    """Count a wrong password; True if the account is now locked."""
    now = time.time()
    with db._db.transaction() as conn:
        conn.execute("UPDATE users SET failed_login_attempts = failed_login_attempts + 1 "
                     "WHERE user_id = ?", (user_id,))
        conn.execute("UPDATE users SET locked_until = ? WHERE user_id = ? AND "
                     "failed_login_attempts >= ?", (now + lockout_seconds, user_id, max_failed))
        row = conn.execute("SELECT locked_until FROM users WHERE user_id = ?",
                           (user_id,)).fetchone()
    return bool(row and row[0] is not None and row[0] > now)


def record_success(db: Engine, user_id: str) -> None:
    """Clear the failure count and lock after a good password (no write if both are clear)."""
    rows = db._db.query("SELECT failed_login_attempts, locked_until FROM users "
                        "WHERE user_id = ?", (user_id,))
    if not rows or (not rows[0][0] and rows[0][1] is None):
        return
    with db._db.transaction() as conn:
        conn.execute("UPDATE users SET failed_login_attempts = 0, locked_until = NULL, "
                     "last_login_at = ? WHERE user_id = ?", (time.time(), user_id))


def locked_message(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Account locked after too many failed logins; try again in {minutes} minute(s)"
