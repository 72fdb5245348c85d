"""``df.kalam``: load a DataFrame into a Kalam table, or create a table from its dtypes.

The accessor is stateless: every call names its table and finds its backend (``db=``, else the
``%kalam`` magics' engine or server connection). It checks the frame against the table's
definition (``backend.table_definition``: the engine's own types, NOT NULL and defaults) so
that bad input gets a clear message before anything is written. An embedded engine loads the
rows in one all-or-nothing ``insert_arrow``; a server gets parameterised INSERT batches (see
:mod:`kalam_jupyter.remote_insert`).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.model.definitions import ColumnDefinition, TableDefinition
from kalam_engine.model.errors import (
    InvalidParameterError,
    KalamError,
    TableNotFoundError,
)
from kalam_jupyter.backend import KalamBackend

__all__ = ["KalamAccessor", "arrow_to_sql_type"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYSTEM_COLUMNS = {"_seq", "_deleted"}
# KalamDB types whose values the accessor checks against the column's Arrow type before
# writing; the others (DECIMAL, JSON, UUID, EMBEDDING, BYTES, TIME, FILE) the engine checks.
_CHECKED_TYPES = frozenset({"Boolean", "SmallInt", "Int", "BigInt", "Float", "Double", "Text",
                            "Timestamp", "DateTime", "Date"})


def arrow_to_sql_type(t: pa.DataType, column: str = "?") -> str:
    """The KalamDB column type for an Arrow type (as pandas dtypes become through Arrow)."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        if t.bit_width <= 16 and pa.types.is_signed_integer(t):
            return "SMALLINT"
        if t.bit_width <= 16 or (t.bit_width == 32 and pa.types.is_signed_integer(t)):
            return "INT"
        return "BIGINT"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "TEXT"
    if pa.types.is_dictionary(t):
        return arrow_to_sql_type(t.value_type, column)
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BYTES"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_null(t):
        raise InvalidParameterError(
            f"column {column!r} holds only nulls, so its type cannot be inferred",
            hint="give it a dtype, e.g. df[col] = df[col].astype('string')",
        )
    raise InvalidParameterError(f"column {column!r} has type {t}, which Kalam cannot store")


def _resolve_db(db: KalamBackend | None) -> KalamBackend:
    if db is not None:
        return db
    from kalam_jupyter.magics import current_engine

    engine = current_engine()
    if engine is None:
        raise KalamError(
            "no Kalam engine: pass db=kalam_engine.connect(...)",
            hint="or run %load_ext kalam_jupyter so that the magics' engine is used",
        )
    return engine


def _check_text(value: Any, what: str, example: str) -> None:
    if not isinstance(value, str):
        raise InvalidParameterError(f"{what} must be a string, not {type(value).__name__}",
                                    hint=f"e.g. {example}")


def _check_table_name(table: str) -> tuple[str, str]:
    _check_text(table, "the table name", "'app.messages'")
    parts = table.split(".")
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        raise InvalidParameterError(
            f"table name {table!r} must have the form namespace.table",
            hint="e.g. 'app.messages'",
        )
    return parts[0].lower(), parts[1].lower()


def _definition(db: KalamBackend, table: str) -> TableDefinition:
    """The table's definition; TableNotFoundError names close matches."""
    ns, name = _check_table_name(table)
    try:
        return db.table_definition(f"{ns}.{name}")
    except TableNotFoundError:
        snapshot = db.catalog_snapshot() or {}
        known = [f"{n}.{t}" for n, ts in snapshot.items() for t in ts]
        close = difflib.get_close_matches(f"{ns}.{name}", known, n=3, cutoff=0.6)
        raise TableNotFoundError(
            f"table {ns}.{name} does not exist",
            hint=f"did you mean {', '.join(close)}?" if close else "create it first",
        ) from None


def _null_rows(series: pd.Series) -> list[Any]:
    return list(series.index[series.isna()][:5])


def _check_names(table: str, payload: list[str], declared: dict[str, ColumnDefinition]) -> None:
    unknown = [n for n in payload if n not in declared]
    if unknown:
        close = {u: difflib.get_close_matches(u, list(declared), n=1, cutoff=0.6)
                 for u in unknown}
        guesses = [f"{u} -> {c[0]}" for u, c in close.items() if c]
        raise InvalidParameterError(
            f"{table} has no column(s) {', '.join(unknown)}",
            hint=("did you mean " + ", ".join(guesses) + "? ") * bool(guesses)
            + f"columns: {', '.join(declared)}",
        )


def _checked_column(col: pa.ChunkedArray, column: ColumnDefinition) -> pa.ChunkedArray:
    """``col`` as the column's Arrow type (checked types only; the others as they are)."""
    if column.kalam_type not in _CHECKED_TYPES:
        return col
    target = column.arrow_field().type
    name, declared = column.name, column.sql_type
    if col.type == target or pa.types.is_null(col.type):
        return col
    if pa.types.is_string(target) and not (
        pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    ):
        raise InvalidParameterError(
            f"column {name!r} is {col.type} but the table declares {declared}",
            hint=f"convert it with df[{name!r}].astype(str)",
        )
    try:
        return pc.cast(col, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidParameterError(
            f"column {name!r} ({col.type}) does not fit the declared type {declared}: {exc}",
            hint="convert the column with astype() or fix the bad values",
        ) from None


def _column_defs(schema: pa.Schema, primary_key: str | None, user_column: str | None,
                 not_null: tuple[str, ...] | list[str]) -> list[str]:
    """``name TYPE [PRIMARY KEY | NOT NULL]`` per frame column (and an auto id key)."""
    defs: list[str] = []
    for field in schema:
        if field.name == user_column:
            continue
        if not _IDENT.match(field.name) or field.name.lower() in _SYSTEM_COLUMNS:
            raise InvalidParameterError(
                f"column name {field.name!r} is not a plain identifier (or is reserved)",
                hint="rename it, e.g. df.rename(columns={...})",
            )
        col = f"{field.name} {arrow_to_sql_type(field.type, field.name)}"
        if field.name == primary_key:
            col += " PRIMARY KEY"
        elif field.name in not_null:
            col += " NOT NULL"
        defs.append(col)
    if primary_key is not None and primary_key not in schema.names:
        if not _IDENT.match(primary_key):
            raise InvalidParameterError(f"primary_key {primary_key!r} is not an identifier")
        defs.insert(0, f"{primary_key} BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID()")
    return defs


def _table_options(access_level: str | None, ttl_seconds: int | None) -> list[str]:
    """The ``WITH (...)`` options of ``create_table``'s arguments, checked."""
    options = []
    if access_level is not None:
        _check_text(access_level, "access_level", "access_level='public'")
        if access_level.upper() not in {"PUBLIC", "PRIVATE", "RESTRICTED", "DBA"}:
            raise InvalidParameterError(
                f"access_level {access_level!r} is not one of public, private, restricted, dba"
            )
        options.append(f"ACCESS_LEVEL='{access_level.upper()}'")
    if ttl_seconds is not None:
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
            raise InvalidParameterError(
                f"ttl_seconds must be a whole number of seconds, not {ttl_seconds!r}",
                hint="e.g. ttl_seconds=3600")
        options.append(f"TTL_SECONDS={ttl_seconds}")
    return options


@pd.api.extensions.register_dataframe_accessor("kalam")
class KalamAccessor:
    """``df.kalam.insert(...)`` and ``df.kalam.create_table(...)``."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._df = frame

    # -- insert -----------------------------------------------------------------------------

    def insert(
        self,
        table: str,
        *,
        user: str | None = None,
        user_column: str | None = None,
        db: KalamBackend | None = None,
    ) -> int:
        """Insert every row into ``table``; returns the count. Embedded: one all-or-nothing
        bulk load. Server: parameterised INSERT batches, each atomic (see the README).

        ``user`` writes as that user (USER tables: into their partition). ``user_column`` names
        a column holding each row's user id, so one call loads many users' partitions.
        """
        if user is not None and user_column is not None:
            raise InvalidParameterError("pass either user= or user_column=, not both")
        backend = _resolve_db(db)
        definition = _definition(backend, table)
        arrow = self.to_arrow(table, definition=definition, user_column=user_column)
        if arrow.num_rows == 0:
            return 0
        name = str(definition.table_id)
        if user_column is not None:
            return int(backend.insert_arrow(name, arrow, user_column=user_column))
        return int(backend.insert_arrow(name, arrow, user=user))

    def to_arrow(
        self,
        table: str,
        *,
        definition: TableDefinition,
        user_column: str | None = None,
    ) -> pa.Table:
        """Check the frame against ``definition`` and convert it to Arrow."""
        names = [str(c) for c in self._df.columns]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise InvalidParameterError(f"duplicate column name(s) in the frame: {dup}")
        declared = {c.name: c for c in definition.columns}
        if user_column is not None:
            self._check_user_column(user_column, names)
        payload = [n for n in names if n != user_column or n in declared]
        _check_names(table, payload, declared)
        self._check_not_null(table, payload, declared)
        arrow = self._arrow()
        for name in payload:
            index = arrow.column_names.index(name)
            arrow = arrow.set_column(index, arrow.field(index).name,
                                     _checked_column(arrow.column(index), declared[name]))
        return arrow

    def _check_user_column(self, user_column: str, names: list[str]) -> None:
        if user_column not in names:
            raise InvalidParameterError(
                f"user_column {user_column!r} is not a column of the frame",
                hint=f"frame columns: {', '.join(names)}",
            )
        bad = _null_rows(self._df[user_column])
        if bad:
            raise InvalidParameterError(
                f"user_column {user_column!r} is empty in row(s) {bad}",
                hint="every row needs the id of the user it belongs to",
            )

    def _check_not_null(self, table: str, payload: list[str],
                        declared: dict[str, ColumnDefinition]) -> None:
        missing = [name for name, c in declared.items()
                   if name not in payload and not c.nullable and c.default is None]
        if missing:
            raise InvalidParameterError(
                f"missing NOT NULL column(s) without a default: {', '.join(missing)}",
                hint=f"add them to the frame before inserting into {table}",
            )
        for name in payload:
            bad = [] if declared[name].nullable else _null_rows(self._df[name])
            if bad:
                raise InvalidParameterError(
                    f"column {name!r} is NOT NULL but is empty (NaN/None) in row(s) {bad}",
                    hint="fill or drop those rows first (df.dropna / df.fillna)",
                )

    def _arrow(self) -> pa.Table:
        try:
            return pa.Table.from_pandas(self._df, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                ValueError, TypeError, OverflowError) as exc:
            raise InvalidParameterError(
                f"the frame cannot be converted to Arrow: {exc}",
                hint="a column mixes types; convert it with astype() first",
            ) from None

    # -- create table -----------------------------------------------------------------------

    def create_table(
        self,
        table: str,
        *,
        table_type: str = "user",
        primary_key: str | None = None,
        user_column: str | None = None,
        not_null: tuple[str, ...] | list[str] = (),
        if_not_exists: bool = False,
        access_level: str | None = None,
        ttl_seconds: int | None = None,
        db: KalamBackend | None = None,
    ) -> str:
        """Create ``table`` with one column per frame column (types from the dtypes).

        ``primary_key`` names a frame column, or a new ``BIGINT DEFAULT SNOWFLAKE_ID()`` column
        when the frame has none of that name. ``user_column`` is left out of the table (it is
        the routing key for ``insert(user_column=...)``). Returns the engine's message.
        """
        ns, name = _check_table_name(table)
        _check_text(table_type, "table_type", "table_type='user'")
        kind = table_type.strip().upper()
        if kind not in {"USER", "SHARED", "STREAM"}:
            raise InvalidParameterError(
                f"table_type must be 'user', 'shared' or 'stream', not {table_type!r}"
            )
        if primary_key is None and kind != "STREAM":
            raise InvalidParameterError(
                f"{kind} tables need a primary key: pass primary_key='<column>'",
                hint="a name that is not a frame column becomes an auto id (SNOWFLAKE_ID())",
            )
        if primary_key is not None:
            _check_text(primary_key, "primary_key", "primary_key='id'")
        try:
            schema = pa.Schema.from_pandas(self._df, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError,
                TypeError, OverflowError) as exc:
            raise InvalidParameterError(
                f"cannot infer column types: {exc}",
                hint="give every column a unique name and one type (astype())") from None
        defs = _column_defs(schema, primary_key, user_column, not_null)
        options = _table_options(access_level, ttl_seconds)
        sql = (
            f"CREATE {kind} TABLE {'IF NOT EXISTS ' if if_not_exists else ''}{ns}.{name} "
            f"({', '.join(defs)})"
        )
        if options:
            sql += f" WITH ({', '.join(options)})"
        result = _resolve_db(db).execute(sql)
        return str(result.message or f"Table {ns}.{name} created")
