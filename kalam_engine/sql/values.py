"""The literal ``VALUES`` fast path of INSERT.

``INSERT INTO t VALUES (1, 'a', $1)`` is the most common write in a notebook, and planning the
VALUES list in DataFusion costs more than the rest of the insert together. When every value is
a plain literal (integer, decimal number, string, NULL, TRUE/FALSE) or a ``$n`` parameter whose
Python value is an int, float, str, bool, bytes or None, the columns are built here with exactly
the Arrow types DataFusion gives them (Int64, Float64, Utf8, Boolean, Binary, Null); the
provider then coerces them to the table's types as it does DataFusion's output. Anything else
(expressions, function calls, mixed types in one column, ...) returns None and DataFusion
evaluates the list as before.
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa
from sqlglot import expressions as exp

from kalam_engine.sql.literals import (
    INT64_MAX,
    INT64_MIN,
    NotALiteral,
    Param,
    literal_value,
    syntax_trees,
)

_MAX_TEXT = 16_384  # longer lists are parsed once by DataFusion rather than twice
_TYPES: dict[type, pa.DataType] = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(),
                                   str: pa.string(), bytes: pa.binary()}


@functools.lru_cache(maxsize=512)
def literal_rows(source_sql: str) -> tuple[tuple[Any, ...], ...] | None:
    """The rows of a ``VALUES`` list of literals and ``$n``, or None for any other source."""
    if len(source_sql) > _MAX_TEXT or source_sql.lstrip()[:6].upper() != "VALUES":
        return None
    trees = syntax_trees(source_sql)
    if len(trees) != 1 or not isinstance(trees[0], exp.Values):
        return None
    tree = trees[0]
    if any(v for k, v in tree.args.items() if k != "expressions"):
        return None
    rows = []
    for row in tree.expressions:
        if not isinstance(row, exp.Tuple):
            return None
        try:
            rows.append(tuple(literal_value(node) for node in row.expressions))
        except NotALiteral:
            return None
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    return tuple(rows)


def values_table(rows: tuple[tuple[Any, ...], ...], names: list[str],
                 params: list[Any] | None) -> pa.Table | None:
    """``rows`` with ``params`` bound, as columns named ``names``; None when a value or a
    column's mix of types is one DataFusion should judge."""
    if len(rows[0]) != len(names):
        return None
    given = params or []
    columns: list[pa.Array] = []
    for i in range(len(names)):
        values = []
        kind: type | None = None
        for row in rows:
            value = row[i]
            if isinstance(value, Param):
                if value.index >= len(given):
                    return None
                value = given[value.index]
            if value is not None:
                if type(value) not in _TYPES or (kind is not None and type(value) is not kind):
                    return None
                if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                    return None
                kind = type(value)
            values.append(value)
        columns.append(pa.array(values, _TYPES[kind] if kind is not None else pa.null()))
    return pa.Table.from_arrays(columns, names=names)
