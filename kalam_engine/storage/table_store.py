"""All data of one table, shared by every user: partitions keyed by scope.

The scope is the user id for USER and STREAM tables and ``""`` for SHARED tables. Every write
goes through :meth:`TableStore.write`: log (durable), apply to memory, hand the change to the
live queries (``live``, only while someone subscribes; still under the write lock, so in commit
order), then notify listeners, then let the storage manager check the flush policy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.model.context import TableId, TableType
from kalam_engine.model.definitions import SEQ_COLUMN, TableDefinition
from kalam_engine.model.errors import TableNotFoundError
from kalam_engine.storage.hot_log import HotLog
from kalam_engine.storage.partition import Partition, SegmentReader

SHARED_SCOPE = ""
WriteListener = Callable[[TableId, str, str, pa.Table], None]
AfterWrite = Callable[["TableStore", str], None]


class LiveHook(Protocol):
    """What live queries need from the write path (kalam_engine.live.registry.TableLive)."""

    def wants(self, scope: str) -> bool: ...

    def before(self, store: TableStore, scope: str, kind: str,
               rows: pa.Table) -> pa.Table | None: ...

    def publish(self, scope: str, kind: str, rows: pa.Table, old: pa.Table | None,
                schema_version: int) -> None: ...


class TableStore:
    __slots__ = ("_after_write", "_listeners", "_log", "_partitions", "_reader", "definition",
                 "dropped", "key_column", "live", "schema", "table_id", "table_type",
                 "write_lock")

    def __init__(self, definition: TableDefinition, key_column: str, log: HotLog,
                 reader: SegmentReader | None = None, after_write: AfterWrite | None = None,
                 ) -> None:
        self.table_id: TableId = definition.table_id
        self.table_type: TableType = definition.table_type
        self.key_column = key_column
        self.definition = definition
        self.schema = definition.arrow_schema()
        self._log = log
        self._reader = reader
        self._after_write = after_write
        self._partitions: dict[str, Partition] = {}
        self._listeners: list[WriteListener] = []
        # Serializes everything that changes the table: write statements hold it from reading
        # the rows they change until their write is logged (see catalog.table_lock), ALTER and
        # DROP TABLE, flush and compaction hold it too. Re-entrant: a statement's own steps
        # (primary-key check, write, policy flush) take it again.
        self.write_lock = threading.RLock()
        self.dropped = False  # set under write_lock by DROP TABLE; nothing writes after it
        # Live queries on this table: set (under write_lock) by the first subscription.
        self.live: LiveHook | None = None

    def bind(self, definition: TableDefinition) -> None:
        """Follow the table's newest schema version (flush writes segments in it).

        Takes no lock: a newer version is only ever saved by an ALTER holding ``write_lock``
        (which is the thread that binds it, or a cache loader that then only repeats it); taking
        the lock here could wait on that ALTER while holding the schema cache's lock, which the
        ALTER needs next."""
        if definition.schema_version > self.definition.schema_version:
            self.schema = definition.arrow_schema()
            self.definition = definition

    def check_not_dropped(self) -> None:
        """Raise TableNotFoundError once DROP TABLE took this table (call under write_lock)."""
        if self.dropped:
            raise TableNotFoundError(
                f"Table {self.table_id} was dropped",
                hint="a DROP TABLE ran first; CREATE TABLE it again to write to it")

    def partition(self, scope: str) -> Partition:
        part = self._partitions.get(scope)
        if part is None:
            with self.write_lock:
                part = self._partitions.get(scope)
                if part is None:
                    part = self._partitions[scope] = Partition(self.key_column, self._reader)
        return part

    def reset(self) -> None:
        """Forget every partition (a read-only engine reloads them from a newer snapshot);
        reads already running keep the partitions they hold."""
        with self.write_lock:
            self._partitions = {}

    def existing_partition(self, scope: str) -> Partition | None:
        return self._partitions.get(scope)

    def scopes(self) -> list[str]:
        return list(self._partitions)

    def read(self, scope: str, schema: pa.Schema, *, include_deleted: bool = False) -> pa.Table:
        part = self._partitions.get(scope)
        if part is None:
            return schema.empty_table()
        return part.read(schema, include_deleted=include_deleted)

    def read_filtered(self, scope: str, schema: pa.Schema, condition: pc.Expression, *,
                      include_deleted: bool = False, exact: bool = True) -> pa.Table:
        """``read`` filtered by ``condition``; opens only the segments that may match it
        (``exact=False``: see ``Partition.read_filtered``)."""
        part = self._partitions.get(scope)
        if part is None:
            return schema.empty_table()
        return part.read_filtered(schema, condition, include_deleted=include_deleted,
                                  exact=exact)

    def lookup(self, scope: str, schema: pa.Schema, key: pa.Scalar) -> pa.Table:
        """The live row of ``scope`` whose primary key is ``key`` (zero or one row)."""
        part = self._partitions.get(scope)
        if part is None:
            return schema.empty_table()
        return part.lookup(schema, key)

    def write(self, scope: str, schema_version: int, rows: pa.Table, kind: str) -> None:
        """Log ``rows`` (complete versions with _seq and _deleted), apply, notify."""
        if rows.num_rows == 0:
            return
        with self.write_lock:
            self.check_not_dropped()
            live = self.live
            if live is not None and not live.wants(scope):
                live = None
            old = live.before(self, scope, kind, rows) if live is not None else None
            max_seq = pc.max(rows[SEQ_COLUMN]).as_py()
            self._log.append(self.table_id.key, scope, schema_version, max_seq, rows)
            self.partition(scope).apply(rows, versions=kind != "insert", max_seq=max_seq)
            if live is not None:
                live.publish(scope, kind, rows, old, schema_version)
        for listener in self._listeners:
            listener(self.table_id, scope, kind, rows)
        if self._after_write is not None:
            self._after_write(self, scope)

    def write_batches(self, batches: list[tuple[str, pa.Table]], schema_version: int, kind: str,
                      commit_with: Callable[[], None]) -> None:
        """Log the rows of several scopes and run ``commit_with`` (a catalog change) in ONE
        SQLite transaction; only after it commits apply the rows, notify and check the flush
        policy. A crash leaves all of it or none of it."""
        done = []
        with self.write_lock:
            with self._log.transaction():
                for scope, rows in batches:
                    if rows.num_rows:
                        max_seq = pc.max(rows[SEQ_COLUMN]).as_py()
                        self._log.append(self.table_id.key, scope, schema_version, max_seq, rows)
                        done.append((scope, rows, max_seq))
                commit_with()
            for scope, rows, max_seq in done:
                self.partition(scope).apply(rows, versions=kind != "insert", max_seq=max_seq)
            live = self.live
            for scope, rows, _max_seq in done:
                if live is not None and live.wants(scope):
                    live.publish(scope, kind, rows, None, schema_version)
        for scope, rows, _max_seq in done:
            for listener in self._listeners:
                listener(self.table_id, scope, kind, rows)
            if self._after_write is not None:
                self._after_write(self, scope)

    def live_keys(self, scope: str, schema: pa.Schema) -> set:
        """Keys of ``scope`` whose newest version, hot or cold, is a live row."""
        part = self._partitions.get(scope)
        return set() if part is None else part.live_keys(schema)

    def taken_keys(self, scope: str, schema: pa.Schema, keys: set) -> set:
        """Those of ``keys`` that a live row of ``scope`` holds (segments pruned by key bounds)."""
        part = self._partitions.get(scope)
        return set() if part is None or not keys else part.taken_keys(schema, keys)

    def replay(self, scope: str, rows: pa.Table) -> None:
        self.partition(scope).apply(rows, versions=True)

    def add_listener(self, listener: WriteListener) -> None:
        self._listeners.append(listener)

    def hot_stats(self) -> tuple[int, int]:
        parts = list(self._partitions.values())
        return sum(p.row_count for p in parts), sum(p.nbytes for p in parts)

    def cold_stats(self) -> tuple[int, int, int]:
        """(stored row versions, bytes, segments) in Parquet."""
        segments = [s for p in list(self._partitions.values()) for s in p.segments]
        return (sum(s.row_count for s in segments), sum(s.size_bytes for s in segments),
                len(segments))

    def stored_rows(self) -> int:
        """Row versions held hot or cold (0 means the table is certainly empty)."""
        return self.hot_stats()[0] + self.cold_stats()[0]
