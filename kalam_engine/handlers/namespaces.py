"""CREATE / DROP / ALTER NAMESPACE and USE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kalam_engine.auth.permissions import check_not_system_namespace, require_admin
from kalam_engine.model.context import ExecutionContext, TableId
from kalam_engine.model.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    NamespaceNotFoundError,
)
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.names import validate_namespace

if TYPE_CHECKING:
    from kalam_engine.engine import Engine


def create_namespace(engine: Engine, stmt: st.CreateNamespace, ctx: ExecutionContext) -> Result:
    require_admin(ctx, "CREATE NAMESPACE")
    name = validate_namespace(stmt.name, creating=True)
    if engine.namespace_exists(name):
        if stmt.if_not_exists:
            return Result("ddl", message=f"Namespace '{name}' already exists")
        raise AlreadyExistsError(f"Namespace '{name}' already exists",
                                 hint="use CREATE NAMESPACE IF NOT EXISTS")
    engine.catalog.create_namespace(name)
    engine.after_ddl()
    return Result("ddl", message=f"Namespace '{name}' created")


def drop_namespace(engine: Engine, stmt: st.DropNamespace, ctx: ExecutionContext) -> Result:
    require_admin(ctx, "DROP NAMESPACE")
    name = validate_namespace(stmt.name)
    check_not_system_namespace(name, "DROP NAMESPACE")
    if not engine.namespace_exists(name) or name == "default":
        if stmt.if_exists:
            return Result("ddl", message=f"Namespace '{name}' does not exist")
        raise NamespaceNotFoundError(f"Namespace '{name}' does not exist",
                                     hint="SHOW NAMESPACES lists them")
    tables = engine.catalog.table_names(name)
    # KalamDB drops the tables even without CASCADE; we ask for CASCADE when it would drop any.
    if tables and not stmt.cascade:
        raise InvalidParameterError(
            f"Namespace '{name}' still has {len(tables)} table(s): {', '.join(tables[:5])}",
            hint=f"DROP NAMESPACE {name} CASCADE drops them too")
    for table in tables:
        engine.drop_table_everywhere(TableId(name, table))
    engine.catalog.drop_namespace(name)
    engine.after_ddl()
    suffix = f" with {len(tables)} table(s)" if tables else ""
    return Result("ddl", message=f"Namespace '{name}' dropped{suffix}")


def alter_namespace(engine: Engine, stmt: st.AlterNamespace, ctx: ExecutionContext) -> Result:
    require_admin(ctx, "ALTER NAMESPACE")
    name = validate_namespace(stmt.name)
    check_not_system_namespace(name, "ALTER NAMESPACE")
    if not engine.namespace_exists(name):
        raise NamespaceNotFoundError(f"Namespace '{name}' does not exist")
    current = dict({n: o for n, _, o in engine.catalog.namespaces()}.get(name, {}))
    current.update({k.lower(): v for k, v in stmt.options.items()})
    engine.catalog.set_namespace_options(name, current)
    return Result("ddl", message=f"Namespace '{name}' altered")


def use_namespace(engine: Engine, stmt: st.UseNamespace, ctx: ExecutionContext) -> Result:
    name = validate_namespace(stmt.name)
    if not engine.namespace_exists(name):
        raise NamespaceNotFoundError(f"Namespace '{name}' does not exist",
                                     hint=f"CREATE NAMESPACE {name} first")
    engine.set_session_namespace(ctx.user_id, name)
    return Result("command", message=f"Using namespace '{name}'")
