"""CREATE / ALTER / DROP TABLE: validated, then one catalog change, then the cache follows."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pyarrow as pa

from kalam_engine.auth import permissions
from kalam_engine.handlers.table_lock import held
from kalam_engine.handlers.vector_index import follow_columns, index_change
from kalam_engine.model.context import AccessLevel, ExecutionContext, Role, TableId, TableType
from kalam_engine.model.definitions import (
    ColumnDefault,
    ColumnDefinition,
    TableDefinition,
    TableOptions,
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
from kalam_engine.sql.storage_commands import validate_storage_id
from kalam_engine.storage.conform import conform

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

KNOWN_OPTIONS = {"TYPE", "STORAGE_ID", "USE_USER_STORAGE", "FLUSH_POLICY",
                 "DELETED_RETENTION_HOURS", "TTL_SECONDS", "ACCESS_LEVEL"}


def _int_option(options: dict[str, str], key: str, low: int, high: int) -> int | None:
    if key not in options:
        return None
    try:
        value = int(options[key])
    except ValueError:
        raise InvalidParameterError(f"{key} must be a whole number, got {options[key]!r}") \
            from None
    if not low <= value <= high:
        raise InvalidParameterError(f"{key}={value} is out of range ({low}..{high})")
    return value


def _flush_policy(text: str) -> tuple[int | None, int | None]:
    rows = interval = None
    for part in text.replace(" ", "").lower().split(","):
        kind, _, value = part.partition(":")
        try:
            number = int(value)
        except ValueError:
            number = -1
        if kind == "rows" and 1 <= number <= 999_999:
            rows = number
        elif kind == "interval" and 1 <= number <= 86_399:
            interval = number
        else:
            raise InvalidParameterError(
                f"Invalid FLUSH_POLICY '{text}'",
                hint="use 'rows:N' (1..999999), 'interval:S' (1..86399) or 'rows:N,interval:S'")
    return rows, interval


def _access_level(text: str) -> AccessLevel:
    try:
        return AccessLevel(text.strip().lower())
    except ValueError:
        raise InvalidParameterError(
            f"Unknown access level '{text}'",
            hint="use PUBLIC, PRIVATE, RESTRICTED or DBA") from None


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


def _column_definition(spec: st.ColumnSpec, column_id: int) -> ColumnDefinition:
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
    unknown = set(stmt.options) - KNOWN_OPTIONS
    if unknown:
        raise InvalidParameterError(f"Unknown table option '{sorted(unknown)[0]}'",
                                    hint="known options: " + ", ".join(sorted(KNOWN_OPTIONS)))
    table_type = _table_type(stmt, ctx, table_id.namespace)
    opts = stmt.options
    ttl = _int_option(opts, "TTL_SECONDS", 1, 10 * 365 * 86_400)
    if table_type is TableType.STREAM and ttl is None:
        raise InvalidParameterError("STREAM tables require TTL_SECONDS",
                                    hint="e.g. WITH (TTL_SECONDS=3600)")
    if table_type is not TableType.STREAM and ttl is not None:
        raise InvalidParameterError("TTL_SECONDS is only allowed on STREAM tables")
    level = None
    if "ACCESS_LEVEL" in opts:
        if table_type is not TableType.SHARED:
            raise InvalidParameterError("ACCESS_LEVEL is only allowed on SHARED tables")
        level = _access_level(opts["ACCESS_LEVEL"])
    elif table_type is TableType.SHARED:
        level = AccessLevel.PRIVATE
    use_user_storage = opts.get("USE_USER_STORAGE", "FALSE").upper() == "TRUE"
    if "USE_USER_STORAGE" in opts and table_type is not TableType.USER:
        raise InvalidParameterError("USE_USER_STORAGE is only allowed on USER tables")
    storage_id = validate_storage_id(opts.get("STORAGE_ID", "local"))
    flush_rows = flush_interval = None
    if "FLUSH_POLICY" in opts:
        if table_type is TableType.STREAM:
            raise InvalidParameterError("FLUSH_POLICY is not allowed on STREAM tables")
        flush_rows, flush_interval = _flush_policy(opts["FLUSH_POLICY"])
    retention = _int_option(opts, "DELETED_RETENTION_HOURS", 0, 100_000)

    if not stmt.columns:
        raise InvalidSqlError("CREATE TABLE needs at least one column")
    columns = [_column_definition(spec, i) for i, spec in enumerate(stmt.columns)]
    seen: set[str] = set()
    for col in columns:
        if col.name in seen:
            raise InvalidParameterError(f"Duplicate column name '{col.name}'")
        seen.add(col.name)
    pk_names = [c.name for c in columns if c.primary_key]
    if stmt.table_primary_key:
        pk_names += [n.lower() for n in stmt.table_primary_key if n.lower() not in pk_names]
    if len(pk_names) > 1:
        raise InvalidParameterError("Composite PRIMARY KEYs are not supported yet",
                                    hint="use one key column, e.g. a SNOWFLAKE_ID() id")
    if not pk_names and table_type is not TableType.STREAM:
        raise InvalidParameterError(
            f"{table_type.value.capitalize()} tables require a PRIMARY KEY column",
            hint="e.g. id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID()")
    if pk_names:
        if pk_names[0] not in seen:
            raise InvalidParameterError(f"PRIMARY KEY column '{pk_names[0]}' is not defined")
        columns = [dataclasses.replace(c, primary_key=True, nullable=False)
                   if c.name == pk_names[0] else c for c in columns]
        pk_col = next(c for c in columns if c.primary_key)
        if pk_col.kalam_type.startswith(("Embedding", "Json", "Float", "Double")):
            raise InvalidParameterError(
                f"Column '{pk_col.name}' of type {pk_col.sql_type} cannot be a primary key")
    options = TableOptions(storage_id=storage_id, flush_rows=flush_rows,
                           flush_interval_s=flush_interval, ttl_seconds=ttl, access_level=level,
                           use_user_storage=use_user_storage,
                           deleted_retention_hours=retention)
    return TableDefinition(table_id=table_id, table_type=table_type, columns=tuple(columns),
                           options=options, next_column_id=len(columns))


def create_table(engine: Engine, stmt: st.CreateTable, ctx: ExecutionContext) -> Result:
    table_id = engine.table_id_for(stmt.table, ctx)
    permissions.check_not_system_namespace(table_id.namespace, "CREATE TABLE")
    table_id = engine.table_id_for(stmt.table, ctx, must_exist_ns=True)
    definition = build_definition(stmt, ctx, table_id)
    permissions.check_create_table(ctx, definition.table_type)
    if engine.catalog.load_table(table_id) is not None:
        if stmt.if_not_exists:
            return Result("ddl", message=f"Table {table_id} already exists")
        raise AlreadyExistsError(f"Table {table_id} already exists",
                                 hint="use CREATE TABLE IF NOT EXISTS, or DROP TABLE first")
    with engine.storages.guard:  # DROP STORAGE cannot slip between the check and the save
        engine.storages.require(definition.options.storage_id)
        engine.catalog.save_table(definition)
    engine.cache.register(definition)
    engine.after_ddl()
    return Result("ddl", message=f"{definition.table_type.value} table {table_id} created")


def drop_table(engine: Engine, stmt: st.DropTable, ctx: ExecutionContext) -> Result:
    table_id = engine.table_id_for(stmt.table, ctx)
    permissions.check_not_system_namespace(table_id.namespace, "DROP TABLE")
    with held(engine, table_id):  # running writes finish first; later ones find it dropped
        return _drop_table(engine, stmt, ctx, table_id)


def _drop_table(engine: Engine, stmt: st.DropTable, ctx: ExecutionContext,
                table_id: TableId) -> Result:
    definition = engine.catalog.load_table(table_id)
    if definition is None:
        if stmt.if_exists:
            return Result("ddl", message=f"Table {table_id} does not exist")
        raise TableNotFoundError(f"Table {table_id} does not exist",
                                 hint=engine.runner._close_names(ctx, str(table_id)))
    permissions.check_drop_table(ctx, definition.table_type)
    if stmt.type_prefix and stmt.type_prefix != definition.table_type.value:
        raise InvalidParameterError(
            f"Table {table_id} is a {definition.table_type.value} table, not "
            f"{stmt.type_prefix}", hint=f"use DROP TABLE {table_id}")
    engine.drop_table_everywhere(table_id)
    return Result("ddl", message=f"Table {table_id} dropped successfully")


def _rows_exist(engine: Engine, table_id: TableId) -> bool:
    store = engine.storage.existing_store(table_id)
    return store is not None and store.stored_rows() > 0


def _validate_against_data(engine: Engine, old: TableDefinition,
                           new: TableDefinition) -> None:
    """Check that every stored row fits the new schema (types and NOT NULL)."""
    store = engine.storage.existing_store(old.table_id)
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


def alter_table(engine: Engine, stmt: st.AlterTable, ctx: ExecutionContext) -> Result:
    table_id = engine.table_id_for(stmt.table, ctx)
    permissions.check_not_system_namespace(table_id.namespace, "ALTER TABLE")
    # Validation, backfill and the new provider happen with no write to the table in between;
    # a write that waited gets the new provider.
    with held(engine, table_id):
        return _alter_table(engine, stmt, ctx, table_id)


def _alter_table(engine: Engine, stmt: st.AlterTable, ctx: ExecutionContext,
                 table_id: TableId) -> Result:
    old = engine.catalog.load_table(table_id)
    if old is None:
        raise TableNotFoundError(f"Table {table_id} does not exist",
                                 hint=engine.runner._close_names(ctx, str(table_id)))
    permissions.check_alter_table(ctx, old.table_type)
    action = stmt.action
    cols = list(old.columns)
    changes: dict = {}

    def find(name: str) -> int:
        lname = name.lower()
        for i, c in enumerate(cols):
            if c.name == lname:
                return i
        if lname.startswith("_"):
            raise InvalidParameterError(f"System column '{lname}' cannot be modified")
        raise InvalidParameterError(f"Table {table_id} has no column '{lname}'",
                                    hint="its columns are " + ", ".join(c.name for c in cols))

    if isinstance(action, st.AddColumn):
        col = _column_definition(action.column, old.next_column_id)
        if col.primary_key:
            raise InvalidParameterError("ALTER TABLE cannot add a PRIMARY KEY column")
        if old.column(col.name) is not None:
            raise AlreadyExistsError(f"Column '{col.name}' already exists in {table_id}")
        if not col.nullable and col.default is None and _rows_exist(engine, table_id):
            raise InvalidParameterError(
                f"Cannot add NOT NULL column '{col.name}' without a DEFAULT to a table that "
                "has rows", hint="add a DEFAULT, or add the column as nullable")
        if not col.nullable and col.default is not None and col.default.kind != "literal":
            raise InvalidParameterError(
                f"A NOT NULL column added to existing rows needs a literal DEFAULT, not "
                f"{col.default.describe()}")
        cols.append(col)
        what = f"added column {col.name}"
    elif isinstance(action, st.DropColumn):
        i = find(action.name)
        if cols[i].primary_key:
            raise InvalidParameterError("The PRIMARY KEY column cannot be dropped")
        changes["options"] = follow_columns(old.options, dropped=cols[i].name)
        what = f"dropped column {cols.pop(i).name}"
    elif isinstance(action, st.ModifyColumn):
        i = find(action.column.name)
        col = _column_definition(action.column, cols[i].column_id)
        if cols[i].primary_key:
            raise InvalidParameterError("The PRIMARY KEY column's type cannot be modified")
        cols[i] = dataclasses.replace(col, default=cols[i].default, comment=cols[i].comment)
        if not col.kalam_type.startswith("Embedding"):
            changes["options"] = follow_columns(old.options, dropped=col.name)
        what = f"modified column {col.name}"
    elif isinstance(action, st.SetNullability):
        i = find(action.name)
        if cols[i].primary_key and action.nullable:
            raise InvalidParameterError("The PRIMARY KEY column cannot be made nullable")
        cols[i] = dataclasses.replace(cols[i], nullable=action.nullable)
        what = f"column {cols[i].name} {'NULL' if action.nullable else 'NOT NULL'}"
    elif isinstance(action, st.SetColumnDefault):
        i = find(action.name)
        cols[i] = dataclasses.replace(cols[i], default=action.default)
        what = f"column {cols[i].name} default " + (
            action.default.describe() if action.default else "dropped")
    elif isinstance(action, st.RenameColumn):
        i = find(action.old)
        new_name = validate_column(action.new)
        if any(c.name == new_name for c in cols):
            raise AlreadyExistsError(f"Column '{new_name}' already exists in {table_id}")
        if cols[i].primary_key:
            raise InvalidParameterError("The PRIMARY KEY column cannot be renamed")
        changes["options"] = follow_columns(old.options, renamed=(cols[i].name, new_name))
        cols[i] = dataclasses.replace(cols[i], name=new_name)
        what = f"renamed column {action.old.lower()} to {new_name}"
    elif isinstance(action, st.SetAccessLevel):
        if old.table_type is not TableType.SHARED:
            raise InvalidParameterError("ACCESS LEVEL only applies to SHARED tables")
        level = _access_level(action.level)
        changes["options"] = dataclasses.replace(old.options, access_level=level)
        what = f"access level {level.value}"
    elif isinstance(action, (st.CreateVectorIndex, st.DropVectorIndex)):
        changes["options"], what = index_change(old, action)
    else:  # pragma: no cover - the parser produces only the actions above
        raise InvalidSqlError("Unsupported ALTER TABLE action")
    new = old.evolve(tuple(cols), **changes)
    if isinstance(action, (st.ModifyColumn, st.SetNullability)):
        _validate_against_data(engine, old, new)
    if isinstance(action, st.AddColumn) and not cols[-1].nullable and _rows_exist(
            engine, table_id):
        engine.backfill_column(old, new, cols[-1])  # saves ``new`` in its transaction
    else:
        engine.catalog.save_table(new)
    engine.cache.register(new)
    engine.after_ddl()
    return Result("ddl", message=f"Table {table_id} altered: {what} "
                                 f"(schema version {new.schema_version})")
