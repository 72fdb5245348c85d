"""Bring storage back to a consistent state when a database opens, deleting only what the
catalog proves unfinished.

- Log and manifest rows of tables the catalog no longer has (a DROP cut short) are removed; the
  files those manifest rows named are recorded as pending deletes in the same transaction.
- Files recorded in ``pending_files`` (a flush or compaction cut short before its commit, or
  replaced / dropped segments whose deletion was cut short) are deleted, unless the manifest
  names them.
- ``*.parquet.tmp`` files (the temporary name a segment is written under) are deleted.
- A ``*.parquet`` file that neither the manifest nor ``pending_files`` explains is NOT deleted:
  the database refuses to open (CorruptDataError) until ``python -m kalam_engine.recover`` moves
  it to quarantine. Other files under storage/ are left alone.
- The same holds in the directories of custom storages (CREATE STORAGE) that exist when the
  database opens: the engine has locked them first (see ``storages``); a custom storage
  directory that is missing is not scanned (its segments are then reported missing).
"""

from __future__ import annotations

import logging

from kalam_engine.model.errors import CorruptDataError
from kalam_engine.storage.manifest import Manifest
from kalam_engine.storage.pending import DELETE, PendingFiles
from kalam_engine.storage.segment_files import (
    RECOVER_COMMAND,
    SEGMENT_SUFFIX,
    STORAGE_DIR,
    TMP_SUFFIX,
    SegmentFiles,
)
from kalam_engine.storage.sqlite_db import SqliteDatabase

log = logging.getLogger(__name__)


def forget_dropped_tables(db: SqliteDatabase, manifest: Manifest, log_keys: set[str],
                          known: set[str]) -> None:
    stale = (log_keys | {s.table_key for s in manifest.segments()}) - known
    if not stale:
        return
    with db.transaction() as conn:
        for key in stale:
            conn.execute("DELETE FROM hot_log WHERE table_key = ?", (key,))
            PendingFiles.mark(conn, Manifest.remove_table(conn, key), DELETE)


def settle_files(db: SqliteDatabase, files: SegmentFiles, manifest: Manifest,
                 pending: PendingFiles) -> int:
    """Delete the files the catalog proves unfinished; refuse to go on when a segment file is
    unexplained. Return how many files were deleted."""
    removed = remove_unfinished(db, files, manifest, pending)
    named = {s.path for s in manifest.segments()}
    unexplained = unexplained_segments(files, named)
    if unexplained:
        raise unexplained_files_error(files, unexplained)
    present = set(files.all_files())
    for path in sorted(named - present):
        log.error("segment %s is named by the manifest but missing on disk", path)
    files.remove_empty_dirs()
    return removed


def remove_unfinished(db: SqliteDatabase, files: SegmentFiles, manifest: Manifest,
                      pending: PendingFiles) -> int:
    """Delete the files ``pending_files`` records (unless the manifest names them) and
    temporary segment files; return how many were deleted."""
    named = {s.path for s in manifest.segments()}
    removed = 0
    recorded = pending.all()
    for path, _action in recorded:
        if path in named:  # never delete a file the manifest names
            continue
        for candidate in (path, path + TMP_SUFFIX):
            if (files.root / candidate).exists():
                files.delete(candidate)
                removed += 1
    if recorded:
        PendingFiles.clear_now(db, [p for p, _a in recorded])
    for path in list(files.all_files()):
        if path.endswith(SEGMENT_SUFFIX + TMP_SUFFIX) and path not in named:
            files.delete(path)
            removed += 1
    return removed


def unexplained_segments(files: SegmentFiles, named: set[str]) -> list[str]:
    """Segment files under storage/ that no manifest row names, sorted."""
    return sorted(p for p in files.all_files() if p.endswith(SEGMENT_SUFFIX) and p not in named)


def unexplained_files_error(files: SegmentFiles, paths: list[str]) -> CorruptDataError:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    where = f"{files.root / STORAGE_DIR} holds" \
        if all(p.startswith(STORAGE_DIR + "/") for p in paths) \
        else f"The storage directories of {files.root} hold"
    return CorruptDataError(
        f"{where} {len(paths)} segment file(s) that the catalog "
        f"(kalam.sqlite) does not name: {shown}. The catalog may be an older copy or the files "
        "may have been copied in. The database was not opened and the files were left in place",
        hint=f"restore the matching kalam.sqlite from a backup, or run `{RECOVER_COMMAND} "
             f"{files.root}` to move the unexplained files to {files.root / 'quarantine'}")
