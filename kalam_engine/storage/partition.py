"""One partition: the rows of one user of a USER/STREAM table, or all rows of a SHARED table.

Rows are versions: every write appends rows carrying ``_seq`` (version) and ``_deleted``
(tombstone). A partition holds its hot rows in memory and knows its cold Parquet segments (read
lazily, only this partition's own). Reads see, per key, the newest version across hot and cold
and hide tombstones. Hot rows are always newer than cold ones (a flush moves every hot row), so
a partition whose hot rows are all fresh inserts skips the hot/cold merge.

Until the merged view is cached, primary-key checks and filtered reads open only the segments
whose manifest bounds (key, _seq) may matter to them (see ``pruning``). Pruned reads cache
nothing, so once they have opened as many segment files as the partition has, the next read
builds the merged view instead: repeated filtered reads never cost more than twice the I/O of
reading everything once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.model.definitions import COLUMN_ID_KEY, DELETED_COLUMN, SEQ_COLUMN
from kalam_engine.storage.conform import conform
from kalam_engine.storage.manifest import Segment
from kalam_engine.storage.pruning import segments_for_filter, segments_holding

INDEX_AFTER = 8  # lookups on one unchanged view before it gets a key index
INDEX_MAX_ROWS = 100_000


class SegmentReader(Protocol):
    def __call__(self, segment: Segment, fields: pa.Schema | None = None, /) -> pa.Table:
        """The rows of ``segment``; with ``fields``, only those columns (by column id)."""
        ...


def latest_versions(table: pa.Table, key: str) -> pa.Table:
    """Keep, per ``key``, only the row with the highest ``_seq`` (``_seq`` is unique)."""
    if table.num_rows < 2:
        return table
    newest = table.group_by(key, use_threads=False).aggregate([(SEQ_COLUMN, "max")])
    if newest.num_rows == table.num_rows:
        return table
    return table.filter(pc.is_in(table[SEQ_COLUMN], value_set=newest[f"{SEQ_COLUMN}_max"]))


def hide_tombstones(table: pa.Table) -> pa.Table:
    deleted = table[DELETED_COLUMN]
    if deleted.null_count == 0 and not pc.any(deleted).as_py():
        return table
    return table.filter(pc.invert(deleted))


def _column_ids(schema: pa.Schema) -> set:
    return {f.metadata.get(COLUMN_ID_KEY) if f.metadata else f.name for f in schema}


def _concat(parts: list[pa.Table]) -> pa.Table:
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _newest(parts: list[pa.Table], key: str) -> pa.Table:
    """The newest version per key across ``parts`` (each already one version per key)."""
    parts = [p for p in parts if p.num_rows] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    return latest_versions(pa.concat_tables(parts).combine_chunks(), key)


def _key_array(keys: set, arrow_type: pa.DataType) -> pa.Array:
    return pa.array(list(keys), type=arrow_type)


class Partition:
    """Hot rows and cold segments of one scope. Thread-safe; reads get immutable Arrow tables."""

    __slots__ = ("_cache", "_chunks", "_cold", "_has_versions", "_index", "_key", "_live",
                 "_lock", "_lookups", "_pruned_opens", "_reader", "_segments", "max_seq")

    def __init__(self, key: str, reader: SegmentReader | None = None) -> None:
        self._key = key
        self._reader = reader
        self._chunks: list[pa.Table] = []
        self._has_versions = False
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, bool], tuple[pa.Schema, pa.Table]] = {}
        self._segments: tuple[Segment, ...] = ()
        self._cold: tuple[pa.Schema, pa.Table] | None = None  # newest cold versions, conformed
        self._live: set | None = set()  # keys whose newest version is not a tombstone
        self.max_seq = 0
        # key -> row of the cached live view, built once that view has served a few lookups
        self._index: tuple[pa.Table, dict] | None = None
        self._lookups: tuple[int, int] = (0, 0)  # (id of the view, lookups on it)
        self._pruned_opens = 0  # segment files pruned reads opened since the cold view went

    def _drop_views(self) -> None:
        """The rows changed: the merged views and the key index of the old rows go."""
        self._cache.clear()
        self._index = None

    # --- figures
    @property
    def row_count(self) -> int:
        """Hot rows (versions) held in memory."""
        return sum(c.num_rows for c in self._chunks)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self._chunks)

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self._segments

    # --- writes
    def apply(self, rows: pa.Table, *, versions: bool, max_seq: int | None = None) -> None:
        """Append rows already logged. ``versions`` says they may shadow older rows;
        ``max_seq``, when the caller knows it, is the rows' largest ``_seq``."""
        with self._lock:
            self._chunks.append(rows)
            self._has_versions = self._has_versions or versions
            self._drop_views()
            if self._live is not None:
                self._track_keys(rows)
            if rows.num_rows:
                if max_seq is None:
                    max_seq = pc.max(rows[SEQ_COLUMN]).as_py()
                self.max_seq = max(self.max_seq, max_seq)

    def _track_keys(self, rows: pa.Table) -> None:
        assert self._live is not None
        keys = rows[self._key].to_pylist()
        deleted = rows[DELETED_COLUMN]
        if pc.any(deleted).as_py():
            for k, d in zip(keys, deleted.to_pylist(), strict=True):
                if d:
                    self._live.discard(k)
                else:
                    self._live.add(k)
        else:
            self._live.update(keys)

    # --- reads
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

    def live_keys(self, schema: pa.Schema) -> set:
        """Keys whose newest version (hot or cold) is a live row."""
        with self._lock:
            return self._live_keys(schema)

    def _live_keys(self, schema: pa.Schema) -> set:
        if self._live is None:
            if self._cold_ready(schema) or not self._segments:
                rows = hide_tombstones(self._merged(schema))
            else:  # only the key, _seq and _deleted columns of every segment
                fields = self._key_schema(schema)
                cold = [conform(self._read(s, fields), fields) for s in self._segments]
                hot = self._hot(schema).select(fields.names)
                rows = hide_tombstones(_newest([*cold, hot], self._key))
            self._live = set(rows[self._key].to_pylist())
        return self._live

    def taken_keys(self, schema: pa.Schema, keys: set) -> set:
        """Those of ``keys`` whose newest version (hot or cold) is a live row.

        Uses the live-key set or the cold view when already built. Otherwise hot rows decide
        the keys they hold (they are newer than every segment) and, for the others, only the
        key, _seq and _deleted columns of the segments whose key bounds may hold one are read.
        """
        with self._lock:
            if self._live is not None or not self._segments or self._cold_ready(schema):
                return self._live_keys(schema) & keys
            hot = self._hot(schema)
            key_type = schema.field(self._key).type
            if hot.num_rows:
                hot = hot.filter(pc.is_in(hot[self._key], value_set=_key_array(keys, key_type)))
            in_hot = set(hot[self._key].to_pylist())
            taken = set(hide_tombstones(hot)[self._key].to_pylist())
            rest = keys - in_hot
            segments = segments_holding(self._segments, rest)
            if not segments:
                return taken
            if len(segments) == len(self._segments):  # nothing pruned: build the cached set
                return self._live_keys(schema) & keys
            fields = self._key_schema(schema)
            wanted = _key_array(rest, key_type)
            parts = []
            for segment in segments:
                part = conform(self._read(segment, fields), fields)
                parts.append(part.filter(pc.is_in(part[self._key], value_set=wanted)))
            cold = hide_tombstones(_newest(parts, self._key))
            return taken | set(cold[self._key].to_pylist())

    def read_filtered(self, schema: pa.Schema, condition: pc.Expression, *,
                      include_deleted: bool = False, exact: bool = True) -> pa.Table:
        """``read(schema)`` filtered by ``condition``, reading only the segments whose manifest
        statistics may match it (when the merged view is not already cached). With
        ``exact=False`` the merged view is returned unfiltered when nothing was pruned (the
        caller filters; the cached view keeps its identity, and with it its DataFusion view)."""
        pruned = self._read_pruned_if_worth_it(schema, condition, include_deleted)
        if pruned is not None:
            return pruned
        rows = self.read(schema, include_deleted=include_deleted)
        return rows.filter(condition) if exact else rows

    def lookup(self, schema: pa.Schema, key: pa.Scalar) -> pa.Table:
        """The newest version of the live row whose primary key is ``key`` (zero or one row):
        one comparison over the cached view, or only the segments whose key bounds hold it."""
        pruned = self._read_pruned_if_worth_it(schema, pc.field(self._key) == key, False)
        if pruned is not None:
            return pruned
        rows = self.read(schema)
        index = self._key_index(rows)
        if index is not None:
            at = index.get(key.as_py())
            return rows.slice(at, 1) if at is not None else rows.slice(0, 0)
        return rows.filter(pc.equal(rows[self._key], key))

    def _key_index(self, rows: pa.Table) -> dict | None:
        """A key -> row map of ``rows`` (the live view: one row per key), built on the
        ``INDEX_AFTER``-th lookup on the same view and dropped with it; none for views of more
        than ``INDEX_MAX_ROWS`` rows (a Python dict costs ~100 bytes per key)."""
        with self._lock:
            if self._index is not None and self._index[0] is rows:
                return self._index[1]
            if rows.num_rows > INDEX_MAX_ROWS:
                return None
            view, count = self._lookups
            count = count + 1 if view == id(rows) else 1
            self._lookups = (id(rows), count)
            if count < INDEX_AFTER:
                return None
            index = {k: i for i, k in enumerate(rows[self._key].to_pylist())}
            self._index = (rows, index)
            return index

    def _read_pruned_if_worth_it(self, schema: pa.Schema, condition: pc.Expression,
                                 include_deleted: bool) -> pa.Table | None:
        """The filtered rows read from the segments that may match, or None when the merged
        view is already cached or no segment can be skipped."""
        with self._lock:
            hit = self._cache.get((id(schema), include_deleted))
            if (hit is None or hit[0] is not schema) and not self._cold_ready(schema):
                chosen = segments_for_filter(self._segments, condition, schema, self._key)
                if len(chosen) < len(self._segments) and \
                        self._pruned_opens + len(chosen) <= len(self._segments):
                    self._pruned_opens += len(chosen)
                    return self._read_pruned(schema, condition, chosen, include_deleted)
        return None

    def _read_pruned(self, schema: pa.Schema, condition: pc.Expression,
                     chosen: Sequence[Segment], include_deleted: bool) -> pa.Table:
        cold = [conform(self._read(s), schema) for s in chosen]
        merged = _newest([*cold, self._hot(schema)], self._key)
        rows = (merged if include_deleted else hide_tombstones(merged)).filter(condition)
        skipped = [s for s in self._segments if s not in chosen]
        return self._drop_shadowed(rows, skipped, schema)

    def _drop_shadowed(self, rows: pa.Table, skipped: list[Segment],
                       schema: pa.Schema) -> pa.Table:
        """Drop the rows of which a skipped segment holds a newer version (the newest version
        then lives in a segment that cannot match, so the key is not in the result)."""
        if rows.num_rows == 0 or not skipped:
            return rows
        oldest = pc.min(rows[SEQ_COLUMN]).as_py()
        keys = rows[self._key]
        suspects = segments_holding([s for s in skipped if s.max_seq > oldest],
                                    set(keys.to_pylist()))
        if not suspects:
            return rows
        fields = pa.schema([schema.field(self._key), schema.field(SEQ_COLUMN)]) \
            if self._key != SEQ_COLUMN else pa.schema([schema.field(SEQ_COLUMN)])
        versions = [rows.select(fields.names)]
        for segment in suspects:
            part = conform(self._read(segment, fields), fields)
            versions.append(part.filter(pc.is_in(part[self._key], value_set=keys)))
        newest = _newest(versions, self._key)
        return rows.filter(pc.is_in(rows[SEQ_COLUMN], value_set=newest[SEQ_COLUMN]))

    def _read(self, segment: Segment, fields: pa.Schema | None = None) -> pa.Table:
        assert self._reader is not None  # a partition has segments only with a reader
        return self._reader(segment, fields)

    def _key_schema(self, schema: pa.Schema) -> pa.Schema:
        names = dict.fromkeys((self._key, SEQ_COLUMN, DELETED_COLUMN))
        return pa.schema([schema.field(n) for n in names])

    def _cold_ready(self, schema: pa.Schema) -> bool:
        return self._cold is not None and self._cold[0].equals(schema, check_metadata=True)

    def _merged(self, schema: pa.Schema) -> pa.Table:
        hot = self._hot(schema)
        cold = self._cold_rows(schema)
        if cold is None or cold.num_rows == 0:
            return hot
        if hot.num_rows == 0:
            return cold
        table = pa.concat_tables([cold, hot])
        return latest_versions(table, self._key) if self._has_versions else table

    def _hot(self, schema: pa.Schema) -> pa.Table:
        if not self._chunks:
            return schema.empty_table()
        table = _concat([conform(c, schema) for c in self._chunks])
        if len(self._chunks) > 1:
            table = table.combine_chunks()
        if self._has_versions:
            table = latest_versions(table, self._key)
        # Keep the merged form (same rows, shadowed versions gone) unless ``schema`` lacks a
        # column some chunk has (a scan still running on a retired provider).
        wanted = _column_ids(schema)
        if all(_column_ids(c.schema) <= wanted for c in self._chunks):
            self._chunks = [table]
        return table

    def _cold_rows(self, schema: pa.Schema) -> pa.Table | None:
        if not self._segments or self._reader is None:
            return None
        if self._cold is not None and self._cold[0].equals(schema, check_metadata=True):
            return self._cold[1]
        parts = [conform(self._reader(s), schema) for s in self._segments]
        table = _concat(parts)
        if len(parts) > 1:
            table = latest_versions(table.combine_chunks(), self._key)
        self._cold = (schema, table)
        self._pruned_opens = 0
        return table

    # --- flush, compaction, recovery, eviction
    def hot_versions(self, schema: pa.Schema) -> pa.Table | None:
        """The newest hot version of every key (tombstones kept), or None when nothing is hot."""
        with self._lock:
            if not self._chunks:
                return None
            table = _concat([conform(c, schema) for c in self._chunks]).combine_chunks()
            return latest_versions(table, self._key)

    def cold_versions(self, schema: pa.Schema) -> pa.Table:
        """The newest cold version of every key (tombstones kept)."""
        with self._lock:
            cold = self._cold_rows(schema)
            return schema.empty_table() if cold is None else cold

    def attach(self, segments: list[Segment]) -> None:
        """Make segments known (on open); live keys are rebuilt when first needed."""
        with self._lock:
            self._segments = (*self._segments, *segments)
            self._cold = None
            self._live = None
            self._pruned_opens = 0
            self._drop_views()

    def flushed(self, segment: Segment, rows: pa.Table) -> None:
        """The hot rows became ``segment`` (holding ``rows``): same logical contents."""
        with self._lock:
            self._chunks = []
            self._has_versions = False
            self._segments = (*self._segments, segment)
            if self._cold is not None and self._cold[0].equals(rows.schema, check_metadata=True):
                merged = pa.concat_tables([self._cold[1], rows]).combine_chunks()
                self._cold = (self._cold[0], latest_versions(merged, self._key))
            else:
                self._cold = None

    def compacted(self, replaced: tuple[Segment, ...], segment: Segment | None,
                  rows: pa.Table) -> None:
        """``replaced`` segments became ``segment`` (None: nothing left) holding ``rows``."""
        with self._lock:
            kept = tuple(s for s in self._segments if s not in replaced)
            self._segments = kept if segment is None else (*kept, segment)
            self._cold = (rows.schema, rows) if not kept else None
            self._pruned_opens = 0
            self._drop_views()

    def evict_before(self, seq_floor: int) -> int:
        """Drop hot rows with ``_seq`` below ``seq_floor``; return how many went."""
        with self._lock:
            before = self.row_count
            kept = []
            for chunk in self._chunks:
                if chunk.num_rows and pc.min(chunk[SEQ_COLUMN]).as_py() < seq_floor:
                    chunk = chunk.filter(pc.greater_equal(chunk[SEQ_COLUMN], seq_floor))
                if chunk.num_rows:
                    kept.append(chunk)
            removed = before - sum(c.num_rows for c in kept)
            if removed:
                self._chunks = kept
                self._live = None
                self._drop_views()
            return removed
