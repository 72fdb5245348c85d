"""Is the file just read the segment its manifest row describes?

A read-only engine reads segments named by an older snapshot of the manifest; meanwhile the
writer may have replaced them and reused a path (``batch-N`` numbers restart when compaction
leaves a partition without segments, and DROP + CREATE reuses a table's directory). ``_seq``
values are unique, so the row count and the ``_seq`` range tell two files apart.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.model.definitions import SEQ_COLUMN
from kalam_engine.storage.manifest import Segment


class SegmentChanged(Exception):
    """The file on disk is not the segment the manifest row names (internal)."""


def check_segment(segment: Segment, rows: pa.Table) -> None:
    if rows.num_rows != segment.row_count:
        raise SegmentChanged(f"{rows.num_rows} rows where the catalog says {segment.row_count}")
    if SEQ_COLUMN not in rows.column_names or rows.num_rows == 0:
        return
    bounds = pc.min_max(rows[SEQ_COLUMN])
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if (low, high) != (segment.min_seq, segment.max_seq):
        raise SegmentChanged(f"_seq range {low}..{high} where the catalog says "
                             f"{segment.min_seq}..{segment.max_seq}")
