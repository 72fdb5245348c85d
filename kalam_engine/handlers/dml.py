"""INSERT / UPDATE / DELETE: DataFusion evaluates values and predicates over this request's rows;
the table's provider validates and writes the new versions.

Each statement runs under its target table's write lock (``table_lock.writing``), from reading
the definition and evaluating the rows to writing them, against the provider current under that
lock: concurrent writes to a table are serializable, and none writes with a replaced schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kalam_engine.handlers.table_lock import writing
from kalam_engine.model.context import ExecutionContext, TableType
from kalam_engine.model.errors import InvalidParameterError, PermissionDeniedError, UnsupportedError
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.values import literal_rows, values_table

if TYPE_CHECKING:
    from kalam_engine.engine import Engine
    from kalam_engine.providers.core import BaseTableProvider


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check(provider: BaseTableProvider, ctx: ExecutionContext) -> BaseTableProvider:
    if provider.table_type is TableType.SYSTEM:
        raise PermissionDeniedError(f"Cannot write system table '{provider.table_id}'",
                                    hint="system tables change only through SQL commands")
    provider.check_write(ctx)
    return provider


@contextmanager
def _target(engine: Engine, ref: st.TableRef, ctx: ExecutionContext
            ) -> Iterator[BaseTableProvider]:
    """The statement's target table, write lock held, checked for ``ctx`` (permission is
    checked before waiting for the lock and again under it: an ALTER may have changed it)."""
    table_id = engine.table_id_for(ref, ctx)
    _check(engine.cache.get_provider(table_id), ctx)
    with writing(engine, table_id) as provider:
        yield _check(provider, ctx)


def _keyed(provider: BaseTableProvider, verb: str) -> None:
    if provider.core.primary_key is None:
        raise UnsupportedError(
            f"{verb} on STREAM table {provider.table_id} needs a PRIMARY KEY",
            hint="rows of a keyless STREAM table expire after TTL_SECONDS")


def insert(engine: Engine, stmt: st.InsertStatement, ctx: ExecutionContext,
           params: list[Any] | None) -> Result:
    with _target(engine, stmt.table, ctx) as provider:
        count = _insert(engine, provider, stmt, ctx, params)
    return Result("dml", message=f"Inserted {count} row(s)", row_count=count)


def _insert(engine: Engine, provider: BaseTableProvider, stmt: st.InsertStatement,
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
    if engine.fast_paths:
        rows = literal_rows(stmt.source_sql)
        if rows is not None:
            values = values_table(rows, targets, params)
    if values is None:
        values = engine.runner.run(ctx, stmt.source_sql, params, include_deleted=False)
    if values.num_columns != len(targets):
        raise InvalidParameterError(
            f"INSERT has {len(targets)} target column(s) but {values.num_columns} value(s) "
            "per row", hint="give one value per column in the column list" if stmt.columns
            else f"give one value per column of {provider.table_id} ({', '.join(names)}), "
                 "or name the columns you give values for")
    batch = pa.Table.from_arrays(values.columns, names=targets)
    return provider.insert(ctx, batch)


def update(engine: Engine, stmt: st.UpdateStatement, ctx: ExecutionContext,
           params: list[Any] | None) -> Result:
    with _target(engine, stmt.table, ctx) as provider:
        count = _update(engine, provider, stmt, ctx, params)
    return Result("dml", message=f"Updated {count} row(s)", row_count=count)


def _update(engine: Engine, provider: BaseTableProvider, stmt: st.UpdateStatement,
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
    rows = engine.runner.run(ctx, sql, params, include_deleted=False)
    return provider.update(ctx, rows)


def delete(engine: Engine, stmt: st.DeleteStatement, ctx: ExecutionContext,
           params: list[Any] | None) -> Result:
    with _target(engine, stmt.table, ctx) as provider:
        count = _delete(engine, provider, stmt, ctx, params)
    return Result("dml", message=f"Deleted {count} row(s)", row_count=count)


def _delete(engine: Engine, provider: BaseTableProvider, stmt: st.DeleteStatement,
            ctx: ExecutionContext, params: list[Any] | None) -> int:
    _keyed(provider, "DELETE")
    names = provider.core.definition.user_column_names()
    table = f"{_q(provider.table_id.namespace)}.{_q(provider.table_id.name)}"
    sql = f"SELECT {', '.join(_q(n) for n in names)} FROM {table} WHERE {stmt.where_sql}"
    rows = engine.runner.run(ctx, sql, params, include_deleted=False)
    return provider.delete(ctx, rows)
