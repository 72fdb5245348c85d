"""EXECUTE AS USER: who may act as whom (semantics 1.10), and the audit trail of every attempt.

- targeting yourself is always allowed and changes nothing;
- system may target system, dba, service and user;
- dba may target dba, service and user;
- service may target service and user;
- user (and anonymous) may target nobody but themselves.

The target's role comes from system.users; an unknown or dropped id counts as role ``user``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from kalam_engine.model.context import Role

if TYPE_CHECKING:
    from kalam_engine.storage.sqlite_db import SqliteDatabase

ACTION_ALLOWED = "EXECUTE_AS_USER"
ACTION_DENIED = "EXECUTE_AS_USER_DENIED"

# actor role -> roles it may target
_TARGETS: dict[Role, frozenset[Role]] = {
    Role.SYSTEM: frozenset({Role.SYSTEM, Role.DBA, Role.SERVICE, Role.USER}),
    Role.DBA: frozenset({Role.DBA, Role.SERVICE, Role.USER}),
    Role.SERVICE: frozenset({Role.SERVICE, Role.USER}),
    Role.USER: frozenset(),
    Role.ANONYMOUS: frozenset(),
}


def can_impersonate(actor_id: str, actor_role: Role, target_id: str, target_role: Role) -> bool:
    if actor_id == target_id:
        return True
    return target_role in _TARGETS[actor_role]


def denial_message(actor_id: str, actor_role: Role, target_id: str) -> str:
    """The same words whatever the target is: it names no role, existence or state of the
    target (the audit log keeps the details for admins)."""
    return (f"EXECUTE AS USER is not authorized: actor '{actor_id}' with role "
            f"{actor_role.label.capitalize()} cannot act as '{target_id}'")


def audit(db: SqliteDatabase, *, actor_id: str, actor_role: Role, target_id: str,
          allowed: bool, reason: str | None = None, statement: str | None = None) -> None:
    """Append one row to system.audit_log (it commits on its own, also for denials)."""
    details: dict[str, object] = {"success": allowed, "actor_role": actor_role.label}
    if reason:
        details["reason"] = reason
    if statement is not None:
        details["statement"] = statement[:200]
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO audit_log (timestamp, actor_user_id, action, target, details, "
            "subject_user_id) VALUES (?, ?, ?, ?, ?, ?)",
            (time.time(), actor_id, ACTION_ALLOWED if allowed else ACTION_DENIED,
             f"user:{target_id}", json.dumps(details), target_id))
