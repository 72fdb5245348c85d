"""Which segments a read must open, decided from manifest statistics alone (no I/O).

A segment's manifest row states facts about every row it holds: ``min_seq <= _seq <= max_seq``
and, when the key's bounds were kept, ``min_pk <= key <= max_pk`` (keys are never NULL). A
segment whose facts contradict a filter holds no row that matches it. The reasoning over the
filter is Arrow's own: every segment becomes a fragment whose partition expression is its facts,
and ``Dataset.get_fragments(filter)`` keeps the fragments where the filter may still hold, which
covers equality, ``is_in``, ranges and their AND/OR combinations.

Skipping a segment is only half of a correct read: a skipped segment may still hold a *newer*
version of a row that was read. Callers check that (see ``Partition.read_filtered``).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Collection, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from pyarrow import fs

from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.storage.manifest import Segment

_FORMAT = pds.ParquetFileFormat()
_FILESYSTEM = fs.LocalFileSystem()  # fragments are never opened: only their facts are used


def _bound_fits(value: Any, arrow_type: pa.DataType) -> bool:
    """Whether a manifest bound orders like the column's current values (a column whose type
    changed since the segment was written may order differently: no key facts then)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return pa.types.is_integer(arrow_type)
    if isinstance(value, str):
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if isinstance(value, bytes):
        return pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)
    return False


def segment_facts(segment: Segment, key_field: pa.Field) -> pc.Expression:
    """What the manifest proves about every row of ``segment``, as an Arrow expression."""
    seq = pc.field(SEQ_COLUMN)
    facts = (seq >= segment.min_seq) & (seq <= segment.max_seq)
    lo, hi = segment.min_pk, segment.max_pk
    if (key_field.name != SEQ_COLUMN and _bound_fits(lo, key_field.type)
            and _bound_fits(hi, key_field.type)):
        try:
            low, high = pa.scalar(lo, key_field.type), pa.scalar(hi, key_field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return facts
        key = pc.field(key_field.name)
        facts = facts & (key >= low) & (key <= high)
    return facts


@functools.lru_cache(maxsize=4096)
def _fragment(segment: Segment, key_field: pa.Field) -> pds.Fragment:
    """A never-opened fragment standing for ``segment``, its facts as partition expression
    (cached: a segment's manifest row never changes)."""
    return _FORMAT.make_fragment(segment.path, _FILESYSTEM,
                                 partition_expression=segment_facts(segment, key_field))


def segments_for_filter(segments: Sequence[Segment], condition: pc.Expression,
                        schema: pa.Schema, key: str) -> list[Segment]:
    """The segments that may hold a row matching ``condition`` (all of them when Arrow cannot
    bind it to ``schema``). ``key`` is the partition's key column (the primary key or _seq)."""
    if not segments:
        return []
    if not isinstance(condition, pc.Expression) or schema.get_field_index(key) < 0:
        return list(segments)
    key_field = schema.field(key)
    by_path = {s.path: s for s in segments}
    fragments = [_fragment(s, key_field) for s in segments]
    dataset = pds.FileSystemDataset(fragments, schema, _FORMAT, _FILESYSTEM)
    try:
        kept = {f.path for f in dataset.get_fragments(filter=condition)}
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return list(segments)
    return [by_path[p] for p in by_path if p in kept]


def segments_holding(segments: Sequence[Segment], keys: Collection[Any]) -> list[Segment]:
    """The segments whose key bounds may hold one of ``keys`` (the keys share one type)."""
    if not keys:
        return []
    try:
        ordered = sorted(keys)
    except TypeError:  # keys that do not order (mixed or NULL): test each one
        return [s for s in segments if any(s.may_hold(k) for k in keys)]
    kind = type(ordered[0])
    out = []
    for s in segments:
        lo, hi = s.min_pk, s.max_pk
        if lo is None or hi is None or type(lo) is not kind or type(hi) is not kind:
            out.append(s)
            continue
        i = bisect_left(ordered, lo)
        if i < len(ordered) and ordered[i] <= hi:
            out.append(s)
    return out
