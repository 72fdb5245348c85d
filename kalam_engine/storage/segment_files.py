"""Parquet segment files under ``<data_dir>/storage``: naming, atomic writes, reads, cleanup.

A segment is written to ``batch-N.parquet.tmp``, fsynced, renamed to ``batch-N.parquet`` and the
directory fsynced; only then may the manifest name it. Every read checks the file against its
manifest row (size, and the checksum when recorded) before Parquet decodes a byte of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from kalam_engine.model.context import TableId
from kalam_engine.model.errors import CorruptDataError, MissingFileError, StorageError
from kalam_engine.storage.checksums import segment_checksum
from kalam_engine.storage.conform import column_key
from kalam_engine.storage.failures import RECOVER_COMMAND, file_error
from kalam_engine.storage.manifest import Segment

STORAGE_DIR = "storage"
SEGMENT_SUFFIX = ".parquet"
TMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: pa.Buffer) -> None:
    """Write ``data`` to the new file ``path`` (parents made) and fsync it; the caller fsyncs
    the directory once its files are in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(memoryview(data))
        fh.flush()
        os.fsync(fh.fileno())


class Placer(Protocol):
    """Custom storages (CREATE STORAGE): where their segments go, and their directories."""

    def segment_dir(self, storage_id: str, table_id: TableId, scope: str) -> str: ...

    def roots(self) -> list[Path]: ...


class SegmentFiles:
    """The segment files of one data directory and of its custom storages. A segment's path is
    relative to the data directory, or absolute for a custom storage outside it (``root / path``
    is the file either way). ``reads`` counts reads per path."""

    __slots__ = ("placer", "reads", "root")

    def __init__(self, data_dir: Path, placer: Placer | None = None) -> None:
        self.root = data_dir
        self.placer = placer
        self.reads: Counter[str] = Counter()

    def relative_path(self, table_id: TableId, scope: str, batch_no: int,
                      storage_id: str = "local") -> str:
        """``storage/<ns>/<table>[/<user_id>]/batch-N.parquet`` (scope "" is a SHARED table);
        in a custom storage, its template's directory."""
        if storage_id != "local" and self.placer is not None:
            directory = self.placer.segment_dir(storage_id, table_id, scope)
            return f"{directory}/batch-{batch_no}.parquet"
        parts = [STORAGE_DIR, table_id.namespace, table_id.name]
        if scope:
            parts.append(scope)
        return "/".join([*parts, f"batch-{batch_no}.parquet"])

    def write(self, table_key: str, scope: str, relative: str,
              rows: pa.Table) -> tuple[int, str]:
        """Write ``rows`` durably at ``relative``; return the file's size and checksum."""
        final = self.root / relative
        tmp = final.with_name(final.name + TMP_SUFFIX)
        sink = pa.BufferOutputStream()
        pq.write_table(rows, sink, compression="zstd", write_statistics=True)
        data = sink.getvalue()
        checksum = segment_checksum(table_key, scope, relative, memoryview(data))
        try:
            write_durably(tmp, data)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        except OSError as exc:  # disk full, read-only: leave no partial file behind
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise file_error(exc, f"write segment file {relative}") from exc
        return data.size, checksum

    def read(self, segment: Segment, fields: pa.Schema | None = None) -> pa.Table:
        """The segment's rows; with ``fields``, only the columns that hold them (matched by
        column id, so a renamed column is found; a column the file lacks is left out).

        Raises MissingFileError when the file is gone and CorruptDataError when it does not
        match its manifest row or cannot be decoded."""
        relative = segment.path
        data = self.verified_bytes(segment)
        self.reads[relative] += 1
        try:
            columns = None
            if fields is not None:
                wanted = {column_key(f) for f in fields}
                columns = [f.name for f in pq.read_schema(pa.BufferReader(data))
                           if column_key(f) in wanted]
            return pq.read_table(pa.BufferReader(data), columns=columns, use_threads=False)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise self._corrupt(segment, f"Parquet cannot decode it ({exc})") from None

    def verified_bytes(self, segment: Segment) -> pa.Buffer:
        """The file's bytes, checked against the manifest's size and checksum."""
        path = self.root / segment.path
        try:
            with open(path, "rb") as fh:
                data = pa.py_buffer(fh.read())
        except FileNotFoundError:
            raise MissingFileError(
                f"Segment file {path} of table {segment.table_key} is missing",
                hint=f"restore it from a backup, or run `{RECOVER_COMMAND} {self.root} "
                     "--drop-damaged` to forget the rows it held") from None
        except OSError as exc:
            raise StorageError(f"Cannot read segment file {path}: {exc}",
                               hint="check the file's permissions and the disk") from None
        if data.size != segment.size_bytes:
            raise self._corrupt(segment, f"it has {data.size} bytes, the manifest recorded "
                                         f"{segment.size_bytes}")
        if segment.checksum is not None and segment_checksum(
                segment.table_key, segment.scope, segment.path,
                memoryview(data)) != segment.checksum:
            raise self._corrupt(segment, "its checksum does not match the manifest (changed "
                                         "bytes, or a file copied from another place)")
        return data

    def _corrupt(self, segment: Segment, why: str) -> CorruptDataError:
        return CorruptDataError(
            f"Segment file {self.root / segment.path} of table {segment.table_key} is corrupt: "
            f"{why}",
            hint=f"restore it from a backup, or run `{RECOVER_COMMAND} {self.root} "
                 "--drop-damaged` to move it to quarantine and forget the rows it held")

    def delete(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)

    def delete_table(self, table_id: TableId) -> None:
        shutil.rmtree(self.root / STORAGE_DIR / table_id.namespace / table_id.name,
                      ignore_errors=True)

    def roots(self) -> list[Path]:
        """``<data_dir>/storage`` and the directories of the custom storages."""
        return [self.root / STORAGE_DIR, *(self.placer.roots() if self.placer else [])]

    def as_path(self, path: Path) -> str:
        """A file's path as the manifest records it."""
        data = Path(os.path.realpath(self.root))
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            pass
        try:
            return path.relative_to(data).as_posix()
        except ValueError:
            return path.as_posix()

    def all_files(self) -> Iterator[str]:
        """Every file under the storage directories, as the manifest would name it."""
        for base in self.roots():
            if not base.is_dir():
                continue
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    yield self.as_path(Path(dirpath) / name)

    def remove_empty_dirs(self) -> None:
        for base in self.roots():
            if not base.is_dir():
                continue
            for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda w: -len(w[0])):
                path = Path(dirpath)
                if path != base and not any(path.iterdir()):
                    path.rmdir()
