"""Storage failures as KalamErrors, chosen by SQLite's result code or the OS errno (never by
message text).

A write that SQLite or the file system refuses (disk full, read-only file or directory, I/O
error) raises a :class:`StorageError` that says the statement changed nothing and what to do; a
damaged SQLite file raises :class:`CorruptDataError`.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from kalam_engine.model.errors import CorruptDataError, StorageError

# primary result codes (https://sqlite.org/rescode.html)
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN = 10, 11, 13, 14
SQLITE_NOTADB = 26

_NOT_WRITTEN = "nothing was changed"
RECOVER_COMMAND = "python -m kalam_engine.recover"
_ERRORS: dict[int, tuple[type[StorageError], str, str]] = {
    SQLITE_FULL: (StorageError, "The disk holding the database is full",
                  "free disk space (or raise the quota), then run the statement again"),
    SQLITE_READONLY: (StorageError, "The database cannot be written: kalam.sqlite or its "
                      "directory is read-only",
                      "make the data directory and its files writable again, then run the "
                      "statement again"),
    SQLITE_PERM: (StorageError, "The database cannot be written: access denied",
                  "check the permissions of the data directory and its files"),
    SQLITE_CANTOPEN: (StorageError, "The database file cannot be opened",
                      "check that the data directory exists and is writable"),
    SQLITE_IOERR: (StorageError, "The disk failed while reading or writing the database",
                   "check the disk and free space, then run the statement again"),
    SQLITE_BUSY: (StorageError, "The database is busy: another process holds a lock on it",
                  "close the other process's engine, or wait and run the statement again"),
    SQLITE_LOCKED: (StorageError, "The database is locked by another statement",
                    "wait and run the statement again"),
    SQLITE_CORRUPT: (CorruptDataError, "kalam.sqlite is damaged",
                     "restore the data directory from a backup"),
    SQLITE_NOTADB: (CorruptDataError, "kalam.sqlite is not a SQLite database",
                    "restore the data directory from a backup"),
}


def storage_error(exc: sqlite3.Error, path: Path | None = None) -> StorageError:
    """The KalamError for a failed SQLite call (the statement it belonged to did nothing);
    ``path``, the catalog file, names the recovery command for a damaged one."""
    code = getattr(exc, "sqlite_errorcode", None)
    known = _ERRORS.get(code & 0xFF) if isinstance(code, int) else None
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if known is None:
        return StorageError(f"The database failed ({name}): {exc}; {_NOT_WRITTEN}",
                            hint="run the statement again; if it keeps failing, reopen the "
                                 "engine")
    cls, message, hint = known
    if cls is CorruptDataError and path is not None:
        hint = (f"restore kalam.sqlite from a backup (or try `sqlite3 {path} .recover`), or "
                f"run `{RECOVER_COMMAND} {path.parent}` to move it and its segments to "
                f"{path.parent / 'quarantine'} and start an empty database")
    return cls(f"{message} ({name}); {_NOT_WRITTEN}", hint=hint)


_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free disk space (or raise the quota), then run it again"),
    errno.EDQUOT: ("the disk quota is used up", "free disk space or raise the quota"),
    errno.EROFS: ("the file system is read-only", "remount it writable, then run it again"),
    errno.EACCES: ("access denied", "make the data directory and its files writable again"),
    errno.EPERM: ("access denied", "make the data directory and its files writable again"),
}


def file_error(exc: OSError, action: str) -> StorageError:
    """The KalamError for a failed file operation ``action`` (e.g. "write a segment file")."""
    what, hint = _OS_ERRORS.get(exc.errno or 0, (
        exc.strerror or type(exc).__name__, "check the disk and the data directory"))
    return StorageError(f"Could not {action}: {what}; {_NOT_WRITTEN}", hint=hint)
