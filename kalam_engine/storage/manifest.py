"""The manifest: one SQLite row per Parquet segment (table, scope, path and its statistics).

A segment exists for readers exactly when its row exists: flush and compaction change the rows
in the same transaction that removes what the segment replaces. Paths are relative to the data
directory so that a database directory can be moved. Each row records the file's size and a
checksum bound to the segment's identity (see ``checksums``); rows written before checksums
existed have ``checksum`` NULL and are checked by size only.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from kalam_engine.storage.sqlite_db import SqliteDatabase

MANIFEST_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    table_key TEXT NOT NULL, scope TEXT NOT NULL, batch_no INTEGER NOT NULL, path TEXT NOT NULL,
    min_seq INTEGER NOT NULL, max_seq INTEGER NOT NULL, min_pk, max_pk,
    row_count INTEGER NOT NULL, size_bytes INTEGER NOT NULL, schema_version INTEGER NOT NULL,
    created_at REAL NOT NULL, checksum TEXT, PRIMARY KEY (table_key, scope, batch_no));
CREATE UNIQUE INDEX IF NOT EXISTS segments_path ON segments (path);
"""
_COLUMNS = ("table_key", "scope", "batch_no", "path", "min_seq", "max_seq", "min_pk", "max_pk",
            "row_count", "size_bytes", "schema_version", "created_at", "checksum")
# Primary-key bounds are kept only for types SQLite compares like Python does.
_PK_TYPES = (int, str, bytes)


@dataclass(frozen=True, slots=True)
class Segment:
    table_key: str
    scope: str
    batch_no: int
    path: str  # relative to the data directory
    min_seq: int
    max_seq: int
    min_pk: Any
    max_pk: Any
    row_count: int
    size_bytes: int
    schema_version: int
    created_at: float
    checksum: str | None = None  # None: written before checksums were recorded

    def may_hold(self, key: Any) -> bool:
        """False when the manifest bounds prove ``key`` is not in this segment."""
        if self.min_pk is None or self.max_pk is None or type(key) is not type(self.min_pk):
            return True
        return bool(self.min_pk <= key <= self.max_pk)


def pk_bound(value: Any) -> Any:
    return value if isinstance(value, _PK_TYPES) and not isinstance(value, bool) else None


def new_segment(table_key: str, scope: str, batch_no: int, path: str, seq_range: tuple[int, int],
                pk_range: tuple[Any, Any], row_count: int, size_bytes: int,
                schema_version: int, checksum: str | None = None) -> Segment:
    return Segment(table_key, scope, batch_no, path, seq_range[0], seq_range[1],
                   pk_bound(pk_range[0]), pk_bound(pk_range[1]), row_count, size_bytes,
                   schema_version, time.time(), checksum)


class Manifest:
    """Reads and writes segment rows. Writers pass the connection of their transaction."""

    __slots__ = ("_db",)

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        if db.read_only:  # the writer created the table; a reader changes nothing
            return
        with db.transaction() as conn:
            for statement in MANIFEST_SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(segments)")}
            if "checksum" not in columns:  # a directory written before checksums existed
                conn.execute("ALTER TABLE segments ADD COLUMN checksum TEXT")

    def segments(self, table_key: str | None = None) -> list[Segment]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM segments"
        args: tuple = ()
        if table_key is not None:
            sql += " WHERE table_key = ?"
            args = (table_key,)
        return [Segment(*row) for row in self._db.query(sql + " ORDER BY batch_no", args)]

    def next_batch_no(self, table_key: str, scope: str) -> int:
        rows = self._db.query("SELECT COALESCE(MAX(batch_no), -1) FROM segments "
                              "WHERE table_key = ? AND scope = ?", (table_key, scope))
        return int(rows[0][0]) + 1

    def max_seq(self) -> int:
        return int(self._db.query("SELECT COALESCE(MAX(max_seq), 0) FROM segments")[0][0])

    def totals(self, table_key: str | None = None) -> tuple[int, int, int]:
        """(rows, bytes, segments) of one table, or of all tables."""
        sql = "SELECT COALESCE(SUM(row_count), 0), COALESCE(SUM(size_bytes), 0), COUNT(*) " \
              "FROM segments"
        args: tuple = ()
        if table_key is not None:
            sql += " WHERE table_key = ?"
            args = (table_key,)
        rows, size, count = self._db.query(sql, args)[0]
        return int(rows), int(size), int(count)

    @staticmethod
    def add(conn: sqlite3.Connection, segment: Segment) -> None:
        conn.execute(f"INSERT INTO segments ({', '.join(_COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(_COLUMNS))})",
                     tuple(getattr(segment, c) for c in _COLUMNS))

    @staticmethod
    def remove(conn: sqlite3.Connection, segments: list[Segment]) -> None:
        conn.executemany("DELETE FROM segments WHERE path = ?", [(s.path,) for s in segments])

    @staticmethod
    def remove_table(conn: sqlite3.Connection, table_key: str) -> list[str]:
        """Remove a table's rows; return the paths they named."""
        paths = [r[0] for r in conn.execute("SELECT path FROM segments WHERE table_key = ?",
                                            (table_key,))]
        conn.execute("DELETE FROM segments WHERE table_key = ?", (table_key,))
        return paths
