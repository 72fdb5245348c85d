"""Arrow rows into a KalamDB server table as parameterised ``INSERT ... VALUES ($1, $2), ...``.

Values never enter the SQL text: each becomes a ``$n`` parameter. KalamDB's HTTP API takes at
most 50 parameters of at most 512 KB each, and parameters only with a single statement, so a
frame goes in batches of ``50 // columns`` rows (fewer when a batch's JSON would pass
``MAX_REQUEST_BYTES``). Each batch is one statement and so atomic on the server, but a frame
that needs several batches is not: every value is checked before the first request, and if a
later batch fails anyway (e.g. a duplicate primary key), the error says how many rows landed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kalam_engine.model.errors import InvalidParameterError, KalamError, UnsupportedError

if TYPE_CHECKING:
    from kalam_jupyter.remote import RemoteClient

__all__ = ["MAX_PARAMS", "MAX_PARAM_BYTES", "MAX_REQUEST_BYTES", "batches", "insert_rows"]

MAX_PARAMS = 50  # KalamDB: at most 50 params per request
MAX_PARAM_BYTES = 512 * 1024  # ... each at most 512 KB
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # below kalam serve's 10 MiB body limit


def _check_types(data: pa.Table) -> None:
    for field in data.schema:
        t = field.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) \
                or pa.types.is_fixed_size_binary(t) or pa.types.is_list(t) \
                or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t) \
                or pa.types.is_struct(t) or pa.types.is_map(t):
            raise UnsupportedError(
                f"column {field.name!r} ({t}) cannot be sent to a server: the HTTP API's "
                "parameters are only null, booleans, numbers and strings",
                hint="load it with an embedded engine, or convert the column to text")


def _param(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):  # datetime, date, time: ISO text the server converts
        return isoformat()
    return str(value)  # Decimal


def _rows(data: pa.Table) -> list[list[Any]]:
    columns = [[_param(v) for v in data.column(i).to_pylist()]
               for i in range(data.num_columns)]
    rows = [list(row) for row in zip(*columns, strict=True)]
    for number, row in enumerate(rows):
        for name, value in zip(data.column_names, row, strict=True):
            if isinstance(value, str) and len(value.encode("utf-8")) > MAX_PARAM_BYTES:
                raise InvalidParameterError(
                    f"row {number}, column {name!r} holds more than {MAX_PARAM_BYTES} bytes, "
                    "the most a server takes in one parameter",
                    hint="shorten the value, or store it in a FILE column")
    return rows


def batches(rows: list[list[Any]], width: int) -> Iterator[list[list[Any]]]:
    """``rows`` in groups of at most ``MAX_PARAMS // width`` rows and ~MAX_REQUEST_BYTES."""
    per_batch = MAX_PARAMS // width
    batch: list[list[Any]] = []
    size = 0
    for row in rows:
        row_size = len(json.dumps(row, default=str))
        if batch and (len(batch) == per_batch or size + row_size > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


def insert_sql(table: str, columns: list[str], rows: int) -> str:
    """``INSERT INTO table (cols) VALUES ($1, $2), ($3, $4)`` for ``rows`` rows."""
    width = len(columns)
    groups = (", ".join(f"${r * width + c + 1}" for c in range(width)) for r in range(rows))
    values = ", ".join(f"({g})" for g in groups)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"


def insert_rows(client: RemoteClient, table: str, data: pa.Table) -> int:
    """Insert ``data`` (checked against the table) into ``table``; the rows inserted."""
    if data.num_rows == 0:
        return 0
    width = data.num_columns
    if width == 0 or width > MAX_PARAMS:
        raise UnsupportedError(
            f"a server takes at most {MAX_PARAMS} parameters per statement; these rows have "
            f"{width} columns" if width else "the frame has no columns to insert",
            hint="insert fewer columns at a time (the others take their defaults)")
    _check_types(data)
    rows = _rows(data)
    done = 0
    for batch in batches(rows, width):
        params = [value for row in batch for value in row]
        try:
            result = client.execute(insert_sql(table, data.column_names, len(batch)),
                                    params=params)
        except KalamError as exc:
            if done == 0:
                raise
            raise _partial(exc, done, len(rows)) from None
        done += result.row_count
    return done


def _partial(exc: KalamError, done: int, total: int) -> KalamError:
    from kalam_jupyter.remote import server_error

    return server_error(
        exc.code, f"{exc.message} ({done} of {total} rows, the frame's first {done}, were "
                  "inserted before this batch failed; the rest were not)",
        f"fix the cause, then insert the rest: df.iloc[{done}:].kalam.insert(...)")
