"""BACKUP DATABASE TO '<dir>' and RESTORE DATABASE FROM '<dir>' (semantics 1.8; dba, system).

BACKUP copies one committed state while writes go on: ``kalam.sqlite`` through SQLite's online
backup API (one read transaction) and the segment files that state's manifest names, each
checked against its checksum on the way, while the storage defers deleting replaced segments.
The copy is written to a hidden directory beside the target and renamed when complete, so a
target directory is a whole backup or absent. A backup is a data directory:
``connect('<dir>')`` opens it.

RESTORE first copies the backup into a hidden directory inside the data directory, checking the
catalog's pages and every segment's checksum; a bad backup is refused before anything changes.
Then, with every table's write lock and the catalog's lock held, the engine's catalog and
segment files are swapped for the copy and the engine reloads everything it keeps in memory
(catalog, schema cache, providers, partitions): providers of the old contents are retired.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from kalam_engine import lifecycle
from kalam_engine.auth.permissions import require_admin
from kalam_engine.handlers import Params, handles
from kalam_engine.model.context import ExecutionContext
from kalam_engine.model.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    KalamError,
    MissingFileError,
    StorageError,
    UnsupportedError,
)
from kalam_engine.result import Result
from kalam_engine.sql.backup_commands import BackupDatabase, RestoreDatabase
from kalam_engine.storage import backup as copies
from kalam_engine.storage.catalog_file import WAL_SUFFIXES
from kalam_engine.storage.data_dir import CATALOG_FILE
from kalam_engine.storage.failures import file_error, storage_error
from kalam_engine.storage.jobs import BACKUP_PREFIX, RESTORE_PREFIX, Job, record_job
from kalam_engine.storage.segment_files import STORAGE_DIR

if TYPE_CHECKING:
    from kalam_engine.services import Services

_GUARD = threading.Lock()
_SYNCHRONOUS = {0: "off", 1: "normal"}  # PRAGMA synchronous -> connect(durability=...)


def _exclusive(services: Services) -> threading.Lock:
    """One BACKUP or RESTORE at a time per services."""
    with _GUARD:
        lock = services.__dict__.get("_backup_lock")
        if lock is None:
            lock = services.__dict__["_backup_lock"] = threading.Lock()
        return lock


# --- paths
def _resolve(text: str, what: str) -> Path:
    if not text.strip() or "\0" in text:
        raise InvalidParameterError(f"The {what} path is empty or not a path",
                                    hint="give a directory, e.g. '/backups/kalam-1'")
    try:
        return Path(text).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise InvalidParameterError(f"The {what} path '{text}' cannot be used: {exc}") from None


def _outside_data_dir(services: Services, path: Path, what: str) -> None:
    if services.path is None:
        return
    data = services.path.resolve()
    if path == data or path.is_relative_to(data):
        raise InvalidParameterError(
            f"The {what} '{path}' is inside the data directory '{data}'",
            hint="choose a directory outside the data directory (its files are the engine's)")


def backup_target(services: Services, text: str) -> Path:
    """The directory BACKUP writes: outside the data directory, its parent existing, itself
    absent or an empty directory."""
    path = _resolve(text, "backup")
    _outside_data_dir(services, path, "backup directory")
    if not path.parent.is_dir():
        raise InvalidParameterError(f"The parent directory of '{path}' does not exist",
                                    hint=f"create {path.parent} first")
    if path.exists():
        if not path.is_dir():
            raise AlreadyExistsError(f"'{path}' exists and is a file",
                                     hint="give a new directory (or an empty one)")
        if any(path.iterdir()):
            raise AlreadyExistsError(f"The backup directory '{path}' is not empty",
                                     hint="give a new directory (or an empty one); a backup "
                                          "never overwrites files")
    return path


def restore_source(services: Services, text: str) -> Path:
    path = _resolve(text, "restore")
    _outside_data_dir(services, path, "backup to restore")
    if not path.is_dir():
        raise MissingFileError(f"There is no backup directory '{path}'",
                               hint="give a directory written by BACKUP DATABASE TO '<dir>'")
    if not (path / CATALOG_FILE).is_file():
        raise MissingFileError(f"'{path}' holds no backup ({CATALOG_FILE} is missing)",
                               hint="give a directory written by BACKUP DATABASE TO '<dir>'")
    return path


# --- BACKUP
@handles(BackupDatabase)
def backup_database(services: Services, stmt: BackupDatabase, ctx: ExecutionContext,
                    params: Params) -> Result:
    require_admin(ctx, "BACKUP DATABASE")
    target = backup_target(services, stmt.path)
    job = Job(BACKUP_PREFIX, {"path": str(target)})
    with _exclusive(services):
        try:
            staging = copies.staging_dir(target.parent, target.name)
        except OSError as exc:
            raise file_error(exc, f"create a directory beside {target}") from None
        try:
            with services.storage.deletions.held():
                outcome = copies.copy_database(services.db, services.path, staging)
            copies.publish(staging, target)
        except BaseException as exc:
            copies.discard(staging)
            _failed(services, job, exc)
            raise _storage(exc, f"write the backup {target}") from None
    message = (f"Database backed up to '{target}': catalog ({outcome.catalog_bytes} bytes) and "
               f"{outcome.segments} segment file(s) ({outcome.segment_bytes} bytes), checksums "
               f"verified. Job ID: {job.job_id}")
    job.parameters.update(segments=outcome.segments, bytes=outcome.segment_bytes
                          + outcome.catalog_bytes)
    record_job(services.db, job, "completed", message)
    return Result("command", message=message)


# --- RESTORE
@handles(RestoreDatabase)
def restore_database(services: Services, stmt: RestoreDatabase, ctx: ExecutionContext,
                     params: Params) -> Result:
    require_admin(ctx, "RESTORE DATABASE")
    if services.path is None:
        raise UnsupportedError(
            "RESTORE DATABASE needs a data directory; this database is ':memory:'",
            hint="a backup is a data directory: open it with kalam_engine.connect('<dir>')")
    source = restore_source(services, stmt.path)
    job = Job(RESTORE_PREFIX, {"path": str(source)})
    with _exclusive(services):
        try:
            staging = copies.staging_dir(services.path, "restore")
        except OSError as exc:
            raise file_error(exc, "create a directory in the data directory") from None
        try:
            outcome = copies.copy_backup(source, staging)  # checked before anything changes
        except BaseException as exc:
            copies.discard(staging)
            raise _storage(exc, f"read the backup {source}") from None
        _swap_in(services, staging)
    message = (f"Database restored from '{source}': {outcome.segments} segment file(s), "
               f"checksums verified. Job ID: {job.job_id}")
    record_job(services.db, job, "completed", message)
    return Result("command", message=message)


def _swap_in(services: Services, staging: Path) -> None:
    """Replace the engine's catalog and segments with the verified copy in ``staging``, then
    rebuild everything the engine holds in memory."""
    assert services.path is not None
    rows = services.db.query("PRAGMA synchronous")
    durability = _SYNCHRONOUS.get(int(rows[0][0]), "full")
    listeners = list(services.storage._listeners)
    with contextlib.ExitStack() as stack:
        _lock_every_table(services, stack)
        stack.enter_context(services.db.lock)  # no statement reaches the catalog meanwhile
        services.storage.stop_eviction()
        for store in list(services.storage._stores.values()):
            store.dropped = True  # a write that waited for its table now fails cleanly
        for definition in services.catalog.latest_tables():
            services.cache.retire(definition.table_id, "RESTORE DATABASE replaced the database")
        services.cache.clear()
        services.db.close()
        _replace_files(services.path, staging)
    lifecycle.reopen(services, durability)
    for listener in listeners:
        services.storage.add_listener(listener)


def _lock_every_table(services: Services, stack: contextlib.ExitStack) -> None:
    """Hold the write lock of every table (a statement holds at most one, so no deadlock)."""
    held: set[int] = set()
    while True:
        stores = [s for s in list(services.storage._stores.values()) if id(s) not in held]
        if not stores:
            return
        for store in sorted(stores, key=lambda s: s.table_id.key):
            stack.enter_context(store.write_lock)
            held.add(id(store))


def _replace_files(data: Path, staging: Path) -> None:
    live_storage = data / STORAGE_DIR
    if live_storage.exists():
        os.rename(live_storage, staging / "replaced-storage")
    if (staging / STORAGE_DIR).exists():
        os.rename(staging / STORAGE_DIR, live_storage)
    os.replace(staging / CATALOG_FILE, data / CATALOG_FILE)
    for suffix in WAL_SUFFIXES:  # the old catalog's; the copy is a plain file
        (data / (CATALOG_FILE + suffix)).unlink(missing_ok=True)
    fd = os.open(data, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    copies.discard(staging)


# --- helpers
def _storage(exc: BaseException, action: str) -> BaseException:
    if isinstance(exc, KalamError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, sqlite3.Error):
        return storage_error(exc, None)
    if isinstance(exc, OSError):
        return file_error(exc, action)
    return StorageError(f"Could not {action}: {exc}", hint="check the disk and the path")


def _failed(services: Services, job: Job, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        record_job(services.db, job, "failed", str(exc))
