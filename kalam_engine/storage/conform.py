"""Bring Arrow data written under an older schema version to the current one, by column id."""

from __future__ import annotations

import pyarrow as pa

from kalam_engine.model.definitions import COLUMN_ID_KEY


def _column_id(field: pa.Field) -> bytes | None:
    return field.metadata.get(COLUMN_ID_KEY) if field.metadata else None


def column_key(field: pa.Field) -> bytes:
    """What identifies a column across schema versions: its column id, else its name."""
    cid = _column_id(field)
    return cid if cid is not None else field.name.encode()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s fields: matched by column id (so renames keep
    their data), cast when a type changed, null-filled when the column is newer than the data."""
    if table.schema.equals(schema, check_metadata=True):
        return table
    by_id = {}
    for i, f in enumerate(table.schema):
        cid = _column_id(f)
        by_id[cid if cid is not None else f.name.encode()] = i
    arrays = []
    for f in schema:
        cid = _column_id(f)
        idx = by_id.get(cid if cid is not None else f.name.encode())
        if idx is None:
            arrays.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(idx)
        arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
