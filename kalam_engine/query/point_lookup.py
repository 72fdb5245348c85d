"""The primary-key fast path: ``SELECT <columns | *> FROM t WHERE pk = <value | $n>``.

Planning such a statement in DataFusion costs far more than finding one row, so the engine
recognises the shape (once per statement text) and asks the table's provider for the row
directly: ``provider.lookup``, the primary-key equality case of the ``provider.read``
DataFusion's scans use, so permissions, the request's partition, tombstones and STREAM TTL apply
unchanged. Anything else, or any doubt (mixed-case quoted names, a value whose type differs from
the key's, an unknown column), goes to DataFusion as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import expressions as exp

from kalam_engine.model.context import ExecutionContext, TableId, TableType
from kalam_engine.model.definitions import DELETED_COLUMN
from kalam_engine.model.errors import KalamError
from kalam_engine.sql.literals import (
    NotALiteral,
    Param,
    literal_value,
    param_index,
    plain_name,
    table_name,
)
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement

if TYPE_CHECKING:
    from kalam_engine.providers.core import BaseTableProvider
    from kalam_engine.query.session import TableResolver

_ALLOWED_ARGS = {"expressions", "from", "from_", "where"}


@dataclass(frozen=True, slots=True)
class PointLookup:
    """What a point-lookup statement asks for. ``param`` is a 1-based ``$n`` index."""

    namespace: str | None
    table: str
    columns: tuple[str, ...] | None  # None: SELECT *
    key_column: str
    literal: Any
    param: int | None


def _column(node: exp.Expression) -> str | None:
    if not isinstance(node, exp.Column) or node.table or param_index(node) is not None:
        return None
    return plain_name(node.this)


def _value(node: exp.Expression) -> tuple[Any, int | None] | None:
    """(literal, None) or (None, n) for ``$n``; None for anything but an integer, a string
    or a parameter."""
    try:
        value = literal_value(node)
    except NotALiteral:
        return None
    if isinstance(value, Param):
        return None, value.index + 1
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return value, None


def point_lookup_shape(sql: str | ParsedStatement) -> PointLookup | None:
    """The lookup ``sql`` asks for, or None when it is not exactly the fast path's shape."""
    return _shape(as_parsed(sql))


@per_statement
def _shape(stmt: ParsedStatement) -> PointLookup | None:
    lowered = stmt.text.lower()
    if DELETED_COLUMN in lowered:
        return None  # naming _deleted shows tombstones: DataFusion's path handles that
    if "where" not in lowered:
        return None  # cheap refusal before parsing
    tree = stmt.tree
    if not isinstance(tree, exp.Select):
        return None
    if {k for k, v in tree.args.items() if v not in (None, [], False)} - _ALLOWED_ARGS:
        return None
    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or {k for k, v in table.args.items() if v} - {"this",
                                                                                      "db"}:
        return None
    ref = table_name(table)
    if ref is None:
        return None
    namespace, name = ref
    items = tree.expressions
    columns: tuple[str, ...] | None
    if len(items) == 1 and isinstance(items[0], exp.Star) and not any(items[0].args.values()):
        columns = None
    else:
        names = [_column(item) for item in items]
        if not names or None in names or len(set(names)) != len(names):
            return None
        columns = tuple(n for n in names if n is not None)
    where = tree.args.get("where")
    if where is None:
        return None
    condition = where.this
    if not isinstance(condition, exp.EQ):
        return None
    for left, right in ((condition.this, condition.expression),
                        (condition.expression, condition.this)):
        key, value = _column(left), _value(right)
        if key is not None and value is not None:
            return PointLookup(namespace, name, columns, key, value[0], value[1])
    return None


def exact_scalar(value: Any, key_type: pa.DataType) -> pa.Scalar | None:
    """``value`` as a scalar of an integer or text column's type, or None when DataFusion
    would have to coerce it (another type, a bool, out of range)."""
    if isinstance(value, bool):
        return None
    if pa.types.is_integer(key_type) and isinstance(value, int):
        try:
            return pa.scalar(value, key_type)
        except (pa.ArrowInvalid, OverflowError):
            return None
    if (pa.types.is_string(key_type) or pa.types.is_large_string(key_type)) \
            and isinstance(value, str):
        return pa.scalar(value, key_type)
    return None


def run_point_lookup(resolver: TableResolver, shape: PointLookup, ctx: ExecutionContext,
                     params: list[Any] | None) -> pa.Table | None:
    """The statement's rows, or None to let DataFusion run it (which also reports errors)."""
    namespace = shape.namespace or ctx.namespace
    try:
        provider: BaseTableProvider = resolver.provider(TableId(namespace, shape.table))
    except KalamError:
        return None
    core = provider.core
    if core.table_type is TableType.SYSTEM or core.primary_key != shape.key_column:
        return None
    if shape.columns is not None and not set(shape.columns) <= set(core.schema.names):
        return None
    if shape.param is not None:
        if not params or shape.param > len(params):
            return None
        value = params[shape.param - 1]
    else:
        value = shape.literal
    key = exact_scalar(value, core.schema.field(shape.key_column).type)
    if key is None:
        return None
    projection = list(shape.columns) if shape.columns is not None else None
    return provider.lookup(ctx, key, projection)
