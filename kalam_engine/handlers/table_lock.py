"""Per-table serialization of write statements and DDL.

A table's ``TableStore`` outlives its providers (one per schema version) and owns the table's
re-entrant write lock. Every statement that changes a table holds that lock from the moment it
looks at the table's definition or rows until its write is logged: INSERT/UPDATE/DELETE (their
DataFusion evaluation included), ``insert_arrow``, ALTER and DROP TABLE, flush and compaction.
Statements on one table therefore run one after another, in the order of the ``_seq`` their rows
get, and a statement always works with the schema version that is current while it runs.

Reads take no write lock: a statement that reads other tables sees a snapshot of them, and only
its target table's lock is held, so two statements never wait on each other in a cycle.
DataFusion calls back into the catalog on the thread that runs the statement, so a statement's
reads of its own target table re-enter the lock it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from kalam_engine.context import TableId, TableType
from kalam_engine.errors import TableNotFoundError

if TYPE_CHECKING:
    from kalam_engine.engine import Engine
    from kalam_engine.providers.core import BaseTableProvider


def _current(engine: Engine, table_id: TableId) -> BaseTableProvider | None:
    try:
        return engine.cache.get_provider(table_id)
    except TableNotFoundError:
        return None


@contextmanager
def held(engine: Engine, table_id: TableId) -> Iterator[BaseTableProvider | None]:
    """Hold ``table_id``'s write lock; yield the provider current under it (None: no such
    table). A provider that a DDL statement replaced while this one waited is never yielded:
    the current one is looked up again under the lock (and its table's lock taken instead if
    the table was dropped and created again meanwhile)."""
    while True:
        provider = _current(engine, table_id)
        if provider is None or provider.table_type is TableType.SYSTEM:
            yield provider
            return
        store = provider.store
        with store.write_lock:
            current = _current(engine, table_id)
            if current is None or current.store is store:
                yield current
                return


@contextmanager
def writing(engine: Engine, table_id: TableId) -> Iterator[BaseTableProvider]:
    """``held`` for a statement that writes rows: the table must exist."""
    with held(engine, table_id) as provider:
        if provider is None:
            raise TableNotFoundError(f"Table {table_id} does not exist",
                                     hint="it was dropped, or never created; SHOW TABLES "
                                          "lists the tables")
        yield provider
