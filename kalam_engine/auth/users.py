"""Users in system.users: roles and their aliases, and the rows behind CREATE/ALTER/DROP USER.

The user id is the user name (KalamDB: there is no separate username column). A dropped user is
soft-deleted (``deleted_at``); from then on the id acts with role ``user``, like any unknown id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kalam_engine.auth.passwords import verify_password
from kalam_engine.model.context import Role
from kalam_engine.model.errors import InvalidParameterError

if TYPE_CHECKING:
    from kalam_engine.storage.sqlite_db import SqliteDatabase

ROLE_ALIASES: dict[str, Role] = {
    "system": Role.SYSTEM,
    "dba": Role.DBA, "admin": Role.DBA,
    "service": Role.SERVICE, "developer": Role.SERVICE, "analyst": Role.SERVICE,
    "user": Role.USER, "viewer": Role.USER, "readonly": Role.USER,
}
MAX_EMAIL_LENGTH = 254


def parse_role(text: str) -> Role:
    """A role from its name or alias (case-insensitive), e.g. ``admin`` -> Role.DBA."""
    role = ROLE_ALIASES.get(text.strip().lower()) if isinstance(text, str) else None
    if role is None:
        raise InvalidParameterError(
            f"Unknown role '{text}'",
            hint="use system, dba (admin), service (developer, analyst) or user (viewer, "
                 "readonly)")
    return role


def role_from_row(value: str) -> Role:
    """The role stored in system.users (always a canonical label)."""
    return ROLE_ALIASES.get(value.lower(), Role.USER)


def validate_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or len(email) > MAX_EMAIL_LENGTH \
            or any(c.isspace() or c in "\x00<>" for c in email):
        raise InvalidParameterError(f"Invalid email {email[:80]!r}",
                                    hint="give an address like 'alice@example.com'")
    return email


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    role: Role
    email: str | None
    auth_type: str
    deleted: bool


def load_user(db: SqliteDatabase, user_id: str) -> UserRecord | None:
    """The row of ``user_id`` (deleted or not), or None."""
    rows = db.query("SELECT user_id, role, email, auth_type, deleted_at FROM users "
                    "WHERE user_id = ?", (user_id,))
    if not rows:
        return None
    uid, role, email, auth_type, deleted_at = rows[0]
    return UserRecord(uid, role_from_row(role), email, auth_type, deleted_at is not None)


def insert_user(db: SqliteDatabase, user_id: str, role: Role, *, password_hash: str | None,
                email: str | None, auth_type: str, auth_data: str | None) -> None:
    """Create the row, or bring back a soft-deleted one with fresh values."""
    now = time.time()
    with db.transaction() as conn:
        conn.execute("DELETE FROM users WHERE user_id = ? AND deleted_at IS NOT NULL",
                     (user_id,))
        conn.execute(
            "INSERT INTO users (user_id, password_hash, role, email, auth_type, auth_data, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (user_id, password_hash, role.label, email, auth_type, auth_data, now, now))


def update_user(db: SqliteDatabase, user_id: str, column: str, value: object) -> None:
    if column not in ("password_hash", "role", "email"):  # pragma: no cover - internal misuse
        raise ValueError(column)
    with db.transaction() as conn:
        conn.execute(f"UPDATE users SET {column} = ?, updated_at = ? WHERE user_id = ?",
                     (value, time.time(), user_id))


def soft_delete_user(db: SqliteDatabase, user_id: str) -> None:
    now = time.time()
    with db.transaction() as conn:
        conn.execute("UPDATE users SET deleted_at = ?, updated_at = ? WHERE user_id = ?",
                     (now, now, user_id))


def check_password(db: SqliteDatabase, user_id: str, password: str) -> bool:
    """True if ``user_id`` is a live user whose bcrypt hash matches ``password``."""
    rows = db.query("SELECT password_hash FROM users WHERE user_id = ? AND deleted_at IS NULL",
                    (user_id,))
    return bool(rows) and verify_password(password, rows[0][0])
