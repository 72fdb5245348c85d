"""All data of one table, shared by every user: hot partitions keyed by scope.

The scope is the user id for USER and STREAM tables and ``""`` for SHARED tables. Every write
goes through :meth:`TableStore.write`: log (durable), apply to memory, then notify listeners
(live queries hook in there).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.catalog.definitions import SEQ_COLUMN
from kalam_engine.context import TableId, TableType
from kalam_engine.storage.hot_log import HotLog
from kalam_engine.storage.partition import Partition

SHARED_SCOPE = ""
WriteListener = Callable[[TableId, str, str, pa.Table], None]


class TableStore:
    __slots__ = ("_listeners", "_log", "_partitions", "key_column", "table_id", "table_type",
                 "write_lock")

    def __init__(self, table_id: TableId, table_type: TableType, key_column: str,
                 log: HotLog) -> None:
        self.table_id = table_id
        self.table_type = table_type
        self.key_column = key_column
        self._log = log
        self._partitions: dict[str, Partition] = {}
        self._listeners: list[WriteListener] = []
        # Held across check-then-write so that primary-key checks and the write are one step.
        self.write_lock = threading.RLock()

    def partition(self, scope: str) -> Partition:
        part = self._partitions.get(scope)
        if part is None:
            with self.write_lock:
                part = self._partitions.setdefault(scope, Partition(self.key_column))
        return part

    def existing_partition(self, scope: str) -> Partition | None:
        return self._partitions.get(scope)

    def scopes(self) -> list[str]:
        return list(self._partitions)

    def read(self, scope: str, schema: pa.Schema, *, include_deleted: bool = False) -> pa.Table:
        part = self._partitions.get(scope)
        if part is None:
            return schema.empty_table()
        return part.read(schema, include_deleted=include_deleted)

    def write(self, scope: str, schema_version: int, rows: pa.Table, kind: str) -> None:
        """Log ``rows`` (complete versions with _seq and _deleted), apply, notify."""
        if rows.num_rows == 0:
            return
        with self.write_lock:
            max_seq = pc.max(rows[SEQ_COLUMN]).as_py()
            self._log.append(self.table_id.key, scope, schema_version, max_seq, rows)
            self.partition(scope).apply(rows, versions=kind != "insert")
        for listener in self._listeners:
            listener(self.table_id, scope, kind, rows)

    def replay(self, scope: str, rows: pa.Table) -> None:
        self.partition(scope).apply(rows, versions=True)

    def add_listener(self, listener: WriteListener) -> None:
        self._listeners.append(listener)

    def hot_stats(self) -> tuple[int, int]:
        parts = list(self._partitions.values())
        return sum(p.row_count for p in parts), sum(p.nbytes for p in parts)
