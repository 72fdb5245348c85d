"""The primary-key and ``_seq`` bounds a statement's WHERE puts on the one table it reads.

Segments keep min/max statistics of exactly two columns (the primary key and ``_seq``), so those
are the only conditions worth handing to ``provider.read``. sqlglot reads the WHERE clause once
per statement text; each request then turns the bounds into an Arrow expression typed like the
table's columns, with its own ``$n`` values.

The bounds are a necessary condition of the WHERE: every row the WHERE keeps satisfies them.
An AND keeps the conjuncts it understands (dropping one only widens the bound); an OR holds only
when every branch does. Anything in doubt gives no bound: another column, a literal whose type
is not the column's (DataFusion would coerce it), NULL, NOT, a function. Only statements that
read a single table once (one SELECT, no join, no subquery) get bounds, so that every column
named in the WHERE is that table's. DataFusion still applies the whole WHERE to what is read.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import expressions as exp

from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.query.point_lookup import exact_scalar
from kalam_engine.query.prefetch import CATALOG_NAME, TableRef
from kalam_engine.sql.literals import NotALiteral, Param, literal_value, plain_name, table_name
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement

_FLIPPED = {exp.EQ: "==", exp.GT: "<", exp.GTE: "<=", exp.LT: ">", exp.LTE: ">="}
_OPS = {exp.EQ: "==", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}


@dataclass(frozen=True, slots=True)
class Compare:
    """``column <op> value``; op is one of ==, <, <=, >, >=; value a literal or a Param."""

    column: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class OneOf:
    """``column IN (values)``."""

    column: str
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Both:
    parts: tuple[Bound, ...]


@dataclass(frozen=True, slots=True)
class Either:
    parts: tuple[Bound, ...]


Bound = Compare | OneOf | Both | Either


@dataclass(frozen=True, slots=True)
class TableBounds:
    """The bound the WHERE of a statement puts on ``table``."""

    table: TableRef
    bound: Bound


def where_bounds(sql: str | ParsedStatement) -> TableBounds | None:
    """The bounds of one statement (remembered on it), or None when it has none."""
    return _statement_bounds(as_parsed(sql))


@per_statement
def _statement_bounds(stmt: ParsedStatement) -> TableBounds | None:
    tree = stmt.tree
    return None if tree is None else bounds_in(tree)


def bounds_in(tree: exp.Expression) -> TableBounds | None:
    """The bounds of one parsed statement, or None when it has none."""
    if not isinstance(tree, exp.Select):
        return None
    if len(list(tree.find_all(exp.Select))) != 1 or tree.find(exp.Join) is not None:
        return None
    tables = list(tree.find_all(exp.Table))
    where = tree.args.get("where")
    if len(tables) != 1 or where is None:
        return None
    ref = _table_ref(tables[0])
    if ref is None:
        return None
    qualifier = (tables[0].alias_or_name or "").lower()
    bound = _bound(where.this, qualifier)
    return TableBounds(ref, bound) if bound is not None else None


def _table_ref(table: exp.Table) -> TableRef | None:
    return table_name(table, CATALOG_NAME)


def _bound(node: exp.Expression, qualifier: str) -> Bound | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And | exp.Or):
        left, right = _bound(node.this, qualifier), _bound(node.expression, qualifier)
        if isinstance(node, exp.Or):
            return Either((left, right)) if left is not None and right is not None else None
        kept = tuple(b for b in (left, right) if b is not None)
        return (kept[0] if len(kept) == 1 else Both(kept)) if kept else None
    if type(node) in _OPS:
        return _compare(node, qualifier)
    if isinstance(node, exp.Between):
        column = _column(node.this, qualifier)
        low, high = _value(node.args.get("low")), _value(node.args.get("high"))
        if column is None or low is None or high is None or node.args.get("symmetric"):
            return None
        return Both((Compare(column, ">=", low[0]), Compare(column, "<=", high[0])))
    if isinstance(node, exp.In) and not node.args.get("query") \
            and not node.args.get("unnest") and not node.args.get("field"):
        column = _column(node.this, qualifier)
        values = [_value(v) for v in node.expressions]
        if column is None or not values or any(v is None for v in values):
            return None
        return OneOf(column, tuple(v[0] for v in values if v is not None))
    return None


def _compare(node: exp.Expression, qualifier: str) -> Compare | None:
    kind = type(node)
    column, value = _column(node.this, qualifier), _value(node.expression)
    if column is not None and value is not None:
        return Compare(column, _OPS[kind], value[0])
    column, value = _column(node.expression, qualifier), _value(node.this)
    if column is not None and value is not None:
        return Compare(column, _FLIPPED[kind], value[0])
    return None


def _column(node: exp.Expression | None, qualifier: str) -> str | None:
    if not isinstance(node, exp.Column) or node.args.get("db") or node.args.get("catalog"):
        return None
    if node.name.startswith("$"):
        return None  # a $n parameter, which sqlglot reads as a column
    table = node.args.get("table")
    if table is not None and plain_name(table) != qualifier:
        return None
    return plain_name(node.this)


def _value(node: exp.Expression | None) -> tuple[Any] | None:
    """(value,) for an integer, a string or a ``$n``; None for anything else (NULL too)."""
    if node is None:
        return None
    try:
        value = literal_value(node)
    except NotALiteral:
        return None
    if isinstance(value, Param) or (isinstance(value, int | str)
                                    and not isinstance(value, bool)):
        return (value,)
    return None


# --- per request: an Arrow expression over the table's key and _seq ---------------------------
def bound_expression(bound: Bound, schema: pa.Schema, primary_key: str | None,
                     params: list[Any] | None) -> pc.Expression | None:
    """``bound`` as an Arrow filter on ``schema``, keeping only the primary key and ``_seq``
    (the columns segments keep statistics of); None when nothing of it is usable."""
    if isinstance(bound, Both | Either):
        parts = [bound_expression(p, schema, primary_key, params) for p in bound.parts]
        if isinstance(bound, Either) and any(p is None for p in parts):
            return None
        kept = [p for p in parts if p is not None]
        if not kept:
            return None
        return functools.reduce(
            (lambda a, b: a | b) if isinstance(bound, Either) else (lambda a, b: a & b), kept)
    if bound.column not in (primary_key, SEQ_COLUMN) or schema.get_field_index(
            bound.column) < 0:
        return None
    arrow_type = schema.field(bound.column).type
    field = pc.field(bound.column)
    if isinstance(bound, OneOf):
        scalars = [_scalar(v, arrow_type, params) for v in bound.values]
        if any(s is None for s in scalars):
            return None
        return field.isin(pa.array([s.as_py() for s in scalars if s is not None], arrow_type))
    value = _scalar(bound.value, arrow_type, params)
    if value is None:
        return None
    return {"==": field == value, "<": field < value, "<=": field <= value,
            ">": field > value, ">=": field >= value}[bound.op]


def _scalar(value: Any, arrow_type: pa.DataType, params: list[Any] | None) -> pa.Scalar | None:
    """``value`` (a ``$n`` taken from ``params``) as a scalar of the column's type, or None
    when DataFusion would have to coerce it."""
    if isinstance(value, Param):
        if not params or value.index >= len(params):
            return None
        value = params[value.index]
    return exact_scalar(value, arrow_type)
