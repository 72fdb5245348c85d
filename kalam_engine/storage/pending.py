"""Segment files the flush protocol is writing or deleting: the catalog's proof that a file is
unfinished (or replaced) and may be removed when the database opens after a crash.

- ``write``: recorded (and committed) before a flush or compaction writes a new segment file;
  cleared in the transaction that adds the segment's manifest row. A row left behind names a file
  that no manifest row will ever name.
- ``delete``: recorded in the transaction that removes a segment's manifest row (compaction,
  DROP TABLE); cleared once the file is deleted.

A file under ``storage/`` that neither the manifest nor this table explains is never deleted.
"""

from __future__ import annotations

import sqlite3
import time

from kalam_engine.storage.sqlite_db import SqliteDatabase

WRITE = "write"
DELETE = "delete"
PENDING_SCHEMA = ("CREATE TABLE IF NOT EXISTS pending_files (path TEXT PRIMARY KEY, "
                  "action TEXT NOT NULL, created_at REAL NOT NULL)")


class PendingFiles:
    __slots__ = ("_db",)

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        if db.read_only:  # the writer created the table; a reader changes nothing
            return
        with db.transaction() as conn:
            conn.execute(PENDING_SCHEMA)

    def all(self) -> list[tuple[str, str]]:
        """(relative path, action) of every recorded file."""
        return [(p, a) for p, a in self._db.query("SELECT path, action FROM pending_files")]

    @staticmethod
    def mark_now(db: SqliteDatabase, paths: list[str], action: str) -> None:
        """Record ``paths`` in a transaction of their own (committed before the file work)."""
        with db.transaction() as conn:
            PendingFiles.mark(conn, paths, action)

    @staticmethod
    def clear_now(db: SqliteDatabase, paths: list[str]) -> None:
        with db.transaction() as conn:
            PendingFiles.clear(conn, paths)

    @staticmethod
    def mark(conn: sqlite3.Connection, paths: list[str], action: str) -> None:
        now = time.time()
        conn.executemany("INSERT OR REPLACE INTO pending_files (path, action, created_at) "
                         "VALUES (?, ?, ?)", [(p, action, now) for p in paths])

    @staticmethod
    def clear(conn: sqlite3.Connection, paths: list[str]) -> None:
        conn.executemany("DELETE FROM pending_files WHERE path = ?", [(p,) for p in paths])
