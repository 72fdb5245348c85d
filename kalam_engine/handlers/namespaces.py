"""CREATE / DROP / ALTER NAMESPACE and USE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kalam_engine.auth.permissions import check_not_system_namespace, require_admin
from kalam_engine.handlers import Params, handles
from kalam_engine.handlers.tables import drop_table_everywhere
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
    from kalam_engine.services import Services


@handles(st.CreateNamespace)
def create_namespace(services: Services, stmt: st.CreateNamespace, ctx: ExecutionContext,
                     params: Params) -> Result:
    require_admin(ctx, "CREATE NAMESPACE")
    name = validate_namespace(stmt.name, creating=True)
    if services.namespace_exists(name):
        if stmt.if_not_exists:
            return Result("ddl", message=f"Namespace '{name}' already exists")
        raise AlreadyExistsError(f"Namespace '{name}' already exists",
                                 hint="use CREATE NAMESPACE IF NOT EXISTS")
    services.catalog.create_namespace(name)
    services.after_ddl()
    return Result("ddl", message=f"Namespace '{name}' created")


@handles(st.DropNamespace)
def drop_namespace(services: Services, stmt: st.DropNamespace, ctx: ExecutionContext,
                   params: Params) -> Result:
    require_admin(ctx, "DROP NAMESPACE")
    name = validate_namespace(stmt.name)
    check_not_system_namespace(name, "DROP NAMESPACE")
    if not services.namespace_exists(name) or name == "default":
        if stmt.if_exists:
            return Result("ddl", message=f"Namespace '{name}' does not exist")
        raise NamespaceNotFoundError(f"Namespace '{name}' does not exist",
                                     hint="SHOW NAMESPACES lists them")
    tables = services.catalog.table_names(name)
    # KalamDB drops the tables even without CASCADE; we ask for CASCADE when it would drop any.
    if tables and not stmt.cascade:
        raise InvalidParameterError(
            f"Namespace '{name}' still has {len(tables)} table(s): {', '.join(tables[:5])}",
            hint=f"DROP NAMESPACE {name} CASCADE drops them too")
    for table in tables:
        drop_table_everywhere(services, TableId(name, table))
    services.catalog.drop_namespace(name)
    services.after_ddl()
    suffix = f" with {len(tables)} table(s)" if tables else ""
    return Result("ddl", message=f"Namespace '{name}' dropped{suffix}")


@handles(st.AlterNamespace)
def alter_namespace(services: Services, stmt: st.AlterNamespace, ctx: ExecutionContext,
                    params: Params) -> Result:
    require_admin(ctx, "ALTER NAMESPACE")
    name = validate_namespace(stmt.name)
    check_not_system_namespace(name, "ALTER NAMESPACE")
    if not services.namespace_exists(name):
        raise NamespaceNotFoundError(f"Namespace '{name}' does not exist")
    current = dict({n: o for n, _, o in services.catalog.namespaces()}.get(name, {}))
    current.update({k.lower(): v for k, v in stmt.options.items()})
    services.catalog.set_namespace_options(name, current)
    return Result("ddl", message=f"Namespace '{name}' altered")


@handles(st.UseNamespace)
def use_namespace(services: Services, stmt: st.UseNamespace, ctx: ExecutionContext,
                  params: Params) -> Result:
    name = validate_namespace(stmt.name)
    if not services.namespace_exists(name):
        raise NamespaceNotFoundError(f"Namespace '{name}' does not exist",
                                     hint=f"CREATE NAMESPACE {name} first")
    services.session_namespaces[ctx.user_id] = name
    return Result("command", message=f"Using namespace '{name}'")
