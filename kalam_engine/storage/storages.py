"""The storages of a database (``system.storages``): the built-in ``local`` storage
(``<data_dir>/storage``) and the filesystem storages CREATE STORAGE adds, kept in the catalog.

A custom storage's base directory belongs to exactly one storage of one data directory:

- When the storage is created the directory must be new or empty (a lone ``kalam.lock`` left by
  a dropped storage is allowed); a marker file ``.kalam-storage`` recording the storage id and a
  random token kept in the catalog row is written into it.
- A writing engine holds an exclusive OS lock on ``<base>/kalam.lock`` (the same lock the data
  directory has) for as long as it is open, taken when it opens, before recovery looks at the
  directory. A copy of the data directory opened at the same time, or a second data directory
  pointed at the same base, is refused (DataDirectoryLockedError) instead of writing segment
  files with the same names into one directory.
- A base whose marker names another storage or token is refused (CorruptDataError).

Read-only engines take no lock and write nothing, as for the data directory.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kalam_engine.model.context import TableId
from kalam_engine.model.errors import CorruptDataError, InvalidParameterError, StorageError
from kalam_engine.storage.dir_lock import LOCK_FILE, DirectoryLock
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.storage_paths import (
    DEFAULT_SHARED_TEMPLATE,
    DEFAULT_USER_TEMPLATE,
    render,
    resolve_base,
)

log = logging.getLogger(__name__)

LOCAL = "local"
MARKER_FILE = ".kalam-storage"
STORAGES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS storages (storage_id TEXT PRIMARY KEY, storage_name TEXT NOT NULL,"
    " description TEXT, storage_type TEXT NOT NULL, base_directory TEXT NOT NULL, "
    "credentials TEXT, config_json TEXT, shared_tables_template TEXT NOT NULL, "
    "user_tables_template TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
    "owner_token TEXT NOT NULL)")
_COLUMNS = ("storage_id", "storage_name", "description", "storage_type", "base_directory",
            "credentials", "config_json", "shared_tables_template", "user_tables_template",
            "created_at", "updated_at", "owner_token")


@dataclass(frozen=True, slots=True)
class StorageRow:
    storage_id: str
    storage_name: str
    description: str | None
    storage_type: str
    base_directory: str  # as given: absolute, or relative to the data directory
    credentials: str | None
    config_json: str | None
    shared_tables_template: str
    user_tables_template: str
    created_at: float
    updated_at: float
    owner_token: str = ""


class StorageRegistry:
    """The storages table, the base-directory locks a writer holds, and segment placement."""

    def __init__(self, db: SqliteDatabase, data_dir: Path | None, *,
                 read_only: bool = False) -> None:
        self._db = db
        self.data_dir = data_dir
        self.read_only = read_only
        self._locks: dict[str, DirectoryLock] = {}
        self._guard = threading.RLock()  # CREATE/DROP STORAGE against CREATE TABLE

    @property
    def guard(self) -> threading.RLock:
        """Held while a storage is created or dropped, and while a table naming one is saved."""
        return self._guard

    # --- rows
    def local_row(self) -> StorageRow:
        base = str(self.data_dir / "storage") if self.data_dir is not None else ":memory:"
        return StorageRow(LOCAL, "Local Storage", "Default local filesystem storage",
                          "filesystem", base, None, None, DEFAULT_SHARED_TEMPLATE,
                          DEFAULT_USER_TEMPLATE, 0.0, 0.0)

    def custom(self) -> list[StorageRow]:
        if not self._db.query(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'storages'"):
            return []  # the table is created by the first CREATE STORAGE
        return [StorageRow(*r) for r in self._db.query(
            f"SELECT {', '.join(_COLUMNS)} FROM storages ORDER BY storage_id")]

    def all(self) -> list[StorageRow]:
        return [self.local_row(), *self.custom()]

    def get(self, storage_id: str) -> StorageRow | None:
        if storage_id == LOCAL:
            return self.local_row()
        return next((r for r in self.custom() if r.storage_id == storage_id), None)

    def require(self, storage_id: str) -> StorageRow:
        row = self.get(storage_id)
        if row is None:
            raise InvalidParameterError(f"Storage '{storage_id}' does not exist",
                                        hint="SHOW STORAGES lists them; CREATE STORAGE adds one")
        return row

    def base_of(self, row: StorageRow) -> Path:
        return resolve_base(row.base_directory, self.data_dir)

    # --- create and drop
    def create(self, row: StorageRow) -> None:
        """Claim the base directory, then record the row (the caller holds ``guard``)."""
        base = self.base_of(row)
        token = uuid.uuid4().hex
        row = StorageRow(*[getattr(row, c) for c in _COLUMNS[:-1]], token)
        self._claim(row.storage_id, base, token, new=True)
        try:
            with self._db.transaction() as conn:
                conn.execute(STORAGES_SCHEMA)
                conn.execute(f"INSERT INTO storages ({', '.join(_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_COLUMNS))})",
                             tuple(getattr(row, c) for c in _COLUMNS))
        except BaseException:
            self._unclaim(row.storage_id, base)
            raise

    def drop(self, row: StorageRow) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM storages WHERE storage_id = ?", (row.storage_id,))
        self._unclaim(row.storage_id, self.base_of(row))

    # --- locks
    def open(self) -> None:
        """A writer: lock every custom base that exists (before recovery reads it)."""
        for row in self.custom():
            base = self.base_of(row)
            if base.is_dir():
                self._claim(row.storage_id, base, row.owner_token, new=False)
            else:
                log.warning("the directory %s of storage '%s' is missing", base, row.storage_id)

    def close(self) -> None:
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()

    def _claim(self, storage_id: str, base: Path, token: str, *, new: bool) -> None:
        with self._guard:  # two flushes into one storage must not both take its lock
            self._claim_locked(storage_id, base, token, new=new)

    def _claim_locked(self, storage_id: str, base: Path, token: str, *, new: bool) -> None:
        if storage_id in self._locks:
            return
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot create the storage directory {base}: {exc}",
                               hint="check the path and its permissions") from exc
        lock = DirectoryLock(base)
        lock.acquire()  # DataDirectoryLockedError while another engine holds it
        try:
            self._check_marker(storage_id, base, token, new)
        except BaseException:
            lock.release()
            raise
        self._locks[storage_id] = lock

    def _check_marker(self, storage_id: str, base: Path, token: str, new: bool) -> None:
        marker = base / MARKER_FILE
        others = [p.name for p in base.iterdir() if p.name not in (LOCK_FILE, MARKER_FILE)]
        if marker.exists():
            try:
                found = json.loads(marker.read_text())
            except (OSError, ValueError):
                found = {}
            if new:
                raise InvalidParameterError(
                    f"The directory {base} is already the directory of storage "
                    f"'{found.get('storage_id')}' of another database",
                    hint="choose a new or empty directory of its own")
            if found.get("token") != token or found.get("storage_id") != storage_id:
                raise CorruptDataError(
                    f"The directory {base} belongs to storage '{found.get('storage_id')}' of "
                    f"another database, not to storage '{storage_id}' of this one",
                    hint="give each storage a directory of its own; a copy of a data directory "
                         "must not share its storages' directories with the original")
            return
        if others:
            raise InvalidParameterError(
                f"The storage directory {base} is not empty ({', '.join(sorted(others)[:3])})"
                + ("" if new else " and has no storage marker"),
                hint="choose a new or empty directory; files of other programs or databases "
                     "must not be mixed with segment files")
        data = json.dumps({"storage_id": storage_id, "token": token}).encode()
        with open(marker, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def _unclaim(self, storage_id: str, base: Path) -> None:
        (base / MARKER_FILE).unlink(missing_ok=True)
        lock = self._locks.pop(storage_id, None)
        if lock is not None:
            lock.release()

    # --- placement (SegmentFiles asks)
    def segment_dir(self, storage_id: str, table_id: TableId, scope: str) -> str:
        """The directory of a table's (user's) segments in a custom storage: relative to the
        data directory when inside it, else absolute. Locks the base first."""
        row = self.require(storage_id)
        base = self.base_of(row)
        if not self.read_only:
            self._claim(storage_id, base, row.owner_token, new=False)
        template = row.user_tables_template if scope else row.shared_tables_template
        directory = real_under(base, render(template, table_id.namespace, table_id.name, scope))
        if self.data_dir is not None:
            data = Path(os.path.realpath(self.data_dir))
            if data in directory.parents:
                return directory.relative_to(data).as_posix()
        return directory.as_posix()

    def roots(self) -> list[Path]:
        """The base directories of custom storages that exist (for recovery's scan)."""
        out = []
        for row in self.custom():
            try:
                base = self.base_of(row)
            except InvalidParameterError:
                continue
            if base.is_dir():
                out.append(base)
        return out

    def tables_using(self, storage_id: str, definitions: list) -> list[str]:
        return [str(d.table_id) for d in definitions if d.options.storage_id == storage_id]


def real_under(base: Path, relative: str) -> Path:
    """``base / relative`` with links resolved; it must stay inside ``base``."""
    target = Path(os.path.realpath(base / relative))
    if base not in target.parents:
        raise StorageError(f"The segment directory {relative!r} resolves to {target}, outside "
                           f"the storage directory {base}",
                           hint="remove the symbolic link that leads out of the storage "
                                "directory")
    return target


def storage_created_now(storage_id: str, name: str | None, description: str | None,
                        base: str, shared: str, user: str, config: str | None) -> StorageRow:
    now = time.time()
    return StorageRow(storage_id, name or storage_id, description, "filesystem", base, None,
                      config, shared, user, now, now)
