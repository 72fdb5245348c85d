"""Nearest-neighbour search for ``ORDER BY COSINE_DISTANCE(col, <vector>) LIMIT k`` on a column
with a vector index (``ALTER TABLE t CREATE INDEX col USING COSINE``).

The index is exact: no approximate-search library is installed, so it is the column's float32
matrix (zero-copy over the Arrow values buffer when it can be) with its row norms, and a query
is one matrix-vector product plus ``numpy.argpartition``. It is built for one Arrow table, the
rows one request may read (one user's partition of a USER table), and kept while that table is
alive: a partition hands out a new table after any INSERT/UPDATE/DELETE/flush, so the index is
rebuilt lazily on the next query, as the partition's key index is. It never sees other rows.

How it answers: for a statement of exactly this shape (one table, no WHERE/GROUP/JOIN/DISTINCT/
window/subquery, first ORDER BY key ascending on ``COSINE_DISTANCE(indexed col, literal or $n)``
or its alias, LIMIT k [OFFSET m] as numbers), the request's view of that table is narrowed to
the k+m nearest rows (every row within a small float tolerance of the (k+m)-th distance, ties
included); DataFusion then runs the statement unchanged on those rows, computing the distances
with the same function as without the index, so the result is the brute-force result. Any other
statement, or any doubt (NULL or zero query vector, fewer rows than k+m), leaves the table whole.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from kalam_engine.model.context import ExecutionContext, TableId
from kalam_engine.model.errors import KalamError
from kalam_engine.query.session import TableResolver
from kalam_engine.query.vectors import parse_vector
from kalam_engine.sql.literals import param_index, plain_name, table_name
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement

SLACK = 1e-4  # distance tolerance: the index (float32) and the function (float64 sums) differ
_REFUSED = ("joins", "where", "group", "having", "distinct", "qualify", "windows", "laterals",
            "into", "with", "prewhere", "connect", "match", "pivots", "sample", "kind")


@dataclass(frozen=True, slots=True)
class TopK:
    """What a statement asks for: the k nearest rows of ``table`` by ``column``."""

    namespace: str | None
    table: str
    column: str
    literal: str | None  # the query vector as written, or
    param: int | None  # the 0-based index of the $n holding it
    k: int  # LIMIT + OFFSET


def _cosine_call(node: exp.Expression) -> tuple[str, str | None, int | None] | None:
    if not isinstance(node, exp.CosineDistance):
        return None
    for col, vec in ((node.this, node.expression), (node.expression, node.this)):
        if not isinstance(col, exp.Column) or param_index(col) is not None or col.table:
            continue
        name = plain_name(col.this)
        if name is None:
            continue
        if isinstance(vec, exp.Literal) and vec.is_string:
            return name, vec.this, None
        index = param_index(vec)
        if index is not None:
            return name, None, index
    return None


def _number(node: exp.Expression | None) -> int | None:
    if node is None:
        return 0
    value = node.args.get("expression")
    if isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit():
        return int(value.this)
    return None


def top_k_request(sql: str | ParsedStatement) -> TopK | None:
    """The nearest-neighbour request ``sql`` is, or None."""
    return _top_k(as_parsed(sql))


@per_statement
def _top_k(stmt: ParsedStatement) -> TopK | None:
    if "cosine_distance" not in stmt.text.lower():
        return None
    tree = stmt.tree
    if not isinstance(tree, exp.Select):
        return None
    if any(tree.args.get(key) for key in _REFUSED):
        return None
    if sum(1 for _ in tree.find_all(exp.Select)) != 1 or any(
            True for _ in tree.find_all(exp.Window, exp.AggFunc, exp.Subquery)):
        return None
    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    ref = table_name(table) if isinstance(table, exp.Table) and \
        not table.args.get("joins") else None
    if ref is None:
        return None
    namespace, name = ref
    order = tree.args.get("order")
    if order is None or not order.expressions or order.expressions[0].args.get("desc"):
        return None
    if any(tok.text.upper() == "NULLS" for tok in stmt.tokens):
        return None  # NULLS FIRST would put the rows without a distance first
    key = order.expressions[0].this
    if isinstance(key, exp.Column) and not key.table:  # an alias of the select list
        alias = plain_name(key.this)
        key = next((e.this for e in tree.expressions
                    if isinstance(e, exp.Alias) and plain_name(e.args.get("alias")) == alias),
                   key)
    call = _cosine_call(key)
    limit, offset = tree.args.get("limit"), tree.args.get("offset")
    if call is None or limit is None:
        return None
    k, skip = _number(limit), _number(offset)
    if k is None or skip is None:
        return None
    return TopK(namespace, name, call[0], call[1], call[2], k + skip)


def query_vector(request: TopK, params: Sequence[Any] | None) -> np.ndarray | None:
    """The query vector as float32, or None when it is not a clean vector (the statement then
    runs without the index and reports the problem)."""
    value: Any = request.literal
    if request.param is not None:
        if not params or request.param >= len(params):
            return None
        value = params[request.param]
    try:
        floats = parse_vector(value) if isinstance(value, str) else [float(v) for v in value]
    except (KalamError, TypeError, ValueError):
        return None
    vector = np.asarray(floats, dtype=np.float32)
    if vector.ndim != 1 or not np.all(np.isfinite(vector)) or not np.any(vector):
        return None
    return vector


class _Index:
    """One column of one Arrow table as a float32 matrix with row norms."""

    __slots__ = ("matrix", "norms", "usable")

    def __init__(self, column: pa.ChunkedArray) -> None:
        array = column.combine_chunks()
        dim = array.type.list_size
        flat = array.values.slice(array.offset * dim, len(array) * dim)
        matrix = flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        self.matrix = matrix.reshape(len(array), dim)
        self.norms = np.linalg.norm(self.matrix, axis=1)
        valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        self.usable = valid & (self.norms > 0) & np.isfinite(self.norms)

    def nearest(self, query: np.ndarray, k: int) -> np.ndarray | None:
        """Row positions of the k nearest rows and every row as near (ties, float slack);
        None when fewer than k rows have a distance."""
        if query.shape[0] != self.matrix.shape[1]:
            return None  # the function reports the dimension mismatch
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = 1.0 - (self.matrix @ query) / (self.norms * np.float32(np.linalg.norm(query)))
        dist[~self.usable] = np.inf
        if k <= 0 or int(np.count_nonzero(self.usable)) <= k:
            return None
        kth = np.partition(dist, k - 1)[k - 1]
        return np.flatnonzero(dist <= kth + SLACK)


class VectorIndexes:
    """Indexes by (Arrow table, column), kept while the table lives (weak reference) and among
    the ``capacity`` most recently used. Shared by all requests; holds no request state."""

    def __init__(self, capacity: int = 64) -> None:
        self._indexes: OrderedDict[tuple[int, str], tuple[weakref.ref[pa.Table], _Index]] = \
            OrderedDict()
        self._capacity = capacity
        self._lock = threading.RLock()  # the weakref callback may run in a GC under the lock
        self.built = 0  # indexes built (a figure for tests and benchmarks)

    def index(self, rows: pa.Table, column: str) -> _Index:
        key = (id(rows), column)
        with self._lock:
            hit = self._indexes.get(key)
            if hit is not None and hit[0]() is rows:
                self._indexes.move_to_end(key)
                return hit[1]
        made = _Index(rows[column])
        with self._lock:
            self.built += 1
            self._indexes[key] = (weakref.ref(rows, functools.partial(self._forget, key)), made)
            while len(self._indexes) > self._capacity:
                self._indexes.popitem(last=False)
        return made

    def _forget(self, key: tuple[int, str], ref: weakref.ref[pa.Table]) -> None:
        with self._lock:
            hit = self._indexes.get(key)
            if hit is not None and hit[0] is ref:
                del self._indexes[key]

    def __len__(self) -> int:
        return len(self._indexes)

    def narrow(self, rows: pa.Table, request: TopK, query: np.ndarray) -> pa.Table | None:
        """The rows the statement can return (see the module docstring), or None for all."""
        if rows.num_rows <= request.k or request.column not in rows.column_names:
            return None
        if not pa.types.is_fixed_size_list(rows.schema.field(request.column).type):
            return None
        picked = self.index(rows, request.column).nearest(query, request.k)
        if picked is None:
            return None
        return rows.take(pa.array(picked, pa.int64()))


def nearest_rows(indexes: VectorIndexes, resolver: TableResolver, ctx: ExecutionContext,
                 sql: str | ParsedStatement, params: Sequence[Any] | None
                 ) -> tuple[tuple[str, str], pa.Table] | None:
    """((namespace, table), the rows to serve for it) when ``sql`` is a nearest-neighbour
    request on an indexed column of a table ``ctx`` may read; None otherwise (also on any
    error, which the statement then reports itself)."""
    request = top_k_request(sql)
    if request is None:
        return None
    key = (request.namespace or ctx.namespace, request.table)
    try:
        provider = resolver.provider(TableId(*key))
        if (request.column, "cosine") not in provider.core.definition.options.vector_indexes:
            return None
        query = query_vector(request, params)
        if query is None:
            return None
        narrowed = indexes.narrow(provider.read(ctx), request, query)
    except KalamError:
        return None
    return None if narrowed is None else (key, narrowed)
