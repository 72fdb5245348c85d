"""The engine's storage: one TableStore per table, the hot log, the manifest and segment files,
flush and compaction, recovery on open, stream eviction, and the _seq generator."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pyarrow as pa

from kalam_engine.catalog.definitions import SEQ_COLUMN, TableDefinition
from kalam_engine.context import TableId, TableType
from kalam_engine.ids import SnowflakeGenerator
from kalam_engine.storage.eviction import (
    DEFAULT_EVICTION_INTERVAL_S,
    StreamEvictor,
    ttl_seq_floor,
)
from kalam_engine.storage.flush import Flusher, StorageJobOutcome
from kalam_engine.storage.hot_log import HotLog
from kalam_engine.storage.manifest import Manifest, Segment
from kalam_engine.storage.pending import DELETE, PendingFiles
from kalam_engine.storage.recovery import forget_dropped_tables, settle_files
from kalam_engine.storage.segment_files import SegmentFiles
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.table_store import TableStore, WriteListener

log = logging.getLogger(__name__)


class StorageManager:
    def __init__(self, db: SqliteDatabase, data_dir: Path | None = None) -> None:
        self.db = db
        self.log = HotLog(db)
        self.manifest = Manifest(db)
        self.pending = PendingFiles(db)
        self.seq = SnowflakeGenerator()
        self.files = SegmentFiles(data_dir) if data_dir is not None else None
        # None in a :memory: database: there is no directory to flush to.
        self.flusher = Flusher(db, self.manifest, self.files) if self.files else None
        self._stores: dict[TableId, TableStore] = {}
        self._lock = threading.Lock()
        self._listeners: list[WriteListener] = []
        self._evictor: StreamEvictor | None = None

    def store_for(self, definition: TableDefinition) -> TableStore:
        """The TableStore of a table, created on first use (data outlives providers)."""
        store = self._stores.get(definition.table_id)
        if store is None:
            with self._lock:
                store = self._stores.get(definition.table_id)
                if store is None:
                    key = definition.primary_key or SEQ_COLUMN
                    reader = self._read_segment if self.files is not None else None
                    store = TableStore(definition, key, self.log, reader, self._after_write)
                    for listener in self._listeners:
                        store.add_listener(listener)
                    self._stores[definition.table_id] = store
        store.bind(definition)
        return store

    def existing_store(self, table_id: TableId) -> TableStore | None:
        return self._stores.get(table_id)

    def add_listener(self, listener: WriteListener) -> None:
        self._listeners.append(listener)
        for store in self._stores.values():
            store.add_listener(listener)

    def drop_table(self, table_id: TableId) -> None:
        """Forget a table's rows: hot log, manifest and segment files."""
        with self._lock:
            store = self._stores.pop(table_id, None)
        if store is not None:
            with store.write_lock:  # a write or flush that waited for it now finds it dropped
                store.dropped = True
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM hot_log WHERE table_key = ?", (table_id.key,))
            paths = Manifest.remove_table(conn, table_id.key)
            if self.files is not None:
                PendingFiles.mark(conn, paths, DELETE)
        if self.files is not None:
            self.files.delete_table(table_id)
            PendingFiles.clear_now(self.db, paths)

    # --- open and close
    def replay(self, definitions: dict[str, TableDefinition]) -> None:
        """On open: recover, make segments known, load the hot log, evict expired stream rows."""
        forget_dropped_tables(self.db, self.manifest, self.log.table_keys(), set(definitions))
        if self.files is not None:
            removed = settle_files(self.db, self.files, self.manifest, self.pending)
            if removed:
                log.warning("recovery removed %d unfinished segment file(s)", removed)
        self.seq.observe(max(self.log.max_seq(), self.manifest.max_seq()))
        by_scope: dict[tuple[str, str], list[Segment]] = {}
        for segment in self.manifest.segments():
            by_scope.setdefault((segment.table_key, segment.scope), []).append(segment)
        for (key, scope), segments in by_scope.items():
            self.store_for(definitions[key]).partition(scope).attach(segments)
        for _log_id, key, scope, rows in self.log.entries():
            definition = definitions.get(key)
            if definition is None:
                continue
            self.store_for(definition).replay(scope, rows)
        self.evict_expired()

    def start_eviction(self, interval: float = DEFAULT_EVICTION_INTERVAL_S) -> None:
        """Evict expired STREAM rows every ``interval`` seconds in a daemon thread."""
        self.stop_eviction()
        self._evictor = StreamEvictor(self.evict_expired, interval)
        self._evictor.start()

    def stop_eviction(self) -> None:
        if self._evictor is not None:
            self._evictor.stop()
            self._evictor = None

    # --- flush, compaction, eviction
    def flush(self, store: TableStore, trigger: str = "manual") -> StorageJobOutcome | None:
        """Flush every partition of a table; None for a :memory: database."""
        return None if self.flusher is None else self.flusher.flush(store, trigger=trigger)

    def compact(self, store: TableStore) -> StorageJobOutcome | None:
        return None if self.flusher is None else self.flusher.compact(store)

    def _after_write(self, store: TableStore, scope: str) -> None:
        """FLUSH_POLICY rows:N: flush a partition once it holds N hot row versions."""
        limit = store.definition.options.flush_rows
        if not limit or self.flusher is None or store.table_type is TableType.STREAM:
            return
        part = store.existing_partition(scope)
        if part is None or part.row_count < limit:
            return
        try:
            self.flusher.flush(store, [scope], trigger="policy")
        except Exception:  # the write itself is durable; the failed job is in system.jobs
            log.exception("automatic flush of %s failed", store.table_id)

    def evict_expired(self, now: float | None = None) -> int:
        """Remove STREAM rows older than their table's TTL from memory and the hot log."""
        removed = 0
        for store in list(self._stores.values()):
            ttl = store.definition.options.ttl_seconds
            if store.table_type is not TableType.STREAM or not ttl:
                continue
            floor = ttl_seq_floor(ttl, now)
            with store.write_lock:
                gone = 0
                for scope in store.scopes():
                    part = store.existing_partition(scope)
                    gone += part.evict_before(floor) if part is not None else 0
                if gone:  # memory mirrors the log: nothing evicted there, nothing to delete
                    self.log.remove_older_than(store.table_id.key, floor)
                removed += gone
        return removed

    # --- figures
    def _read_segment(self, segment: Segment, fields: pa.Schema | None = None) -> pa.Table:
        assert self.files is not None
        return self.files.read(segment, fields)

    def data_sizes(self) -> dict[str, int]:
        rows = hot = 0
        for store in list(self._stores.values()):
            r, b = store.hot_stats()
            rows += r
            hot += b
        cold_rows, cold_bytes, _segments = self.manifest.totals()
        return {"hot_rows": rows, "hot_bytes": hot, "cold_rows": cold_rows,
                "cold_bytes": cold_bytes}

    def scope_of(self, table_type: TableType, user_id: str) -> str:
        return "" if table_type is TableType.SHARED else user_id
