"""INSERT / UPDATE / DELETE: DataFusion evaluates values and predicates over this request's rows;
the table's provider validates and writes the new versions.

Each statement runs under its target table's write lock (``table_lock.writing``), from reading
the definition and evaluating the rows to writing them, against the provider current under that
lock: concurrent writes to a table are serializable, and none writes with a replaced schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.catalog.table_lock import writing
from kalam_engine.handlers import Params, handles
from kalam_engine.model.context import ExecutionContext, TableId, TableType
from kalam_engine.model.errors import InvalidParameterError, PermissionDeniedError, UnsupportedError
from kalam_engine.providers.core import column_positions
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.values import literal_rows, values_table

if TYPE_CHECKING:
    from kalam_engine.providers.core import BaseTableProvider
    from kalam_engine.services import Services


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check(provider: BaseTableProvider, ctx: ExecutionContext) -> BaseTableProvider:
    if provider.table_type is TableType.SYSTEM:
        raise PermissionDeniedError(f"Cannot write system table '{provider.table_id}'",
                                    hint="system tables change only through SQL commands")
    provider.check_write(ctx)
    return provider


@contextmanager
def _target(services: Services, ref: st.TableRef, ctx: ExecutionContext
            ) -> Iterator[BaseTableProvider]:
    """The statement's target table, write lock held, checked for ``ctx`` (permission is
    checked before waiting for the lock and again under it: an ALTER may have changed it)."""
    table_id = services.table_id_for(ref, ctx)
    _check(services.cache.get_provider(table_id), ctx)
    with writing(services.cache, table_id) as provider:
        yield _check(provider, ctx)


def _keyed(provider: BaseTableProvider, verb: str) -> None:
    if provider.core.primary_key is None:
        raise UnsupportedError(
            f"{verb} on STREAM table {provider.table_id} needs a PRIMARY KEY",
            hint="rows of a keyless STREAM table expire after TTL_SECONDS")


@handles(st.InsertStatement)
def insert(services: Services, stmt: st.InsertStatement, ctx: ExecutionContext,
           params: Params) -> Result:
    with _target(services, stmt.table, ctx) as provider:
        count = _insert(services, provider, stmt, ctx, params)
    return Result("dml", message=f"Inserted {count} row(s)", row_count=count)


def _insert(services: Services, provider: BaseTableProvider, stmt: st.InsertStatement,
            ctx: ExecutionContext, params: list[Any] | None) -> int:
    names = provider.core.definition.user_column_names()
    if stmt.columns is not None:
        targets = [c.lower() for c in stmt.columns]
        unknown = [c for c in targets if c not in names]
        if unknown:
            raise InvalidParameterError(
                f"Table {provider.table_id} has no column '{unknown[0]}'",
                hint="its columns are " + ", ".join(names))
        if len(set(targets)) != len(targets):
            raise InvalidParameterError("A column is named twice in the INSERT column list")
    else:
        targets = names
    values = None
    if services.fast_paths:
        rows = literal_rows(stmt.source_sql)
        if rows is not None:
            values = values_table(rows, targets, params)
    if values is None:
        values = services.runner.run(ctx, stmt.source_sql, params, include_deleted=False)
    if values.num_columns != len(targets):
        raise InvalidParameterError(
            f"INSERT has {len(targets)} target column(s) but {values.num_columns} value(s) "
            "per row", hint="give one value per column in the column list" if stmt.columns
            else f"give one value per column of {provider.table_id} ({', '.join(names)}), "
                 "or name the columns you give values for")
    batch = pa.Table.from_arrays(values.columns, names=targets)
    return provider.insert(ctx, batch)


@handles(st.UpdateStatement)
def update(services: Services, stmt: st.UpdateStatement, ctx: ExecutionContext,
           params: Params) -> Result:
    with _target(services, stmt.table, ctx) as provider:
        count = _update(services, provider, stmt, ctx, params)
    return Result("dml", message=f"Updated {count} row(s)", row_count=count)


def _update(services: Services, provider: BaseTableProvider, stmt: st.UpdateStatement,
            ctx: ExecutionContext, params: list[Any] | None) -> int:
    _keyed(provider, "UPDATE")
    definition = provider.core.definition
    names = definition.user_column_names()
    assigned: dict[str, str] = {}
    for col, expr in stmt.assignments:
        lname = col.lower()
        if lname not in names:
            raise InvalidParameterError(f"Table {provider.table_id} has no column '{lname}'",
                                        hint="its columns are " + ", ".join(names))
        if lname == definition.primary_key:
            raise InvalidParameterError(
                f"UPDATE cannot modify primary key column '{lname}'",
                hint="DELETE the row and INSERT it with the new key")
        if lname.startswith("_"):
            raise InvalidParameterError(f"System column '{lname}' cannot be modified")
        assigned[lname] = expr
    select = ", ".join(f"({assigned[n]}) AS {_q(n)}" if n in assigned else _q(n) for n in names)
    table = f"{_q(provider.table_id.namespace)}.{_q(provider.table_id.name)}"
    sql = f"SELECT {select} FROM {table} WHERE {stmt.where_sql}"
    rows = services.runner.run(ctx, sql, params, include_deleted=False)
    return provider.update(ctx, rows)


@handles(st.DeleteStatement)
def delete(services: Services, stmt: st.DeleteStatement, ctx: ExecutionContext,
           params: Params) -> Result:
    with _target(services, stmt.table, ctx) as provider:
        count = _delete(services, provider, stmt, ctx, params)
    return Result("dml", message=f"Deleted {count} row(s)", row_count=count)


def _delete(services: Services, provider: BaseTableProvider, stmt: st.DeleteStatement,
            ctx: ExecutionContext, params: list[Any] | None) -> int:
    _keyed(provider, "DELETE")
    names = provider.core.definition.user_column_names()
    table = f"{_q(provider.table_id.namespace)}.{_q(provider.table_id.name)}"
    sql = f"SELECT {', '.join(_q(n) for n in names)} FROM {table} WHERE {stmt.where_sql}"
    rows = services.runner.run(ctx, sql, params, include_deleted=False)
    return provider.delete(ctx, rows)


# --- Engine.insert_arrow
def insert_arrow(services: Services, table: str | TableId, data: pa.Table | pa.RecordBatch,
                 user: str | None, user_column: str | None,
                 context: Callable[[str | None], ExecutionContext]) -> int:
    """Insert Arrow rows in one go (all or nothing per user); ``context(user)`` gives the
    context each user's rows are written with."""
    if not isinstance(data, (pa.Table, pa.RecordBatch)):
        raise InvalidParameterError(
            f"data must be a pyarrow Table or RecordBatch, not {type(data).__name__}",
            hint="convert with pyarrow.Table.from_pandas(df), or use df.kalam.insert(...)")
    if not isinstance(table, (str, TableId)):
        raise InvalidParameterError(
            f"table must be a name such as 'app.messages', not {type(table).__name__}")
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    column_positions(data.column_names)
    ctx = context(user)  # checks the user id, even for a TableId
    table_id = services.named_table(table, ctx)
    with writing(services.cache, table_id) as provider:  # the version current under it
        if user_column is None:
            return provider.insert(context(user), data)
        return _insert_by_user(provider, data, user_column, context)


def _insert_by_user(provider: BaseTableProvider, data: pa.Table, user_column: str,
                    context: Callable[[str | None], ExecutionContext]) -> int:
    if user_column not in data.column_names:
        raise InvalidParameterError(f"The data has no column '{user_column}'")
    if provider.table_type is TableType.SHARED:
        raise InvalidParameterError("user_column only applies to USER and STREAM tables")
    users = data[user_column]
    if users.null_count:
        raise InvalidParameterError(f"Column '{user_column}' has NULL user ids",
                                    hint="every row needs the id of its user")
    try:
        users = users.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise InvalidParameterError(
            f"Column '{user_column}' holds {users.type}, not user ids",
            hint="user ids are text (or whole numbers)") from None
    keep_col = provider.core.definition.column(user_column) is not None
    payload = data if keep_col else data.drop_columns([user_column])
    groups = []
    for uid in pc.unique(users).to_pylist():
        ctx = context(str(uid))
        provider.check_write(ctx)
        groups.append((ctx, payload.filter(pc.equal(users, uid))))
    # Validate every group before writing any, so bad input writes nothing.
    for ctx, rows in groups:
        provider._complete(ctx, rows, fill_defaults=True)
    return sum(provider.insert(ctx, rows) for ctx, rows in groups)
