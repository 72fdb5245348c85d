"""CREATE / DROP TABLE (ALTER TABLE: ``alter_table.py``): validated, then one catalog change,
then the cache follows."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pyarrow as pa

from kalam_engine.auth import permissions
from kalam_engine.catalog.table_lock import held
from kalam_engine.handlers import Params, handles
from kalam_engine.handlers.table_options import check_known, table_options
from kalam_engine.model.context import ExecutionContext, Role, TableId, TableType
from kalam_engine.model.definitions import (
    ColumnDefault,
    ColumnDefinition,
    TableDefinition,
)
from kalam_engine.model.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    InvalidSqlError,
    TableNotFoundError,
)
from kalam_engine.model.types import SERIAL_TYPES, normalize_type_name, resolve_type
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.names import validate_column

if TYPE_CHECKING:
    from kalam_engine.services import Services

def _table_type(stmt: st.CreateTable, ctx: ExecutionContext, namespace: str) -> TableType:
    option = stmt.options.get("TYPE")
    if option is not None and option.upper() not in ("USER", "SHARED", "STREAM"):
        raise InvalidParameterError(f"Unknown table TYPE '{option}'",
                                    hint="use TYPE='USER', 'SHARED' or 'STREAM'")
    if stmt.type_prefix and option and option.upper() != stmt.type_prefix:
        raise InvalidParameterError(
            f"CREATE {stmt.type_prefix} TABLE conflicts with TYPE='{option.upper()}'",
            hint="give the table type once")
    chosen = TableType(stmt.type_prefix or (option.upper() if option else "SHARED"))
    # KalamDB: a user/service creating a SHARED table in the namespace named after themselves
    # gets a USER table.
    if (chosen is TableType.SHARED and ctx.role in (Role.USER, Role.SERVICE)
            and namespace == ctx.user_id.lower()):
        chosen = TableType.USER
    return chosen


def column_definition(spec: st.ColumnSpec, column_id: int) -> ColumnDefinition:
    name = validate_column(spec.name)
    type_text = normalize_type_name(spec.type_text)
    default = spec.default
    if type_text in SERIAL_TYPES or spec.auto_increment:
        default = ColumnDefault("function", "SNOWFLAKE_ID")
    kalam_type, arrow_type = resolve_type(type_text)
    if default is not None and default.kind == "literal" and default.value is not None:
        from kalam_engine.providers.coerce import coerce

        field = pa.field(name, arrow_type)
        coerce(pa.array([default.value]), field)  # raises a clear error if it does not fit
    nullable = spec.nullable if spec.nullable is not None else True
    if spec.primary_key:
        nullable = False
    return ColumnDefinition(name=name, column_id=column_id, sql_type=type_text,
                            kalam_type=kalam_type, nullable=nullable,
                            primary_key=spec.primary_key, default=default, comment=spec.comment)


def build_definition(stmt: st.CreateTable, ctx: ExecutionContext,
                     table_id: TableId) -> TableDefinition:
    check_known(stmt.options)
    table_type = _table_type(stmt, ctx, table_id.namespace)
    options = table_options(stmt.options, table_type)
    columns = _primary_key(stmt, _columns(stmt), table_type)
    return TableDefinition(table_id=table_id, table_type=table_type, columns=tuple(columns),
                           options=options, next_column_id=len(columns))


def _columns(stmt: st.CreateTable) -> list[ColumnDefinition]:
    if not stmt.columns:
        raise InvalidSqlError("CREATE TABLE needs at least one column")
    columns = [column_definition(spec, i) for i, spec in enumerate(stmt.columns)]
    seen: set[str] = set()
    for col in columns:
        if col.name in seen:
            raise InvalidParameterError(f"Duplicate column name '{col.name}'")
        seen.add(col.name)
    return columns


def _primary_key(stmt: st.CreateTable, columns: list[ColumnDefinition],
                 table_type: TableType) -> list[ColumnDefinition]:
    """``columns`` with the one primary key marked (a column's or the table's clause)."""
    pk_names = [c.name for c in columns if c.primary_key]
    if stmt.table_primary_key:
        pk_names += [n.lower() for n in stmt.table_primary_key if n.lower() not in pk_names]
    if len(pk_names) > 1:
        raise InvalidParameterError("Composite PRIMARY KEYs are not supported yet",
                                    hint="use one key column, e.g. a SNOWFLAKE_ID() id")
    if not pk_names:
        if table_type is not TableType.STREAM:
            raise InvalidParameterError(
                f"{table_type.value.capitalize()} tables require a PRIMARY KEY column",
                hint="e.g. id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID()")
        return columns
    if pk_names[0] not in {c.name for c in columns}:
        raise InvalidParameterError(f"PRIMARY KEY column '{pk_names[0]}' is not defined")
    columns = [dataclasses.replace(c, primary_key=True, nullable=False)
               if c.name == pk_names[0] else c for c in columns]
    pk_col = next(c for c in columns if c.primary_key)
    if pk_col.kalam_type.startswith(("Embedding", "Json", "Float", "Double")):
        raise InvalidParameterError(
            f"Column '{pk_col.name}' of type {pk_col.sql_type} cannot be a primary key")
    return columns


@handles(st.CreateTable)
def create_table(services: Services, stmt: st.CreateTable, ctx: ExecutionContext,
                 params: Params) -> Result:
    table_id = services.table_id_for(stmt.table, ctx)
    permissions.check_not_system_namespace(table_id.namespace, "CREATE TABLE")
    table_id = services.table_id_for(stmt.table, ctx, must_exist_ns=True)
    definition = build_definition(stmt, ctx, table_id)
    permissions.check_create_table(ctx, definition.table_type)
    if services.catalog.load_table(table_id) is not None:
        if stmt.if_not_exists:
            return Result("ddl", message=f"Table {table_id} already exists")
        raise AlreadyExistsError(f"Table {table_id} already exists",
                                 hint="use CREATE TABLE IF NOT EXISTS, or DROP TABLE first")
    with services.storages.guard:  # DROP STORAGE cannot slip between the check and the save
        services.storages.require(definition.options.storage_id)
        services.catalog.save_table(definition)
    services.cache.register(definition)
    services.after_ddl()
    return Result("ddl", message=f"{definition.table_type.value} table {table_id} created")


@handles(st.DropTable)
def drop_table(services: Services, stmt: st.DropTable, ctx: ExecutionContext,
               params: Params) -> Result:
    table_id = services.table_id_for(stmt.table, ctx)
    permissions.check_not_system_namespace(table_id.namespace, "DROP TABLE")
    with held(services.cache, table_id):  # running writes finish first; later ones find it dropped
        return _drop_table(services, stmt, ctx, table_id)


def _drop_table(services: Services, stmt: st.DropTable, ctx: ExecutionContext,
                table_id: TableId) -> Result:
    definition = services.catalog.load_table(table_id)
    if definition is None:
        if stmt.if_exists:
            return Result("ddl", message=f"Table {table_id} does not exist")
        raise TableNotFoundError(f"Table {table_id} does not exist",
                                 hint=services.close_names(ctx, str(table_id)))
    permissions.check_drop_table(ctx, definition.table_type)
    if stmt.type_prefix and stmt.type_prefix != definition.table_type.value:
        raise InvalidParameterError(
            f"Table {table_id} is a {definition.table_type.value} table, not "
            f"{stmt.type_prefix}", hint=f"use DROP TABLE {table_id}")
    drop_table_everywhere(services, table_id)
    return Result("ddl", message=f"Table {table_id} dropped successfully")


def drop_table_everywhere(services: Services, table_id: TableId) -> None:
    """Drop the table from the catalog, the schema cache and storage; end its live queries."""
    with held(services.cache, table_id):
        services.catalog.drop_table(table_id)
        services.cache.retire(table_id, "the table was dropped")
        services.storage.drop_table(table_id)
    services.live.table_dropped(table_id)
    services.after_ddl()
