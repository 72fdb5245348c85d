"""Who may do what (semantics reference section 3). Denials name the rule and change nothing."""

from __future__ import annotations

from kalam_engine.model.context import ExecutionContext, Role, TableType
from kalam_engine.model.errors import PermissionDeniedError


def require_role(ctx: ExecutionContext, minimum: Role, action: str) -> None:
    if ctx.role < minimum:
        raise PermissionDeniedError(
            f"{action} needs role {minimum.label} or higher; user '{ctx.user_id}' has role "
            f"{ctx.role.label}", hint="ask a dba to run it or to change your role")


def require_admin(ctx: ExecutionContext, action: str) -> None:
    require_role(ctx, Role.DBA, action)


def check_create_table(ctx: ExecutionContext, table_type: TableType) -> None:
    if table_type is TableType.SHARED:
        require_role(ctx, Role.SERVICE, "CREATE SHARED TABLE")


def check_alter_table(ctx: ExecutionContext, table_type: TableType) -> None:
    """Every schema change needs dba, as DROP TABLE does: a USER or STREAM table is one schema
    shared by every tenant, so one user must not drop, rename or retype a column for all.
    (KalamDB lets role user alter USER/STREAM tables and service SHARED ones.)"""
    if table_type is TableType.SYSTEM:
        raise PermissionDeniedError("System tables cannot be altered")
    require_admin(ctx, "ALTER TABLE")


def check_drop_table(ctx: ExecutionContext, table_type: TableType) -> None:
    if table_type is TableType.SYSTEM:
        raise PermissionDeniedError("System tables cannot be dropped")
    require_admin(ctx, "DROP TABLE")


SYSTEM_NAMESPACE = "system"


def check_not_system_namespace(namespace: str, action: str) -> None:
    """The ``system`` namespace holds only the built-in read-only system tables."""
    if namespace == SYSTEM_NAMESPACE:
        raise PermissionDeniedError(
            f"{action} is not allowed in the system namespace: system tables are built in and "
            "read-only for every role", hint="use your own namespace")
