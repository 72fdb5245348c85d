"""Turn values a user supplied (from DataFusion, pandas or Arrow) into a column's stored type."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.model.errors import InvalidParameterError


def _embedding(values: pa.ChunkedArray | pa.Array, target: pa.DataType, name: str) -> pa.Array:
    dim = target.list_size
    out = []
    for v in values.to_pylist():
        if v is None:
            out.append(None)
            continue
        vec = json.loads(v) if isinstance(v, str) else list(v)
        if len(vec) != dim:
            raise InvalidParameterError(
                f"Column '{name}' expects EMBEDDING({dim}) but got a vector of {len(vec)} values")
        out.append([float(x) for x in vec])
    return pa.array(out, type=target)


def _uuid(values: pa.ChunkedArray | pa.Array, name: str) -> pa.Array:
    out = []
    for v in values.to_pylist():
        if v is None or isinstance(v, bytes):
            out.append(v)
            continue
        try:
            out.append(uuid.UUID(str(v)).bytes)
        except ValueError as exc:
            raise InvalidParameterError(f"Column '{name}': '{v}' is not a UUID") from exc
    return pa.array(out, type=pa.binary(16))


# a zone after the time of day: ...10:00Z, ...10:00:00.5+02:00, ...10:00-0500, ...10:00+02
_ZONE_SUFFIX = r"(?i)\d:\d{2}(:\d{2}(\.\d*)?)?\s*(z|[+-]\d{2}(:?\d{2})?)$"


def _zoned_timestamps(values: pa.ChunkedArray | pa.Array, target: pa.DataType
                      ) -> pa.Array | pa.ChunkedArray:
    """Timestamp texts for a column with a time zone (DATETIME): a text without a zone
    (``'2023-01-01 10:00:00'``) is read as UTC, as KalamDB does; one with an offset or ``Z`` is
    that instant."""
    has_zone = pc.fill_null(pc.match_substring_regex(values, _ZONE_SUFFIX), False)
    no_text = pa.scalar(None, values.type)
    zoned = pc.if_else(has_zone, values, no_text).cast(pa.timestamp(target.unit, tz="UTC"))
    naive = pc.if_else(has_zone, no_text, values).cast(pa.timestamp(target.unit))
    naive = pc.assume_timezone(naive, "UTC")
    return pc.if_else(has_zone, zoned, naive).cast(target, safe=False)


def coerce(values: pa.ChunkedArray | pa.Array, field: pa.Field) -> pa.Array | pa.ChunkedArray:
    """Cast ``values`` to ``field.type``; a value that does not fit raises a clear error."""
    target = field.type
    if values.type == target:
        return values
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), target)
    try:
        if pa.types.is_fixed_size_list(target):
            return _embedding(values, target, field.name)
        if pa.types.is_fixed_size_binary(target) and target.byte_width == 16:
            return _uuid(values, field.name)
        if pa.types.is_time(target) and pa.types.is_string(values.type):
            return pa.array([None if v is None else dt.time.fromisoformat(v)
                             for v in values.to_pylist()], type=target)
        if pa.types.is_timestamp(target) and target.tz is not None and \
                (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return _zoned_timestamps(values, target)
        if pa.types.is_timestamp(values.type) and pa.types.is_timestamp(target):
            if values.type.tz is None and target.tz is not None:
                values = pc.assume_timezone(values, target.tz)
            elif values.type.tz is not None and target.tz is None:
                values = values.cast(pa.timestamp(values.type.unit, tz="UTC")).cast(
                    pa.timestamp(values.type.unit))
            # Sub-microsecond digits (DataFusion's NOW() is in ns) are truncated, not refused.
            return values.cast(target, safe=False)
        if pa.types.is_string(target) and not (
                pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            if pa.types.is_binary(values.type):
                return values.cast(target)
            return pa.array([None if v is None else (json.dumps(v) if isinstance(v, (dict, list))
                              else str(v)) for v in values.to_pylist()], type=target)
        return values.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError,
            TypeError) as exc:
        raise InvalidParameterError(
            f"Column '{field.name}' cannot hold a value of type {values.type}: {exc}",
            hint=f"supply a value of type {target}") from exc
