"""KalamDB data types: SQL type names -> KalamDataType -> Arrow (semantics reference 1.4)."""

from __future__ import annotations

import re

import pyarrow as pa

from kalam_engine.model.errors import InvalidParameterError

KALAM_TYPE_KEY = b"kalam_data_type"
_PARAM_TYPE = re.compile(r"^([A-Z0-9_ ]+?)\s*(?:\((.*)\))?$")

_SIMPLE: dict[str, tuple[str, pa.DataType]] = {
    "BOOLEAN": ("Boolean", pa.bool_()),
    "BOOL": ("Boolean", pa.bool_()),
    "SMALLINT": ("SmallInt", pa.int16()),
    "INT2": ("SmallInt", pa.int16()),
    "INT": ("Int", pa.int32()),
    "INTEGER": ("Int", pa.int32()),
    "INT4": ("Int", pa.int32()),
    "MEDIUMINT": ("Int", pa.int32()),
    "BIGINT": ("BigInt", pa.int64()),
    "INT8": ("BigInt", pa.int64()),
    "FLOAT": ("Float", pa.float32()),
    "REAL": ("Float", pa.float32()),
    "FLOAT4": ("Float", pa.float32()),
    "DOUBLE": ("Double", pa.float64()),
    "DOUBLE PRECISION": ("Double", pa.float64()),
    "FLOAT8": ("Double", pa.float64()),
    "TEXT": ("Text", pa.string()),
    "VARCHAR": ("Text", pa.string()),
    "CHAR": ("Text", pa.string()),
    "CHARACTER VARYING": ("Text", pa.string()),
    "STRING": ("Text", pa.string()),
    "NVARCHAR": ("Text", pa.string()),
    "CLOB": ("Text", pa.string()),
    "BYTES": ("Bytes", pa.binary()),
    "BINARY": ("Bytes", pa.binary()),
    "VARBINARY": ("Bytes", pa.binary()),
    "BLOB": ("Bytes", pa.binary()),
    "BYTEA": ("Bytes", pa.binary()),
    "JSON": ("Json", pa.string()),
    "JSONB": ("Json", pa.string()),
    "TIMESTAMP": ("Timestamp", pa.timestamp("us")),
    "DATE": ("Date", pa.date32()),
    "DATETIME": ("DateTime", pa.timestamp("us", tz="UTC")),
    "TIME": ("Time", pa.time64("us")),
    "UUID": ("Uuid", pa.binary(16)),
    "FILE": ("File", pa.string()),
    "ARRAY": ("Text", pa.string()),
    "ENUM": ("Text", pa.string()),
    "SET": ("Text", pa.string()),
    "STRUCT": ("Text", pa.string()),
}
# Types that take a length we ignore (VARCHAR(255), CHAR(3), ...)
_LENGTH_IGNORED = {"VARCHAR", "CHAR", "NVARCHAR", "CHARACTER VARYING", "BINARY", "VARBINARY",
                   "TEXT", "STRING", "FLOAT", "TIMESTAMP", "DATETIME", "TIME", "ENUM", "SET"}
SERIAL_TYPES = {"SERIAL": "INT", "SMALLSERIAL": "SMALLINT", "BIGSERIAL": "BIGINT"}


def normalize_type_name(text: str) -> str:
    return " ".join(text.strip().upper().split())


def resolve_type(type_text: str) -> tuple[str, pa.DataType]:
    """Map a SQL type as written to (KalamDataType label, Arrow type)."""
    norm = normalize_type_name(type_text)
    match = _PARAM_TYPE.match(norm)
    if not match:
        raise InvalidParameterError(f"Unknown data type '{type_text}'",
                                    hint="use a type such as TEXT, BIGINT, DOUBLE, TIMESTAMP")
    base, args = match.group(1).strip(), match.group(2)
    if base in SERIAL_TYPES:
        base = SERIAL_TYPES[base]
    if base in ("DECIMAL", "NUMERIC"):
        precision, scale = 38, 10
        if args:
            parts = [p.strip() for p in args.split(",")]
            try:
                precision = int(parts[0])
                scale = int(parts[1]) if len(parts) > 1 else 0
            except ValueError as exc:
                raise InvalidParameterError(f"Bad DECIMAL arguments '{args}'") from exc
        if not 1 <= precision <= 38 or not 0 <= scale <= precision:
            raise InvalidParameterError(
                f"DECIMAL({precision},{scale}) is out of range",
                hint="precision must be 1..38 and scale 0..precision")
        return f"Decimal({precision},{scale})", pa.decimal128(precision, scale)
    if base == "EMBEDDING":
        try:
            dim = int(args or "")
        except ValueError as exc:
            raise InvalidParameterError("EMBEDDING needs a dimension, e.g. EMBEDDING(384)") from exc
        if not 1 <= dim <= 8192:
            raise InvalidParameterError(f"EMBEDDING({dim}) is out of range",
                                        hint="the dimension must be 1..8192")
        return f"Embedding({dim})", pa.list_(pa.float32(), dim)
    if base in _SIMPLE and (args is None or base in _LENGTH_IGNORED):
        return _SIMPLE[base]
    if base.endswith("TEXT") or base.endswith("STRING"):
        return "Text", pa.string()
    raise InvalidParameterError(
        f"Unknown data type '{type_text}'",
        hint="use a type such as TEXT, BIGINT, DOUBLE, TIMESTAMP, JSON, EMBEDDING(n)")


def sql_type_names() -> list[str]:
    """The SQL type names ``resolve_type`` knows without arguments (system.datatypes)."""
    return [*_SIMPLE, *SERIAL_TYPES]
