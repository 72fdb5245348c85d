"""Flush (hot rows → a Parquet segment) and compaction (a partition's segments → one).

Both run under the table's write lock (and refuse a table that DROP TABLE took meanwhile). The
new file's path is first recorded as a pending write (committed); the segment file is then
written and renamed; then one SQLite transaction adds its manifest row, clears the pending write
and removes what it replaces (the scope's hot-log rows, or the compacted segments, whose paths
become pending deletes). A crash before that commit leaves a file the catalog records as
unfinished, which the next open deletes; a crash after it leaves a complete new state and, at
most, replaced files recorded for deletion.
Tombstones are flushed like rows, so a delete keeps shadowing older segments.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.storage.deletion_gate import DeletionGate
from kalam_engine.storage.hot_log import HotLog
from kalam_engine.storage.jobs import COMPACT_PREFIX, FLUSH_PREFIX, Job, record_job
from kalam_engine.storage.manifest import Manifest, Segment, new_segment
from kalam_engine.storage.partition import hide_tombstones
from kalam_engine.storage.pending import DELETE, WRITE, PendingFiles
from kalam_engine.storage.segment_files import TMP_SUFFIX, SegmentFiles
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.table_store import TableStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StorageJobOutcome:
    """What one flush or compaction of a table did."""

    job_id: str
    status: str  # "completed" | "skipped"
    rows: int  # rows written to new segments
    segments: int  # segments written
    replaced: int = 0  # segments merged away (compaction)


def _bounds(column: pa.ChunkedArray) -> tuple[Any, Any]:
    try:
        mm = pc.min_max(column)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return None, None
    return mm["min"].as_py(), mm["max"].as_py()


class Flusher:
    __slots__ = ("_db", "_files", "_gate", "_manifest")

    def __init__(self, db: SqliteDatabase, manifest: Manifest, files: SegmentFiles,
                 gate: DeletionGate | None = None) -> None:
        self._db = db
        self._manifest = manifest
        self._files = files
        self._gate = gate or DeletionGate()  # defers deleting replaced files during a backup

    # --- flush
    def flush(self, store: TableStore, scopes: list[str] | None = None,
              trigger: str = "manual") -> StorageJobOutcome:
        """Move the hot rows of ``scopes`` (default: all) of a table to new segments."""
        job = Job(FLUSH_PREFIX, {"table": str(store.table_id), "trigger": trigger})
        rows = segments = 0
        with store.write_lock:
            store.check_not_dropped()  # its rows, log and files are gone: nothing to flush
            try:
                for scope in store.scopes() if scopes is None else scopes:
                    written = self._flush_scope(store, scope)
                    rows += written
                    segments += 1 if written else 0
            except Exception as exc:
                self._failed(job, exc)
                raise
        status = "completed" if segments else "skipped"
        record_job(self._db, job, status, f"{rows} row(s) in {segments} segment(s)")
        return StorageJobOutcome(job.job_id, status, rows, segments)

    def _flush_scope(self, store: TableStore, scope: str) -> int:
        part = store.existing_partition(scope)
        rows = part.hot_versions(store.schema) if part is not None else None
        if part is None or rows is None:
            return 0
        segment = self._write(store, scope, rows)
        try:
            with self._db.transaction() as conn:
                Manifest.add(conn, segment)
                PendingFiles.clear(conn, [segment.path])
                HotLog.remove_scope(conn, store.table_id.key, scope)
        except BaseException:
            self._abandon(segment)
            raise
        part.flushed(segment, rows)
        return rows.num_rows

    # --- compaction
    def compact(self, store: TableStore) -> StorageJobOutcome:
        """Merge each partition's segments into one, keeping only the newest versions. Hot rows
        are newer than every segment, so once all segments are merged a tombstone shadows
        nothing that remains and is dropped."""
        job = Job(COMPACT_PREFIX, {"table": str(store.table_id)})
        rows = segments = replaced = 0
        with store.write_lock:
            store.check_not_dropped()
            try:
                for scope in store.scopes():
                    done = self._compact_scope(store, scope)
                    if done is not None:
                        rows += done[0]
                        segments += done[1]
                        replaced += done[2]
            except Exception as exc:
                self._failed(job, exc)
                raise
        # As in KalamDB, a table that holds rows gets a completed job even when there is
        # nothing to merge (only hot rows, or one segment); only an empty table is skipped.
        status = "completed" if replaced or store.stored_rows() else "skipped"
        record_job(self._db, job, status,
                   f"{replaced} segment(s) merged into {segments}, {rows} row(s)")
        return StorageJobOutcome(job.job_id, status, rows, segments, replaced)

    def _compact_scope(self, store: TableStore, scope: str) -> tuple[int, int, int] | None:
        part = store.existing_partition(scope)
        if part is None or not part.segments:
            return None
        old = part.segments
        cold = part.cold_versions(store.schema)
        rows = hide_tombstones(cold)
        if len(old) == 1 and rows.num_rows == cold.num_rows:
            return None  # one segment, no shadowed versions, no tombstones: already compact
        segment = self._write(store, scope, rows) if rows.num_rows else None
        try:
            with self._db.transaction() as conn:
                Manifest.remove(conn, list(old))
                PendingFiles.mark(conn, [s.path for s in old], DELETE)
                if segment is not None:
                    Manifest.add(conn, segment)
                    PendingFiles.clear(conn, [segment.path])
        except BaseException:
            if segment is not None:
                self._abandon(segment)
            raise
        part.compacted(old, segment, rows)
        self._gate.run_or_defer(lambda: self._delete_replaced([s.path for s in old]))
        return rows.num_rows, 1 if segment else 0, len(old)

    # --- helpers
    def _delete_replaced(self, paths: list[str]) -> None:
        for path in paths:
            self._files.delete(path)
        PendingFiles.clear_now(self._db, paths)

    def _write(self, store: TableStore, scope: str, rows: pa.Table) -> Segment:
        key = store.table_id.key
        batch_no = self._manifest.next_batch_no(key, scope)
        storage_id = store.definition.options.storage_id
        path = self._files.relative_path(store.table_id, scope, batch_no, storage_id)
        while (self._files.root / path).exists():  # a file a failed delete left behind
            batch_no += 1
            path = self._files.relative_path(store.table_id, scope, batch_no, storage_id)
        PendingFiles.mark_now(self._db, [path], WRITE)
        try:
            size, checksum = self._files.write(key, scope, path, rows)
        except BaseException:
            self._files.delete(path + TMP_SUFFIX)
            self._files.delete(path)
            PendingFiles.clear_now(self._db, [path])
            raise
        return new_segment(key, scope, batch_no, path, _bounds(rows[SEQ_COLUMN]),
                           _bounds(rows[store.key_column]), rows.num_rows, size,
                           store.definition.schema_version, checksum)

    def _abandon(self, segment: Segment) -> None:
        """A segment whose commit failed: delete its file, then its pending record."""
        self._files.delete(segment.path)
        try:
            PendingFiles.clear_now(self._db, [segment.path])
        except Exception:  # pragma: no cover - the record stays; the next open settles it
            log.exception("could not clear the pending record of %s", segment.path)

    def _failed(self, job: Job, exc: Exception) -> None:
        try:
            record_job(self._db, job, "failed", str(exc), traceback.format_exc())
        except Exception:  # pragma: no cover - the database itself is failing
            log.exception("could not record failed job %s", job.job_id)
