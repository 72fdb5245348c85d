"""CREATE / ALTER / DROP USER, EXECUTE AS USER, and the rows of system.users, system.jobs and
system.audit_log.

Rules (semantics 1.9, 1.10 and 3), each denial a PERMISSION_DENIED that names the rule:

- CREATE USER and DROP USER need role dba or system.
- ALTER USER on yourself is open to every role, except SET ROLE (admins only); admins may alter
  anyone.
- Beyond KalamDB: nobody grants a role above their own or alters/drops a user whose role is above
  their own (a dba cannot take over a system user), ``root`` cannot be dropped or lose role
  system, and nobody drops themselves.
- EXECUTE AS USER: see :mod:`kalam_engine.auth.impersonation`. The body runs with the target's
  identity and role user; every attempt is written to system.audit_log.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kalam_engine.auth import impersonation
from kalam_engine.auth import users as accounts
from kalam_engine.auth.passwords import hash_password
from kalam_engine.auth.permissions import require_admin
from kalam_engine.handlers import H, Params, handles, run_statement
from kalam_engine.model.context import ROOT_USER, ExecutionContext, Role
from kalam_engine.model.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    PermissionDeniedError,
    UnsupportedError,
)
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql import user_commands as uc
from kalam_engine.sql.names import validate_user_id
from kalam_engine.sql.parser import parse_statement

if TYPE_CHECKING:
    from kalam_engine.services import Services

TS = pa.timestamp("us", tz="UTC")
USER_COLUMNS = ("user_id", "password_hash", "role", "email", "auth_type", "auth_data",
                "failed_login_attempts", "locked_until", "last_login_at", "created_at",
                "updated_at", "last_seen", "deleted_at")


def _ts(values: list) -> pa.Array:
    return pa.array([None if v is None else int(v * 1_000_000) for v in values],
                    pa.int64()).cast(TS)


def users_table(services: Services, ctx: ExecutionContext) -> pa.Table:
    rows = services.db.query(f"SELECT {', '.join(USER_COLUMNS)} FROM users ORDER BY user_id")
    cols = {name: [r[i] for r in rows] for i, name in enumerate(USER_COLUMNS)}
    if ctx.role < Role.DBA:
        cols["password_hash"] = ["***" if v else None for v in cols["password_hash"]]
        cols["auth_data"] = ["***" if v else None for v in cols["auth_data"]]
    n = len(rows)
    return pa.table({
        "user_id": pa.array(cols["user_id"], pa.string()),
        "password_hash": pa.array(cols["password_hash"], pa.string()),
        "role": pa.array(cols["role"], pa.string()),
        "email": pa.array(cols["email"], pa.string()),
        "auth_type": pa.array(cols["auth_type"], pa.string()),
        "auth_data": pa.array(cols["auth_data"], pa.string()),
        "storage_mode": pa.array(["table"] * n, pa.string()),
        "storage_id": pa.array([None] * n, pa.string()),
        "failed_login_attempts": pa.array(cols["failed_login_attempts"], pa.int32()),
        "locked_until": _ts(cols["locked_until"]),
        "last_login_at": _ts(cols["last_login_at"]),
        "created_at": _ts(cols["created_at"]),
        "updated_at": _ts(cols["updated_at"]),
        "last_seen": _ts(cols["last_seen"]),
        "deleted_at": _ts(cols["deleted_at"]),
    })


JOB_COLUMNS = ("job_id", "job_type", "status", "parameters", "message", "exception_trace",
               "created_at", "updated_at", "started_at", "finished_at")


def jobs_table(services: Services) -> pa.Table:
    rows = services.db.query(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs ORDER BY created_at")
    cols = {name: [r[i] for r in rows] for i, name in enumerate(JOB_COLUMNS)}
    out = {name: pa.array(cols[name], pa.string()) for name in JOB_COLUMNS[:6]}
    out.update({name: _ts(cols[name]) for name in JOB_COLUMNS[6:]})
    return pa.table(out)


AUDIT_COLUMNS = ("audit_id", "timestamp", "actor_user_id", "action", "target", "details",
                 "subject_user_id")


def audit_log_table(services: Services) -> pa.Table:
    rows = services.db.query(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log ORDER BY audit_id")
    cols = {name: [r[i] for r in rows] for i, name in enumerate(AUDIT_COLUMNS)}
    out: dict[str, pa.Array] = {"audit_id": pa.array(cols["audit_id"], pa.int64()),
                                "timestamp": _ts(cols["timestamp"])}
    out.update({name: pa.array(cols[name], pa.string()) for name in AUDIT_COLUMNS[2:]})
    return pa.table(out)


# --- statements
def _then_forget_roles(handler: H) -> H:
    """A user command changes roles: the cached ones are dropped after it (even if it failed)."""
    @functools.wraps(handler)
    def run(services: Services, stmt: Any, ctx: ExecutionContext, params: Params) -> Result:
        try:
            return handler(services, stmt, ctx, params)
        finally:
            services.forget_roles()
    return run  # type: ignore[return-value]


def _existing(services: Services, user_id: str) -> accounts.UserRecord:
    record = accounts.load_user(services.db, user_id)
    if record is None or record.deleted:
        raise InvalidParameterError(f"User '{user_id}' does not exist",
                                    hint="SELECT user_id FROM system.users lists the users "
                                         "(role dba)")
    return record


def _check_grant(ctx: ExecutionContext, role: Role, action: str) -> None:
    if role > ctx.role:
        raise PermissionDeniedError(
            f"{action}: role {ctx.role.label} cannot grant role {role.label}, which is above "
            "its own", hint="ask a user with role system")


def _check_outranks(ctx: ExecutionContext, target: accounts.UserRecord, action: str) -> None:
    if target.role > ctx.role:
        raise PermissionDeniedError(
            f"{action}: user '{target.user_id}' has role {target.role.label}, above your role "
            f"{ctx.role.label}", hint="ask a user with role system")


@handles(uc.CreateUser)
@_then_forget_roles
def create_user(services: Services, stmt: uc.CreateUser, ctx: ExecutionContext,
                params: Params) -> Result:
    require_admin(ctx, "CREATE USER")
    user_id = validate_user_id(stmt.user_id, creating=True)
    role = accounts.parse_role(stmt.role) if stmt.role is not None else Role.USER
    _check_grant(ctx, role, "CREATE USER")
    email = accounts.validate_email(stmt.email) if stmt.email is not None else None
    password_hash = auth_data = None
    if stmt.auth_type == "password":
        password_hash = hash_password(stmt.secret or "")
    elif stmt.auth_type == "oauth":
        auth_data = _oauth_data(stmt.secret or "")
    existing = accounts.load_user(services.db, user_id)
    if existing is not None and not existing.deleted:
        if stmt.if_not_exists:
            return Result("ddl", message=f"User '{user_id}' already exists")
        raise AlreadyExistsError(f"User '{user_id}' already exists",
                                 hint="use ALTER USER to change it, or CREATE USER IF NOT EXISTS")
    accounts.insert_user(services.db, user_id, role, password_hash=password_hash, email=email,
                         auth_type=stmt.auth_type, auth_data=auth_data)
    return Result("ddl", message=f"User '{user_id}' created with role {role.label}")


def _oauth_data(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not data.get("provider") or not data.get("subject"):
        raise InvalidParameterError(
            "WITH OAUTH needs a JSON object with 'provider' and 'subject'",
            hint='e.g. WITH OAUTH \'{"provider":"google","subject":"123"}\'')
    return json.dumps(data)


@handles(uc.AlterUser)
@_then_forget_roles
def alter_user(services: Services, stmt: uc.AlterUser, ctx: ExecutionContext,
               params: Params) -> Result:
    user_id = validate_user_id(stmt.user_id)
    own = user_id == ctx.user_id
    if not own:
        require_admin(ctx, "ALTER USER on another user")
    elif stmt.field == "role":
        require_admin(ctx, "ALTER USER ... SET ROLE on yourself")
    target = _existing(services, user_id)
    _check_outranks(ctx, target, "ALTER USER")
    if stmt.field == "password":
        engine_value: Any = hash_password(stmt.value)
        column, what = "password_hash", "password changed"
    elif stmt.field == "role":
        role = accounts.parse_role(stmt.value)
        _check_grant(ctx, role, "ALTER USER ... SET ROLE")
        if user_id == ROOT_USER and role is not Role.SYSTEM:
            raise PermissionDeniedError("The bootstrap user 'root' keeps role system",
                                        hint="create another user for other roles")
        engine_value, column, what = role.label, "role", f"role {role.label}"
    else:
        engine_value = accounts.validate_email(stmt.value)
        column, what = "email", "email changed"
    accounts.update_user(services.db, user_id, column, engine_value)
    return Result("ddl", message=f"User '{user_id}' altered: {what}")


@handles(uc.DropUser)
@_then_forget_roles
def drop_user(services: Services, stmt: uc.DropUser, ctx: ExecutionContext,
              params: Params) -> Result:
    require_admin(ctx, "DROP USER")
    user_id = validate_user_id(stmt.user_id)
    record = accounts.load_user(services.db, user_id)
    if record is None or record.deleted:
        if stmt.if_exists:
            return Result("ddl", message=f"User '{user_id}' does not exist")
        _existing(services, user_id)
    assert record is not None
    if user_id == ROOT_USER:
        raise PermissionDeniedError("The bootstrap user 'root' cannot be dropped")
    if user_id == ctx.user_id:
        raise PermissionDeniedError(f"User '{user_id}' cannot drop themselves",
                                    hint="ask another dba")
    _check_outranks(ctx, record, "DROP USER")
    accounts.soft_delete_user(services.db, user_id)
    return Result("ddl", message=f"User '{user_id}' dropped")


_USER_COMMANDS = (uc.CreateUser, uc.AlterUser, uc.DropUser)


@handles(uc.ExecuteAsUser, reports_its_user=True)
def execute_as_user(services: Services, stmt: uc.ExecuteAsUser, ctx: ExecutionContext,
                    params: Params) -> Result:
    """Run one statement as another user (role user), if the actor's role allows it."""
    target = validate_user_id(stmt.user_id)
    inner = parse_statement(stmt.inner_sql)
    if isinstance(inner, st.UseNamespace):
        raise UnsupportedError("USE / SET NAMESPACE cannot run inside EXECUTE AS USER",
                               hint="it would change the other user's session namespace")
    if isinstance(inner, _USER_COMMANDS):
        raise PermissionDeniedError(
            "CREATE / ALTER / DROP USER cannot run inside EXECUTE AS USER",
            hint="run it as yourself: users change their own password or email, admins any "
                 "user's")
    if target == ctx.user_id:  # a no-op: same identity, same role
        impersonation.audit(services.db, actor_id=ctx.user_id, actor_role=ctx.role,
                            target_id=target, allowed=True, reason="self",
                            statement=stmt.inner_sql)
        return run_statement(services, inner, ctx, params)
    target_role = services.role_of(target)
    if not impersonation.can_impersonate(ctx.user_id, ctx.role, target, target_role):
        impersonation.audit(services.db, actor_id=ctx.user_id, actor_role=ctx.role,
                            target_id=target, allowed=False, reason="role_not_allowed",
                            statement=stmt.inner_sql)
        raise PermissionDeniedError(
            impersonation.denial_message(ctx.user_id, ctx.role, target),
            hint="system may target any role, dba targets dba/service/user, service targets "
                 "service/user, user targets only themselves")
    impersonation.audit(services.db, actor_id=ctx.user_id, actor_role=ctx.role,
                        target_id=target, allowed=True, statement=stmt.inner_sql)
    return run_statement(services, inner, ctx.impersonating(target), params)
