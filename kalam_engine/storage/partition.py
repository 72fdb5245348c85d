"""One hot partition: the rows of one user of a USER/STREAM table, or all rows of a SHARED table.

Rows are versions: every write appends rows carrying ``_seq`` (version) and ``_deleted``
(tombstone). Reads see, per key, the newest version and hide tombstones; a partition that never
saw an update or delete skips that merge.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.catalog.definitions import DELETED_COLUMN, SEQ_COLUMN
from kalam_engine.storage.conform import conform


def latest_versions(table: pa.Table, key: str) -> pa.Table:
    """Keep, per ``key``, only the row with the highest ``_seq`` (``_seq`` is unique)."""
    if table.num_rows < 2:
        return table
    newest = table.group_by(key, use_threads=False).aggregate([(SEQ_COLUMN, "max")])
    return table.filter(pc.is_in(table[SEQ_COLUMN], value_set=newest[f"{SEQ_COLUMN}_max"]))


def hide_tombstones(table: pa.Table) -> pa.Table:
    deleted = table[DELETED_COLUMN]
    if deleted.null_count == 0 and not pc.any(deleted).as_py():
        return table
    return table.filter(pc.invert(deleted))


class Partition:
    """Hot rows of one scope. Thread-safe; reads get immutable Arrow tables."""

    __slots__ = ("_cache", "_chunks", "_has_versions", "_key", "_lock", "live_keys", "max_seq")

    def __init__(self, key: str) -> None:
        self._key = key
        self._chunks: list[pa.Table] = []
        self._has_versions = False
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, bool], tuple[pa.Schema, pa.Table]] = {}
        self.live_keys: set = set()
        self.max_seq = 0

    @property
    def row_count(self) -> int:
        return sum(c.num_rows for c in self._chunks)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks)

    def apply(self, rows: pa.Table, *, versions: bool) -> None:
        """Append rows already logged. ``versions`` says they may shadow older rows."""
        with self._lock:
            self._chunks.append(rows)
            self._has_versions = self._has_versions or versions
            self._cache.clear()
            keys = rows[self._key].to_pylist()
            deleted = rows[DELETED_COLUMN]
            if pc.any(deleted).as_py():
                for k, d in zip(keys, deleted.to_pylist(), strict=True):
                    if d:
                        self.live_keys.discard(k)
                    else:
                        self.live_keys.add(k)
            else:
                self.live_keys.update(keys)
            if rows.num_rows:
                self.max_seq = max(self.max_seq, pc.max(rows[SEQ_COLUMN]).as_py())

    def read(self, schema: pa.Schema, *, include_deleted: bool = False) -> pa.Table:
        """The newest version of every row, conformed to ``schema``."""
        cache_key = (id(schema), include_deleted)
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None and hit[0] is schema:
                return hit[1]
            merged = self._merged(schema)
            result = merged if include_deleted else hide_tombstones(merged)
            self._cache[cache_key] = (schema, result)
            return result

    def _merged(self, schema: pa.Schema) -> pa.Table:
        if not self._chunks:
            return schema.empty_table()
        parts = [conform(c, schema) for c in self._chunks]
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts).combine_chunks()
        if self._has_versions:
            table = latest_versions(table, self._key)
        # Keep the merged form: the same rows, one chunk, shadowed versions gone.
        self._chunks = [table]
        return table

    def all_versions(self) -> list[pa.Table]:
        with self._lock:
            return list(self._chunks)

    def replace(self, chunks: list[pa.Table], live_keys: set, has_versions: bool) -> None:
        """Swap in new contents (used by flush and recovery)."""
        with self._lock:
            self._chunks = chunks
            self.live_keys = live_keys
            self._has_versions = has_versions
            self._cache.clear()
