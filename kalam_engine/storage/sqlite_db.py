"""The SQLite file that holds the catalog and the hot write log (WAL mode).

One connection, serialised by a lock; ``transaction()`` groups catalog and log changes so that
they commit together or not at all.

``read_only=True`` opens the file with SQLite's ``mode=ro`` and ``query_only``: no schema is
created, and ``transaction()`` refuses before SQLite is asked (ReadOnlyError).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from kalam_engine.model.errors import ReadOnlyError, StorageError
from kalam_engine.storage.failures import storage_error

log = logging.getLogger(__name__)
DURABILITY_LEVELS = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY, created_at REAL NOT NULL, options TEXT);
CREATE TABLE IF NOT EXISTS schemas (
    table_key TEXT NOT NULL, namespace TEXT NOT NULL, table_name TEXT NOT NULL,
    schema_version INTEGER NOT NULL, is_latest INTEGER NOT NULL, dropped INTEGER NOT NULL DEFAULT 0,
    definition TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (table_key, schema_version));
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, password_hash TEXT, role TEXT NOT NULL, email TEXT,
    auth_type TEXT NOT NULL DEFAULT 'password', auth_data TEXT,
    failed_login_attempts INTEGER NOT NULL DEFAULT 0, locked_until REAL, last_login_at REAL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, last_seen REAL, deleted_at REAL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, job_type TEXT NOT NULL, status TEXT NOT NULL, parameters TEXT,
    message TEXT, exception_trace TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    started_at REAL, finished_at REAL);
CREATE TABLE IF NOT EXISTS audit_log (
    audit_id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp REAL NOT NULL, actor_user_id TEXT,
    action TEXT NOT NULL, target TEXT, details TEXT, subject_user_id TEXT);
CREATE TABLE IF NOT EXISTS hot_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, table_key TEXT NOT NULL, scope TEXT NOT NULL,
    schema_version INTEGER NOT NULL, max_seq INTEGER NOT NULL, batch BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS hot_log_table ON hot_log (table_key, scope);
"""


class SqliteDatabase:
    """Owner of the one sqlite3 connection of an engine."""

    def __init__(self, path: Path | None, durability: str = "full", *,
                 read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.lock = threading.RLock()
        self._depth = 0
        if read_only:
            assert path is not None
            self.conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                        check_same_thread=False, isolation_level=None)
            try:
                self.conn.execute("PRAGMA query_only=1")
                _check_tables(self.conn, path)
            except BaseException:
                self.conn.close()
                raise
            return
        target = ":memory:" if path is None else str(path)
        self.conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        try:
            if path is not None:
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={DURABILITY_LEVELS[durability]}")
            self.conn.executescript(SCHEMA)
        except BaseException:
            self.conn.close()
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction; nested calls join the outer one. If SQLite refuses it (disk full,
        read-only file, I/O error), it is rolled back and a StorageError says so."""
        if self.read_only:
            raise ReadOnlyError(
                "This engine was opened with read_only=True and cannot write",
                hint="write through the engine that holds the directory, or open it without "
                     "read_only=True once that engine is closed")
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_error(exc, self.path) from exc
            self._depth = 1
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                self._depth = 0
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise storage_error(exc, self.path) from exc
                raise
            self._depth = 0

    def _rollback(self) -> None:
        # A failed COMMIT may have ended the transaction already (SQLite rolls back by itself
        # on some errors); a ROLLBACK then would fail and hide the first error.
        if not self.conn.in_transaction:
            return
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("ROLLBACK failed")

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            try:
                return self.conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(exc, self.path) from exc

    def close(self) -> None:
        with self.lock:
            self.conn.close()


_REQUIRED_TABLES = ("namespaces", "schemas", "users", "jobs", "audit_log", "hot_log", "segments")


def _check_tables(conn: sqlite3.Connection, path: Path) -> None:
    """A read-only engine cannot create the catalog's tables: they must all be there."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [t for t in _REQUIRED_TABLES if t not in names]
    if missing:
        raise StorageError(
            f"'{path}' is not a complete Kalam catalog (no table {', '.join(missing)})",
            hint="open the directory once without read_only=True so that the engine creates "
                 "or upgrades its catalog")
