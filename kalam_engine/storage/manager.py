"""The engine's storage: one TableStore per table, the hot log, the manifest and segment files,
flush and compaction, recovery on open, stream eviction, and the _seq generator.

With ``read_only=True`` (an engine reading a directory another process writes) there is no
recovery, no flush and no eviction in the log: ``reload`` rebuilds the partitions from the
snapshot the caller holds, and segment reads are checked against their manifest row.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pyarrow as pa

from kalam_engine.model.context import TableId, TableType
from kalam_engine.model.definitions import SEQ_COLUMN, TableDefinition
from kalam_engine.model.errors import CorruptDataError, MissingFileError
from kalam_engine.model.ids import SnowflakeGenerator
from kalam_engine.storage.deletion_gate import DeletionGate
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
from kalam_engine.storage.segment_check import SegmentChanged, check_segment
from kalam_engine.storage.segment_files import Placer, SegmentFiles
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.table_store import TableStore, WriteListener

log = logging.getLogger(__name__)


class StorageManager:
    def __init__(self, db: SqliteDatabase, data_dir: Path | None = None, *,
                 read_only: bool = False, placer: Placer | None = None) -> None:
        self.db = db
        self.read_only = read_only
        self.log = HotLog(db)
        self.manifest = Manifest(db)
        self.pending = PendingFiles(db)
        self.seq = SnowflakeGenerator()
        self.files = SegmentFiles(data_dir, placer) if data_dir is not None else None
        # None in a :memory: database (there is no directory to flush to) and when read-only.
        # A backup holds it while it copies segments: replaced files are deleted afterwards.
        self.deletions = DeletionGate()
        self.flusher = Flusher(db, self.manifest, self.files, self.deletions) \
            if self.files and not read_only else None
        self.segment_changes = 0  # segments found missing or changed on disk (read-only)
        # read-only: (segments, largest log id, log entries) of the last load
        self._loaded: tuple[list[Segment], int, int] | None = None
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
        if self.files is not None and self.deletions.run_or_defer(
                lambda: self._delete_files(paths)):
            self.files.delete_table(table_id)  # also what no manifest row named (tmp files)

    def _delete_files(self, paths: list[str]) -> None:
        """Delete these files only: a table created again under the same name may already
        have new segments beside them."""
        assert self.files is not None
        for path in paths:
            self.files.delete(path)
        PendingFiles.clear_now(self.db, paths)

    # --- open and close
    def replay(self, definitions: dict[str, TableDefinition]) -> None:
        """On open: recover, make segments known, load the hot log, evict expired stream rows."""
        assert not self.read_only
        forget_dropped_tables(self.db, self.manifest, self.log.table_keys(), set(definitions))
        if self.files is not None:
            removed = settle_files(self.db, self.files, self.manifest, self.pending)
            if removed:
                log.warning("recovery removed %d unfinished segment file(s)", removed)
        self._load(definitions)

    def reload(self, definitions: dict[str, TableDefinition]) -> list[TableId]:
        """Read-only: bring the partitions to the snapshot the caller's read transaction holds.
        A table whose definition changed or that is gone loses its store; those tables are
        returned (their providers must be retired).

        When no definition and no segment changed and no log entry was removed since the last
        load (the writer only appended), only the new log entries are applied; otherwise every
        partition is rebuilt."""
        assert self.read_only
        segments = self.manifest.segments()
        top, count = self.log.extent()
        last = self._loaded
        gone = []
        with self._lock:
            for table_id, store in list(self._stores.items()):
                definition = definitions.get(table_id.key)
                if definition is None or definition.to_json() != store.definition.to_json():
                    del self._stores[table_id]
                    gone.append(table_id)
            appended = (last is not None and not gone and last[0] == segments
                        and self.log.extent(last[1])[1] == last[2])
            if not appended:
                for store in self._stores.values():
                    store.reset()
        if appended:
            assert last is not None
            self._replay_log(definitions, after_id=last[1])
            self.evict_expired()
        else:
            self._load(definitions, segments)
        self._loaded = (segments, top, count)
        return gone

    def _load(self, definitions: dict[str, TableDefinition],
              segments: list[Segment] | None = None) -> None:
        self.seq.observe(max(self.log.max_seq(), self.manifest.max_seq()))
        by_scope: dict[tuple[str, str], list[Segment]] = {}
        for segment in self.manifest.segments() if segments is None else segments:
            by_scope.setdefault((segment.table_key, segment.scope), []).append(segment)
        for (key, scope), scope_segments in by_scope.items():
            definition = definitions.get(key)
            if definition is not None:  # (read-only: a DROP cut short, left to the writer)
                self.store_for(definition).partition(scope).attach(scope_segments)
        self._replay_log(definitions)
        self.evict_expired()

    def _replay_log(self, definitions: dict[str, TableDefinition], after_id: int = 0) -> None:
        for _log_id, key, scope, rows in self.log.entries(after_id=after_id):
            definition = definitions.get(key)
            if definition is None:
                continue
            self.store_for(definition).replay(scope, rows)

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
                # memory mirrors the log: nothing evicted there, nothing to delete; a read-only
                # engine leaves the log to the writer
                if gone and not self.read_only:
                    self.log.remove_older_than(store.table_id.key, floor)
                removed += gone
        return removed

    # --- figures
    def _read_segment(self, segment: Segment, fields: pa.Schema | None = None) -> pa.Table:
        assert self.files is not None
        try:
            rows = self.files.read(segment, fields)
            if self.read_only:
                check_segment(segment, rows)
        except (MissingFileError, CorruptDataError):
            if self.read_only:  # the writer may have replaced it under this snapshot
                self.segment_changes += 1
            raise
        except SegmentChanged as exc:
            self.segment_changes += 1
            raise MissingFileError(
                f"Segment file '{segment.path}' of table '{segment.table_key}' was replaced "
                f"while being read ({exc})",
                hint="the writing process compacted the table: run the statement again") \
                from None
        return rows

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
