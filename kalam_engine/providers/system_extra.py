"""The rows of ``system.datatypes`` (every SQL type name with its KalamDataType and Arrow type)
and this package's version; the other system tables' rows are built from the open engine's
services in ``kalam_engine.handlers.system_tables``."""

from __future__ import annotations

import importlib.metadata

import pyarrow as pa

from kalam_engine.model.types import resolve_type, sql_type_names

LOCAL_NODE_ID = 1  # an embedded engine is one node


def version() -> str:
    try:
        return importlib.metadata.version("kalam-notebooks")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


# --- system.datatypes
_DESCRIPTIONS = {
    "Boolean": "true or false", "SmallInt": "16-bit integer", "Int": "32-bit integer",
    "BigInt": "64-bit integer", "Float": "32-bit floating point",
    "Double": "64-bit floating point", "Text": "UTF-8 text", "Bytes": "binary data",
    "Json": "JSON document stored as text", "Timestamp": "date and time, microseconds, no zone",
    "Date": "calendar date", "DateTime": "date and time, microseconds, UTC",
    "Time": "time of day, microseconds", "Uuid": "16-byte UUID",
    "File": "file reference (FileRef JSON)",
}
_PARAMETRIC = (("DECIMAL(p,s)", "Decimal128(p, s)",
                "exact decimal, precision 1..38, scale 0..precision (bare DECIMAL: 38,10)"),
               ("EMBEDDING(n)", "FixedSizeList(Float32, n)",
                "vector of n 32-bit floats, n 1..8192"))


_ARROW_NAMES = {pa.bool_(): "Boolean", pa.int16(): "Int16", pa.int32(): "Int32",
                pa.int64(): "Int64", pa.float32(): "Float32", pa.float64(): "Float64",
                pa.string(): "Utf8", pa.binary(): "Binary", pa.date32(): "Date32",
                pa.timestamp("us"): "Timestamp(Microsecond, None)",
                pa.timestamp("us", tz="UTC"): 'Timestamp(Microsecond, Some("UTC"))',
                pa.time64("us"): "Time64(Microsecond)", pa.binary(16): "FixedSizeBinary(16)"}


def datatypes_table() -> pa.Table:
    """Each SQL type name with its KalamDataType and Arrow type (Arrow's own names)."""
    rows = []
    for name in sql_type_names():
        kalam, arrow = resolve_type(name)
        rows.append((_ARROW_NAMES.get(arrow, str(arrow)), kalam, name,
                     _DESCRIPTIONS.get(kalam, "")))
    for written, arrow_name, description in _PARAMETRIC:
        rows.append((arrow_name, written.split("(")[0].title(), written, description))
    return pa.table({"arrow_type": [r[0] for r in rows], "kalam_type": [r[1] for r in rows],
                     "sql_name": [r[2] for r in rows], "description": [r[3] for r in rows]})
