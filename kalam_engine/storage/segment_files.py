"""Parquet segment files under ``<data_dir>/storage``: naming, atomic writes, reads, cleanup.

A segment is written to ``batch-N.parquet.tmp``, fsynced, renamed to ``batch-N.parquet`` and the
directory fsynced; only then may the manifest name it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kalam_engine.context import TableId
from kalam_engine.storage.conform import column_key
from kalam_engine.storage.failures import file_error

STORAGE_DIR = "storage"
TMP_SUFFIX = ".tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentFiles:
    """The segment files of one data directory. ``reads`` counts reads per relative path."""

    __slots__ = ("reads", "root")

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.reads: Counter[str] = Counter()

    def relative_path(self, table_id: TableId, scope: str, batch_no: int) -> str:
        """``storage/<ns>/<table>[/<user_id>]/batch-N.parquet`` (scope "" is a SHARED table)."""
        parts = [STORAGE_DIR, table_id.namespace, table_id.name]
        if scope:
            parts.append(scope)
        return "/".join([*parts, f"batch-{batch_no}.parquet"])

    def write(self, relative: str, rows: pa.Table) -> int:
        """Write ``rows`` durably at ``relative``; return the file size in bytes."""
        final = self.root / relative
        tmp = final.with_name(final.name + TMP_SUFFIX)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                pq.write_table(rows, fh, compression="zstd", write_statistics=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return final.stat().st_size
        except OSError as exc:  # disk full, read-only: leave no partial file behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise file_error(exc, f"write segment file {relative}") from exc

    def read(self, relative: str, fields: pa.Schema | None = None) -> pa.Table:
        """The segment at ``relative``; with ``fields``, only the columns that hold them (matched
        by column id, so a renamed column is found; a column the file lacks is left out)."""
        path = self.root / relative
        columns = None
        if fields is not None:
            wanted = {column_key(f) for f in fields}
            columns = [f.name for f in pq.read_schema(path) if column_key(f) in wanted]
        self.reads[relative] += 1
        return pq.read_table(path, columns=columns, use_threads=False)

    def delete(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)

    def delete_table(self, table_id: TableId) -> None:
        shutil.rmtree(self.root / STORAGE_DIR / table_id.namespace / table_id.name,
                      ignore_errors=True)

    def all_files(self) -> Iterator[str]:
        """Every file under the storage directory, as relative paths."""
        base = self.root / STORAGE_DIR
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                yield (Path(dirpath) / name).relative_to(self.root).as_posix()

    def remove_empty_dirs(self) -> None:
        base = self.root / STORAGE_DIR
        if not base.is_dir():
            return
        for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda w: -len(w[0])):
            path = Path(dirpath)
            if path != base and not any(path.iterdir()):
                path.rmdir()
