"""Serve a request's tables to DataFusion as in-memory views, read before planning starts.

DataFusion scans a ``pyarrow.dataset`` through Python callbacks, which costs about a
millisecond per table even for a thousand rows; an Arrow MemTable costs a tenth of that. A
MemTable cannot be built while DataFusion is planning (it needs DataFusion's runtime, which is
busy), so the tables a statement names are found first (in its sqlglot tree, parsed once),
each table's rows are read for this request by ``session.request_rows`` (the WHERE's key/_seq
bounds pushed into ``provider.read``), and the rows are wrapped as views. The catalog adapter
hands DataFusion these views; any table the prefetch missed is still served lazily through the
same ``request_rows``, and every failure is left to that lazy path, which reports it.
"""

from __future__ import annotations

import functools
import itertools
import threading
import weakref
from collections import OrderedDict

import pyarrow as pa
from datafusion import SessionContext
from datafusion.catalog import Table
from sqlglot import exp

from kalam_engine.sql.literals import table_name
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement

CATALOG_NAME = "kalam"

TableRef = tuple[str | None, str]  # (namespace or None for the request's own, table name)


def table_references(sql: str | ParsedStatement) -> tuple[TableRef, ...]:
    """The Kalam tables ``sql`` names (CTE names and table functions left out); empty when
    sqlglot cannot read the statement."""
    return _references(as_parsed(sql))


@per_statement
def _references(stmt: ParsedStatement) -> tuple[TableRef, ...]:
    refs: dict[TableRef, None] = {}
    for tree in stmt.trees:
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            ref = table_name(table, CATALOG_NAME)
            if ref is None or (ref[0] is None and ref[1] in ctes):
                continue
            refs[ref] = None
    return tuple(refs)


class ArrowViews:
    """Wraps Arrow tables as DataFusion views (MemTables), one helper session per thread.

    A partition hands out the same Arrow table until its rows change, so the view made for it
    is kept while that table is alive (a weak reference drops it with the table) and while it
    is among the ``capacity`` most recently used. The view shares the table's buffers."""

    def __init__(self, capacity: int = 256) -> None:
        self._local = threading.local()
        self._names = itertools.count()
        self._views: OrderedDict[int, tuple[weakref.ref[pa.Table], Table]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.RLock()  # the weakref callback may run in a GC under the lock

    def view(self, rows: pa.Table) -> Table:
        key = id(rows)
        with self._lock:
            hit = self._views.get(key)
            if hit is not None and hit[0]() is rows:
                self._views.move_to_end(key)
                return hit[1]
        made = self._make(rows)
        with self._lock:
            self._views[key] = (weakref.ref(rows, functools.partial(self._forget, key)), made)
            if len(self._views) > self._capacity:
                self._views.popitem(last=False)
        return made

    def _forget(self, key: int, ref: weakref.ref[pa.Table]) -> None:
        with self._lock:
            hit = self._views.get(key)
            if hit is not None and hit[0] is ref:
                del self._views[key]

    def __len__(self) -> int:
        return len(self._views)

    def _make(self, rows: pa.Table) -> Table:
        helper = getattr(self._local, "session", None)
        if helper is None:
            helper = self._local.session = SessionContext()
        name = f"v{next(self._names)}"
        frame = helper.from_arrow(rows, name)
        helper.deregister_table(name)  # the view keeps the MemTable; the helper keeps nothing
        return Table(frame)
