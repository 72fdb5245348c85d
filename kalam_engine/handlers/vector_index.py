"""Vector indexes in a table's definition: ``ALTER TABLE t CREATE INDEX col USING COSINE`` and
``DROP INDEX col`` change ``TableOptions.vector_indexes`` (a new schema version, as every ALTER);
the index data itself is built lazily on query (see ``query/vector_search.py``)."""

from __future__ import annotations

import dataclasses

from kalam_engine.model.definitions import TableDefinition, TableOptions
from kalam_engine.model.errors import AlreadyExistsError, InvalidParameterError
from kalam_engine.sql.vector_index import CreateVectorIndex, DropVectorIndex


def index_change(old: TableDefinition,
                 action: CreateVectorIndex | DropVectorIndex) -> tuple[TableOptions, str]:
    """The table's new options and a description of the change, or a KalamError."""
    indexes = dict(old.options.vector_indexes)
    column = old.column(action.column)
    if isinstance(action, DropVectorIndex):
        if action.column not in indexes:
            raise InvalidParameterError(
                f"Table {old.table_id} has no vector index on column '{action.column}'",
                hint="indexed columns: " + (", ".join(indexes) or "none"))
        del indexes[action.column]
        what = f"dropped vector index on {action.column}"
    else:
        if column is None:
            raise InvalidParameterError(
                f"Table {old.table_id} has no column '{action.column}'",
                hint="its columns are " + ", ".join(c.name for c in old.columns))
        if not column.kalam_type.startswith("Embedding"):
            raise InvalidParameterError(
                f"Column '{column.name}' is {column.sql_type}; a vector index needs an "
                "EMBEDDING(n) column", hint="index an EMBEDDING(n) column")
        if column.name in indexes:
            raise AlreadyExistsError(
                f"Column '{column.name}' of {old.table_id} already has a vector index",
                hint=f"ALTER TABLE {old.table_id} DROP INDEX {column.name} first")
        indexes[column.name] = action.metric
        what = f"created vector index on {column.name} using {action.metric.upper()}"
    options = dataclasses.replace(old.options, vector_indexes=tuple(sorted(indexes.items())))
    return options, what


def follow_columns(options: TableOptions, dropped: str | None = None,
                   renamed: tuple[str, str] | None = None) -> TableOptions:
    """``options`` after a column is dropped (its index goes) or renamed (its index follows)."""
    if not options.vector_indexes:
        return options
    indexes = []
    for column, metric in options.vector_indexes:
        if column == dropped:
            continue
        if renamed is not None and column == renamed[0]:
            column = renamed[1]
        indexes.append((column, metric))
    return dataclasses.replace(options, vector_indexes=tuple(sorted(indexes)))
