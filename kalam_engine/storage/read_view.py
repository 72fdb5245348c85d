"""A read-only engine's view of a directory another process writes: every statement runs in one
SQLite read transaction (one consistent snapshot of catalog, users, manifest and hot log), and
what the engine holds in memory is reloaded first whenever the writer committed since.

- Change detection: ``PRAGMA data_version`` of the reader's own connection, read inside the
  statement's read transaction, changes exactly when another connection committed.
- A segment the snapshot names may be deleted (or its path reused) by the writer's compaction,
  or by a writer's recovery, after the snapshot began. The segment reader counts such files
  (``segment_changes``); a statement that met one is run again on a fresh snapshot, and after
  ``ATTEMPTS`` tries fails with MissingFileError instead of serving rows of the wrong version.

Statements run one at a time on a read-only engine (the snapshot is the connection's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from kalam_engine.model.errors import MissingFileError
from kalam_engine.storage.sqlite_db import SqliteDatabase

T = TypeVar("T")
ATTEMPTS = 4


class ReadOnlyView:
    """Snapshots and reloads for a read-only engine.

    ``load`` rebuilds the engine's in-memory state from the database; it is called inside the
    snapshot's read transaction. ``segment_changes`` returns how many segment files were found
    missing or changed so far."""

    __slots__ = ("_db", "_depth", "_load", "_lock", "_seen", "_segment_changes", "reloads")

    def __init__(self, db: SqliteDatabase, load: Callable[[], None],
                 segment_changes: Callable[[], int]) -> None:
        self._db = db
        self._load = load
        self._segment_changes = segment_changes
        self._lock = threading.RLock()
        self._depth = 0
        self._seen: int | None = None
        self.reloads = 0

    def open(self) -> None:
        """The first load, in one snapshot."""
        self.run(lambda _reloaded: None)

    def run(self, call: Callable[[bool], T]) -> T:
        """``call(reloaded)`` inside a snapshot; ``reloaded`` says the state was reloaded for
        it (so that per-request values computed before, such as roles, are taken again)."""
        with self._lock:
            if self._depth:  # a statement running another one: same snapshot
                return call(False)
            for _attempt in range(ATTEMPTS):
                reloaded = self._begin()
                before = self._segment_changes()
                self._depth = 1
                try:
                    return call(reloaded)
                except Exception:
                    if self._segment_changes() == before:
                        raise
                    self._seen = None  # a file changed under the snapshot: reload, try again
                finally:
                    self._depth = 0
                    self._end()
            raise MissingFileError(
                "A segment file the catalog names kept disappearing or changing while it was "
                "read", hint="the writing process is compacting or was recovering; run the "
                "statement again, and if this persists check that no one deletes files under "
                "storage/")

    def _begin(self) -> bool:
        with self._db.lock:
            conn = self._db.conn
            conn.execute("BEGIN")
            try:
                conn.execute("SELECT 1 FROM schemas LIMIT 1").fetchall()  # takes the snapshot
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version == self._seen:
                    return False
                self._load()
                self._seen = version
                self.reloads += 1
                return True
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _end(self) -> None:
        with self._db.lock:
            if self._db.conn.in_transaction:
                self._db.conn.execute("COMMIT")
