"""Bring storage back to a consistent state when a database opens.

- Log and manifest rows of tables the catalog no longer has (a DROP cut short) are removed.
- ``*.tmp`` files (a segment write cut short) are deleted.
- Segment files no manifest row names (a flush or compaction cut short before its commit, or
  replaced segments whose deletion was cut short) are deleted.
"""

from __future__ import annotations

import logging

from kalam_engine.storage.manifest import Manifest
from kalam_engine.storage.segment_files import SegmentFiles
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
            Manifest.remove_table(conn, key)


def remove_unnamed_files(files: SegmentFiles, manifest: Manifest) -> int:
    """Delete every file under storage/ that no manifest row names; return how many."""
    named = {s.path for s in manifest.segments()}
    removed = 0
    for path in list(files.all_files()):
        if path not in named:
            files.delete(path)
            removed += 1
    missing = named - set(files.all_files())
    for path in sorted(missing):
        log.error("segment %s is named by the manifest but missing on disk", path)
    files.remove_empty_dirs()
    return removed
