"""Opening ``kalam.sqlite`` safely: a missing, empty, truncated or foreign catalog beside
existing segment files is refused with a CorruptDataError instead of being taken for a new,
empty database (which would then treat every segment as garbage)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from kalam_engine.model.errors import CorruptDataError, StorageError
from kalam_engine.storage.segment_files import (
    RECOVER_COMMAND,
    SEGMENT_SUFFIX,
    STORAGE_DIR,
    TMP_SUFFIX,
)
from kalam_engine.storage.sqlite_db import SqliteDatabase

SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
WAL_SUFFIXES = ("-wal", "-shm")


def segment_files_in(data_dir: Path) -> list[Path]:
    """Every ``*.parquet`` and ``*.parquet.tmp`` file under ``data_dir/storage``."""
    base = data_dir / STORAGE_DIR
    if not base.is_dir():
        return []
    found = []
    for dirpath, _dirs, names in os.walk(base):
        found.extend(Path(dirpath) / n for n in names
                     if n.endswith((SEGMENT_SUFFIX, SEGMENT_SUFFIX + TMP_SUFFIX)))
    return sorted(found)


def catalog_problem(path: Path) -> str | None:
    """Why the catalog file at ``path`` cannot be trusted, or None.

    A missing or empty file is a problem only when segment files exist (see ``check``). The
    header is checked for SQLite's magic string and, when no write-ahead log could still hold
    pages, for a file shorter than the page count the header records (a truncated copy)."""
    if not path.exists() or path.stat().st_size == 0:
        return "missing" if not path.exists() else "empty"
    with open(path, "rb") as fh:
        header = fh.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "not a SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96] and pages > 0
    wal = path.with_name(path.name + "-wal")
    wal_may_hold_pages = wal.exists() and wal.stat().st_size > 0
    if valid and not wal_may_hold_pages and path.stat().st_size < pages * page_size:
        return (f"truncated ({path.stat().st_size} bytes, its header records "
                f"{pages * page_size})")
    return None


def open_catalog(path: Path | None, durability: str) -> SqliteDatabase:
    """Open the catalog at ``path`` (None: in memory) after checking that it can be trusted."""
    if path is None:
        return SqliteDatabase(None, durability)
    data_dir = path.parent
    problem = catalog_problem(path)
    if problem in ("missing", "empty"):
        segments = segment_files_in(data_dir)
        if segments:
            raise CorruptDataError(
                f"The catalog {path} is {problem} but {data_dir / STORAGE_DIR} holds "
                f"{len(segments)} segment file(s); opening would lose track of their rows. "
                "Nothing was opened or deleted",
                hint=f"restore kalam.sqlite from a backup, or run `{RECOVER_COMMAND} "
                     f"{data_dir}` to move the segments to {data_dir / 'quarantine'} and "
                     "start an empty database")
        problem = None
    if problem is not None:
        raise corrupt_catalog_error(path, problem)
    try:
        db = SqliteDatabase(path, durability)
    except sqlite3.DatabaseError as exc:
        raise catalog_error(path, exc) from None
    return db


def catalog_error(path: Path, exc: sqlite3.DatabaseError) -> StorageError:
    """The coded error for a SQLite failure while opening: CorruptDataError when SQLite reports
    damage (by result code), StorageError otherwise (locked, I/O error, no permission)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in SQLITE_DAMAGE_CODES:
        return corrupt_catalog_error(path, str(exc))
    return StorageError(f"Cannot open the catalog {path}: {exc}",
                        hint="check the file's permissions, the disk, and that no other "
                             "program holds it")


def corrupt_catalog_error(path: Path, problem: str) -> CorruptDataError:
    return CorruptDataError(
        f"The catalog {path} is damaged: {problem}. Nothing was opened or deleted",
        hint=f"restore kalam.sqlite from a backup (or try `sqlite3 {path} .recover`), or run "
             f"`{RECOVER_COMMAND} {path.parent}` to move it and its segments to "
             f"{path.parent / 'quarantine'} and start an empty database")
