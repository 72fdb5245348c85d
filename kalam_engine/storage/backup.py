"""Copies of a whole database: a consistent snapshot of ``kalam.sqlite`` plus the segment files
its manifest names, verified byte for byte against the manifest's checksums.

A backup directory has the layout of a data directory (``kalam.sqlite``, ``storage/...``), so
``connect(backup_dir)`` opens it as it is. The catalog copy is made with SQLite's online backup
API in one step, which reads one committed state inside one read transaction; writers go on
meanwhile (WAL). Segments are immutable once a manifest row names them, and the caller holds the
storage's DeletionGate so that compaction or DROP TABLE cannot delete one being copied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from kalam_engine.model.errors import CorruptDataError, MissingFileError, StorageError
from kalam_engine.storage.data_dir import CATALOG_FILE
from kalam_engine.storage.failures import file_error
from kalam_engine.storage.manifest import Manifest, Segment
from kalam_engine.storage.segment_files import SegmentFiles, fsync_dir, write_durably
from kalam_engine.storage.sqlite_db import SqliteDatabase


@dataclass(frozen=True, slots=True)
class CopyOutcome:
    segments: int
    segment_bytes: int
    catalog_bytes: int


def snapshot_catalog(db: SqliteDatabase, dest: Path) -> None:
    """Write one committed state of ``db`` to the new file ``dest`` (a plain, non-WAL file)."""
    target = sqlite3.connect(str(dest), isolation_level=None)
    try:
        if db.path is None:  # :memory: has one connection: copy under its lock
            with db.lock:
                db.conn.backup(target)
        else:  # a connection of our own: the engine's writers go on while it reads
            source = sqlite3.connect(f"{db.path.absolute().as_uri()}?mode=ro", uri=True,
                                     isolation_level=None)
            try:
                source.backup(target)  # pages=-1: every page in one step, one read transaction
            finally:
                source.close()
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
    _fsync_file(dest)


def check_catalog(path: Path) -> list[Segment]:
    """Open a copied catalog read-only, check its pages, return the segments it names."""
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise CorruptDataError(f"The backup catalog {path} cannot be read: {exc}",
                               hint="take a new backup with BACKUP DATABASE TO '<dir>'") from None
    if verdict != "ok":
        raise CorruptDataError(f"The backup catalog {path} is damaged: {verdict}",
                               hint="take a new backup with BACKUP DATABASE TO '<dir>'")
    db = SqliteDatabase(path, read_only=True)
    try:
        return Manifest(db).segments()
    finally:
        db.close()


def copy_segments(source_root: Path, dest_root: Path, segments: list[Segment]) -> int:
    """Copy each segment file, checked against its manifest row (size and checksum) on the
    way; return the bytes copied. MissingFileError / CorruptDataError name a bad file."""
    files = SegmentFiles(source_root)
    total = 0
    for segment in segments:
        data = files.verified_bytes(segment)
        dest = dest_root / segment.path
        try:
            write_durably(dest, data)
        except OSError as exc:
            raise file_error(exc, f"copy segment file {segment.path}") from exc
        total += data.size
    for directory in {(dest_root / s.path).parent for s in segments}:
        fsync_dir(directory)
    return total


def copy_database(db: SqliteDatabase, source_root: Path | None, dest: Path) -> CopyOutcome:
    """Snapshot ``db`` into the empty directory ``dest`` and copy the segments it names (the
    caller holds the storage's DeletionGate)."""
    catalog = dest / CATALOG_FILE
    snapshot_catalog(db, catalog)
    segments = check_catalog(catalog)
    size = 0
    if segments:
        if source_root is None:  # pragma: no cover - :memory: never writes segments
            raise StorageError("An in-memory database cannot have segment files")
        size = copy_segments(source_root, dest, segments)
    fsync_dir(dest)
    return CopyOutcome(len(segments), size, catalog.stat().st_size)


def copy_backup(source: Path, dest: Path) -> CopyOutcome:
    """Copy the backup directory ``source`` into the empty directory ``dest``, checking its
    catalog's pages and every segment's checksum (RESTORE stages this copy)."""
    catalog = source / CATALOG_FILE
    if not catalog.is_file():
        raise MissingFileError(f"'{source}' holds no backup ({CATALOG_FILE} is missing)",
                               hint="give a directory written by BACKUP DATABASE TO '<dir>'")
    segments = check_catalog(catalog)
    source_db = SqliteDatabase(catalog, read_only=True)
    try:
        snapshot_catalog(source_db, dest / CATALOG_FILE)
    finally:
        source_db.close()
    size = copy_segments(source, dest, segments)
    fsync_dir(dest)
    return CopyOutcome(len(segments), size, (dest / CATALOG_FILE).stat().st_size)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def staging_dir(parent: Path, name: str) -> Path:
    """A new hidden directory in ``parent`` for a copy being written."""
    path = parent / f".{name}.partial-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def publish(staging: Path, target: Path) -> None:
    """Give the finished copy its name (an empty target directory is replaced)."""
    if target.is_dir():
        target.rmdir()  # checked empty by the caller; fails (OSError) if it is not
    os.rename(staging, target)
    fsync_dir(target.parent)


def discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
