"""ALTER TABLE: one function per action makes the next schema version; then the stored rows are
checked against it (or, for a new NOT NULL column, given its DEFAULT) and it is saved, all under
the table's write lock."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kalam_engine.auth import permissions
from kalam_engine.catalog.table_lock import held
from kalam_engine.handlers import Params, handles
from kalam_engine.handlers.table_options import access_level
from kalam_engine.handlers.tables import column_definition
from kalam_engine.handlers.vector_index import follow_columns, index_change
from kalam_engine.model.context import ROOT_USER, ExecutionContext, Role, TableId, TableType
from kalam_engine.model.definitions import ColumnDefinition, TableDefinition
from kalam_engine.model.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    InvalidSqlError,
    TableNotFoundError,
)
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.names import validate_column
from kalam_engine.storage.conform import conform

if TYPE_CHECKING:
    from kalam_engine.services import Services


@dataclass
class Altered:
    """What one action makes of the table: its columns, other changed fields, a description;
    whether the stored rows must fit the new types, and a new column they must be given."""

    columns: list[ColumnDefinition]
    what: str
    changes: dict[str, Any] = field(default_factory=dict)
    check_rows: bool = False
    backfill: ColumnDefinition | None = None


@handles(st.AlterTable)
def alter_table(services: Services, stmt: st.AlterTable, ctx: ExecutionContext,
                params: Params) -> Result:
    table_id = services.table_id_for(stmt.table, ctx)
    permissions.check_not_system_namespace(table_id.namespace, "ALTER TABLE")
    # Validation, backfill and the new provider happen with no write to the table in between;
    # a write that waited gets the new provider.
    with held(services.cache, table_id):
        old = services.catalog.load_table(table_id)
        if old is None:
            raise TableNotFoundError(f"Table {table_id} does not exist",
                                     hint=services.close_names(ctx, str(table_id)))
        permissions.check_alter_table(ctx, old.table_type)
        action = _ACTIONS.get(type(stmt.action))
        if action is None:  # pragma: no cover - the parser produces only the actions below
            raise InvalidSqlError("Unsupported ALTER TABLE action")
        altered = action(services, old, stmt.action)
        new = old.evolve(tuple(altered.columns), **altered.changes)
        _save(services, old, new, altered)
    return Result("ddl", message=f"Table {table_id} altered: {altered.what} "
                                 f"(schema version {new.schema_version})")


def _save(services: Services, old: TableDefinition, new: TableDefinition,
          altered: Altered) -> None:
    if altered.check_rows:
        _validate_against_data(services, old, new)
    if altered.backfill is not None:
        _backfill_column(services, old, new, altered.backfill)  # saves ``new`` with the rows
    else:
        services.catalog.save_table(new)
    services.cache.register(new)
    services.after_ddl()


# --- the actions
def _find(old: TableDefinition, name: str) -> int:
    lname = name.lower()
    for i, c in enumerate(old.columns):
        if c.name == lname:
            return i
    if lname.startswith("_"):
        raise InvalidParameterError(f"System column '{lname}' cannot be modified")
    raise InvalidParameterError(f"Table {old.table_id} has no column '{lname}'",
                                hint="its columns are " + ", ".join(c.name for c in old.columns))


def _add_column(services: Services, old: TableDefinition, action: st.AddColumn) -> Altered:
    col = column_definition(action.column, old.next_column_id)
    if col.primary_key:
        raise InvalidParameterError("ALTER TABLE cannot add a PRIMARY KEY column")
    if old.column(col.name) is not None:
        raise AlreadyExistsError(f"Column '{col.name}' already exists in {old.table_id}")
    has_rows = not col.nullable and _rows_exist(services, old.table_id)
    if has_rows and col.default is None:
        raise InvalidParameterError(
            f"Cannot add NOT NULL column '{col.name}' without a DEFAULT to a table that "
            "has rows", hint="add a DEFAULT, or add the column as nullable")
    if not col.nullable and col.default is not None and col.default.kind != "literal":
        raise InvalidParameterError(
            f"A NOT NULL column added to existing rows needs a literal DEFAULT, not "
            f"{col.default.describe()}")
    return Altered([*old.columns, col], f"added column {col.name}",
                   backfill=col if has_rows else None)


def _drop_column(services: Services, old: TableDefinition, action: st.DropColumn) -> Altered:
    cols = list(old.columns)
    i = _find(old, action.name)
    if cols[i].primary_key:
        raise InvalidParameterError("The PRIMARY KEY column cannot be dropped")
    dropped = cols.pop(i)
    options = follow_columns(old.options, dropped=dropped.name)
    return Altered(cols, f"dropped column {dropped.name}", {"options": options})


def _modify_column(services: Services, old: TableDefinition,
                   action: st.ModifyColumn) -> Altered:
    cols = list(old.columns)
    i = _find(old, action.column.name)
    col = column_definition(action.column, cols[i].column_id)
    if cols[i].primary_key:
        raise InvalidParameterError("The PRIMARY KEY column's type cannot be modified")
    cols[i] = dataclasses.replace(col, default=cols[i].default, comment=cols[i].comment)
    changes = {}
    if not col.kalam_type.startswith("Embedding"):
        changes["options"] = follow_columns(old.options, dropped=col.name)
    return Altered(cols, f"modified column {col.name}", changes, check_rows=True)


def _set_nullability(services: Services, old: TableDefinition,
                     action: st.SetNullability) -> Altered:
    cols = list(old.columns)
    i = _find(old, action.name)
    if cols[i].primary_key and action.nullable:
        raise InvalidParameterError("The PRIMARY KEY column cannot be made nullable")
    cols[i] = dataclasses.replace(cols[i], nullable=action.nullable)
    return Altered(cols, f"column {cols[i].name} {'NULL' if action.nullable else 'NOT NULL'}",
                   check_rows=True)


def _set_default(services: Services, old: TableDefinition,
                 action: st.SetColumnDefault) -> Altered:
    cols = list(old.columns)
    i = _find(old, action.name)
    cols[i] = dataclasses.replace(cols[i], default=action.default)
    return Altered(cols, f"column {cols[i].name} default " + (
        action.default.describe() if action.default else "dropped"))


def _rename_column(services: Services, old: TableDefinition,
                   action: st.RenameColumn) -> Altered:
    cols = list(old.columns)
    i = _find(old, action.old)
    new_name = validate_column(action.new)
    if any(c.name == new_name for c in cols):
        raise AlreadyExistsError(f"Column '{new_name}' already exists in {old.table_id}")
    if cols[i].primary_key:
        raise InvalidParameterError("The PRIMARY KEY column cannot be renamed")
    options = follow_columns(old.options, renamed=(cols[i].name, new_name))
    cols[i] = dataclasses.replace(cols[i], name=new_name)
    return Altered(cols, f"renamed column {action.old.lower()} to {new_name}",
                   {"options": options})


def _set_access_level(services: Services, old: TableDefinition,
                      action: st.SetAccessLevel) -> Altered:
    if old.table_type is not TableType.SHARED:
        raise InvalidParameterError("ACCESS LEVEL only applies to SHARED tables")
    level = access_level(action.level)
    options = dataclasses.replace(old.options, access_level=level)
    return Altered(list(old.columns), f"access level {level.value}", {"options": options})


def _vector_index(services: Services, old: TableDefinition,
                  action: st.CreateVectorIndex | st.DropVectorIndex) -> Altered:
    options, what = index_change(old, action)
    return Altered(list(old.columns), what, {"options": options})


_ACTIONS: dict[type, Callable[[Services, TableDefinition, Any], Altered]] = {
    st.AddColumn: _add_column,
    st.DropColumn: _drop_column,
    st.ModifyColumn: _modify_column,
    st.SetNullability: _set_nullability,
    st.SetColumnDefault: _set_default,
    st.RenameColumn: _rename_column,
    st.SetAccessLevel: _set_access_level,
    st.CreateVectorIndex: _vector_index,
    st.DropVectorIndex: _vector_index,
}


# --- the stored rows
def _rows_exist(services: Services, table_id: TableId) -> bool:
    store = services.storage.existing_store(table_id)
    return store is not None and store.stored_rows() > 0


def _validate_against_data(services: Services, old: TableDefinition,
                           new: TableDefinition) -> None:
    """Check that every stored row fits the new schema (types and NOT NULL)."""
    store = services.storage.existing_store(old.table_id)
    if store is None:
        return
    schema = new.arrow_schema()
    for scope in store.scopes():
        rows = store.read(scope, old.arrow_schema())
        try:
            fitted = conform(rows, schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidParameterError(
                f"Existing rows of {old.table_id} do not fit the new type: {exc}") from None
        for col in new.columns:
            if not col.nullable and fitted[col.name].null_count:
                raise InvalidParameterError(
                    f"Column '{col.name}' has NULL values in existing rows; it cannot be NOT "
                    "NULL", hint="UPDATE the NULL rows first")


def _backfill_column(services: Services, old: TableDefinition, new: TableDefinition,
                     column: ColumnDefinition) -> None:
    """Give existing rows a new NOT NULL column's DEFAULT, as new versions, and save ``new``
    in the same SQLite transaction: a crash leaves the old table or the new one, never
    backfilled rows without their column (they would reappear in a later column)."""
    store = services.storage.existing_store(old.table_id)
    if store is None or column.default is None:
        services.catalog.save_table(new)
        return
    provider = services.new_provider(new, store)
    batches = []
    for scope in store.scopes():
        rows = store.read(scope, old.arrow_schema())
        if rows.num_rows == 0:
            continue
        rows = rows.drop_columns(["_seq", "_deleted"])
        rows = rows.append_column(column.name, pa.array([column.default.value] * len(rows)))
        ctx = ExecutionContext(scope or ROOT_USER, Role.SYSTEM)
        batches.append((scope, provider._complete(ctx, rows, fill_defaults=False)))

    def save() -> None:
        services.catalog.save_table(new)
        store.bind(new)  # a flush the backfill triggers must keep the new column

    store.write_batches(batches, new.schema_version, "update", save)
