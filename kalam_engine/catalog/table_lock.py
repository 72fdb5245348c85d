"""Per-table serialization of write statements and DDL.

A table's ``TableStore`` outlives its providers (one per schema version) and owns the table's
re-entrant write lock. Every statement that changes a table holds that lock from the moment it
looks at the table's definition or rows until its write is logged: INSERT/UPDATE/DELETE (their
DataFusion evaluation included), ``insert_arrow``, ALTER and DROP TABLE, flush and compaction.
Statements on one table therefore run one after another, in the order of the ``_seq`` their rows
get, and a statement always works with the schema version that is current while it runs.

Deadlock freedom: reads take no write lock (a partition guards its state with a short leaf
lock), so the rows a statement reads, of its target or of other tables (snapshots), never wait
for another statement. DataFusion calls back into the catalog (``RequestSchema.table`` ->
``provider.scan``) on the thread that runs the statement, so even a read that did take the lock
would re-enter it. A statement holds only its target table's lock; the only lock it takes while
holding it is the schema cache's (to look up or register the provider), and nothing takes a
table's write lock while holding the cache's lock (``TableStore.bind`` takes none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from kalam_engine.model.context import TableId, TableType
from kalam_engine.model.errors import TableNotFoundError

if TYPE_CHECKING:
    from kalam_engine.catalog.cache import SchemaCache
    from kalam_engine.providers.core import BaseTableProvider


def _current(cache: SchemaCache, table_id: TableId) -> BaseTableProvider | None:
    try:
        return cache.get_provider(table_id)
    except TableNotFoundError:
        return None


@contextmanager
def held(cache: SchemaCache, table_id: TableId) -> Iterator[BaseTableProvider | None]:
    """Hold ``table_id``'s write lock; yield the provider current under it (None: no such
    table). A provider that a DDL statement replaced while this one waited is never yielded:
    the current one is looked up again under the lock (and its table's lock taken instead if
    the table was dropped and created again meanwhile)."""
    while True:
        provider = _current(cache, table_id)
        if provider is None or provider.table_type is TableType.SYSTEM:
            yield provider
            return
        store = provider.store
        with store.write_lock:
            current = _current(cache, table_id)
            if current is None or current.store is store:
                yield current
                return


@contextmanager
def writing(cache: SchemaCache, table_id: TableId) -> Iterator[BaseTableProvider]:
    """``held`` for a statement that writes rows: the table must exist."""
    with held(cache, table_id) as provider:
        if provider is None:
            raise TableNotFoundError(f"Table {table_id} does not exist",
                                     hint="it was dropped, or never created; SHOW TABLES "
                                          "lists the tables")
        yield provider
