"""``python -m kalam_engine.recover DIR``: make a data directory that refuses to open usable
again without deleting anything. Run it only while no engine has the directory open.

What it does, depending on the catalog (``DIR/kalam.sqlite``):

- missing or empty: every segment file under ``DIR/storage`` is moved to
  ``DIR/quarantine/<time>/`` (with a stale ``kalam.sqlite-wal``/``-shm``); the database then
  opens empty.
- damaged (not SQLite, truncated, unreadable): the catalog files and every segment file are
  moved to quarantine; the database then opens empty.
- readable: files the catalog proves unfinished are deleted (as opening would), and segment
  files the manifest does not name are moved to quarantine. With ``--drop-damaged`` every
  segment the manifest names is checked too (present, size, checksum); a missing or damaged one
  is moved to quarantine and its manifest row removed. Its rows are lost, and older versions of
  them, or rows it deleted, in other segments become visible again: restore from a backup when
  you can.

Custom storages (CREATE STORAGE) are covered when the catalog is readable: their directories
are locked and scanned like ``storage/``, and a file from one of them outside the data directory
is moved to ``DIR/quarantine/<time>/external/<its absolute path>``. When the catalog is missing
or damaged, the custom storages it listed are unknown and only ``DIR/storage`` (and custom
directories inside DIR, which the scan of DIR's ``storage/`` does not reach) is handled: their
files stay where they are.

Quarantined Parquet files keep their path below ``storage/``; they can be read with
``pyarrow.parquet.read_table`` and inserted again with ``Engine.insert_arrow``. Nothing is
rebuilt from them automatically: table definitions (types, keys, options) and hot rows live only
in the catalog, so a table cannot be proven from its files.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kalam_engine.model.errors import KalamError
from kalam_engine.storage.catalog_file import WAL_SUFFIXES, catalog_problem, segment_files_in
from kalam_engine.storage.dir_lock import DirectoryLock
from kalam_engine.storage.manifest import Manifest
from kalam_engine.storage.pending import PendingFiles
from kalam_engine.storage.recovery import remove_unfinished, unexplained_segments
from kalam_engine.storage.segment_files import SegmentFiles
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.storages import StorageRegistry

CATALOG_FILE = "kalam.sqlite"
QUARANTINE_DIR = "quarantine"


@dataclass
class RecoveryReport:
    """What ``recover`` found and did (paths relative to the data directory)."""

    data_dir: Path
    catalog: str  # "ok", "missing", "empty" or the damage found
    quarantine: Path | None = None
    moved: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)  # manifest rows removed
    deleted: int = 0  # files the catalog proved unfinished
    dry_run: bool = False

    def lines(self) -> list[str]:
        verb = "would move" if self.dry_run else "moved"
        out = [f"data directory: {self.data_dir}", f"catalog: {self.catalog}"]
        if self.deleted:
            out.append(f"deleted {self.deleted} file(s) the catalog records as unfinished")
        for path in self.moved:
            target = quarantine_target(self.quarantine, path) if self.quarantine else path
            out.append(f"{verb} {path} -> {target}")
        for path in self.forgotten:
            out.append(f"{'would forget' if self.dry_run else 'forgot'} the segment {path} "
                       "(its rows are lost)")
        if not self.moved and not self.forgotten:
            out.append("nothing to do")
        return out


def recover(data_dir: str | Path, *, drop_damaged: bool = False,
            dry_run: bool = False) -> RecoveryReport:
    """Move what the catalog cannot explain to ``data_dir/quarantine/<time>/``; see the module
    docstring."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    lock = DirectoryLock(root)
    lock.acquire()  # DataDirectoryLockedError while an engine has the directory open
    try:
        return _recover(root, drop_damaged, dry_run)
    finally:
        lock.release()


def _recover(root: Path, drop_damaged: bool, dry_run: bool) -> RecoveryReport:
    catalog = root / CATALOG_FILE
    problem = catalog_problem(catalog)
    report = RecoveryReport(root, problem or "ok", dry_run=dry_run)
    report.quarantine = _quarantine_dir(root)
    if problem is None:
        try:
            _recover_with_catalog(root, catalog, report, drop_damaged)
            return report
        except sqlite3.DatabaseError as exc:
            report.catalog = f"unreadable ({exc})"
            problem = report.catalog
    moved = [p.relative_to(root).as_posix() for p in segment_files_in(root)]
    if problem not in ("missing", "empty"):
        moved.insert(0, CATALOG_FILE)
    moved += [CATALOG_FILE + s for s in WAL_SUFFIXES if (root / (CATALOG_FILE + s)).exists()]
    _move(root, report, moved)
    return report


def _recover_with_catalog(root: Path, catalog: Path, report: RecoveryReport,
                          drop_damaged: bool) -> None:
    db = SqliteDatabase(catalog)
    storages = StorageRegistry(db, root)
    try:
        storages.open()  # their locks too: no engine may be writing them
        manifest = Manifest(db)
        files = SegmentFiles(root, storages)
        if not report.dry_run:
            report.deleted = remove_unfinished(db, files, manifest, PendingFiles(db))
        segments = manifest.segments()
        unexplained = unexplained_segments(files, {s.path for s in segments})
        damaged = []
        if drop_damaged:
            for segment in segments:
                try:
                    files.verified_bytes(segment)
                except KalamError:
                    damaged.append(segment)
        report.forgotten = [s.path for s in damaged]
        if damaged and not report.dry_run:
            with db.transaction() as conn:
                Manifest.remove(conn, damaged)
        _move(root, report, unexplained + [s.path for s in damaged if (root / s.path).exists()])
        if not report.dry_run:
            files.remove_empty_dirs()
    finally:
        storages.close()
        db.close()


def _quarantine_dir(root: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = root / QUARANTINE_DIR / stamp
    n = 1
    while target.exists():
        n += 1
        target = root / QUARANTINE_DIR / f"{stamp}-{n}"
    return target


def quarantine_target(quarantine: Path, path: str) -> Path:
    """Where a file goes: its path below the data directory, or, for a custom storage outside
    it (an absolute path), below ``external/``."""
    if Path(path).is_absolute():
        return quarantine / "external" / path.lstrip("/")
    return quarantine / path


def _move(root: Path, report: RecoveryReport, paths: list[str]) -> None:
    report.moved = paths
    if report.dry_run or report.quarantine is None:
        return
    for relative in paths:
        target = quarantine_target(report.quarantine, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(root / relative, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kalam_engine.recover",
        description="Move files a Kalam data directory's catalog cannot explain into "
                    "DIR/quarantine/ so that the directory opens again. Deletes nothing the "
                    "catalog does not prove unfinished. It takes the directory's lock, so it "
                    "refuses to run while an engine has DIR open.")
    parser.add_argument("data_dir", metavar="DIR", help="the data directory")
    parser.add_argument("--drop-damaged", action="store_true",
                        help="also check every segment the manifest names and forget (move to "
                             "quarantine) the missing or damaged ones; their rows are lost")
    parser.add_argument("--dry-run", action="store_true", help="only say what would be done")
    args = parser.parse_args(argv)
    try:
        report = recover(args.data_dir, drop_damaged=args.drop_damaged, dry_run=args.dry_run)
    except (OSError, KalamError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
