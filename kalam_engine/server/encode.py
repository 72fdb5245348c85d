"""Arrow results -> KalamDB's JSON: type names for the schema and JSON-safe cells.

Int64/UInt64 (and ``_seq``) become strings, so JavaScript clients keep every digit;
timestamps stay raw integers in the column's unit; Decimal becomes a string; a 16-byte
binary (UUID) a hyphenated string; other binary an array of byte numbers."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pyarrow as pa

from kalam_engine.model.types import KALAM_TYPE_KEY

_SIMPLE_NAMES: list[tuple[Any, str]] = [
    (pa.types.is_boolean, "Boolean"),
    (pa.types.is_int8, "SmallInt"), (pa.types.is_int16, "SmallInt"),
    (pa.types.is_uint8, "SmallInt"), (pa.types.is_uint16, "Int"),
    (pa.types.is_int32, "Int"), (pa.types.is_uint32, "BigInt"),
    (pa.types.is_int64, "BigInt"), (pa.types.is_uint64, "BigInt"),
    (pa.types.is_float16, "Float"), (pa.types.is_float32, "Float"),
    (pa.types.is_float64, "Double"),
    (pa.types.is_string, "Text"), (pa.types.is_large_string, "Text"),
    (pa.types.is_string_view, "Text"),
    (pa.types.is_date, "Date"), (pa.types.is_time, "Time"),
]


def kalam_type(field: pa.Field) -> Any:
    """KalamDB's data_type for a result column: a name, or a one-key object."""
    t = field.type
    label = (field.metadata or {}).get(KALAM_TYPE_KEY)
    if pa.types.is_decimal(t):
        return {"Decimal": {"precision": t.precision, "scale": t.scale}}
    if pa.types.is_fixed_size_list(t) and pa.types.is_floating(t.value_type):
        return {"Embedding": t.list_size}
    if label and label.decode() in ("Json", "File", "Uuid", "DateTime", "Timestamp"):
        return label.decode()
    if pa.types.is_timestamp(t):
        return "DateTime" if t.tz else "Timestamp"
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return "Uuid"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) \
            or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return "Bytes"
    for check, name in _SIMPLE_NAMES:
        if check(t):
            return name
    return "Text"


def schema_json(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "data_type": kalam_type(f), "index": i}
            for i, f in enumerate(schema)]


def _cell_fn(t: pa.DataType) -> Any:
    """A function turning one Python value of Arrow type ``t`` (already as_py'd) to JSON."""
    if pa.types.is_integer(t) and t.bit_width == 64:
        return str
    if pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_date(t):
        return None  # handled on the raw integers, see _column_values
    if pa.types.is_decimal(t):
        return str
    if pa.types.is_floating(t):
        return _float
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return lambda v: str(uuid.UUID(bytes=v))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return list
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        inner = _cell_fn(t.value_type)
        if inner is None:
            return lambda v: v
        return lambda v: [None if x is None else inner(x) for x in v]
    return lambda v: v


def _float(v: float) -> Any:
    return v if math.isfinite(v) else str(v)  # JSON has no NaN/Infinity


def _column_values(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_date(t):
        width = pa.int32() if t in (pa.date32(), pa.time32("s"), pa.time32("ms")) else pa.int64()
        return col.cast(width).to_pylist()  # raw integers in the column's unit
    values = col.to_pylist()
    fn = _cell_fn(t)
    return [None if v is None else fn(v) for v in values]


def rows_as_arrays(table: pa.Table) -> list[list[Any]]:
    """Rows as arrays of cells in column order (POST /v1/api/sql)."""
    columns = [_column_values(table.column(i)) for i in range(table.num_columns)]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def rows_as_objects(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as ``{column: cell}`` objects (WebSocket frames)."""
    names = table.column_names
    columns = [_column_values(table.column(i)) for i in range(table.num_columns)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
