"""TableProviderCore and BaseTableProvider: one provider object per table, shared by all users.

A provider holds only what belongs to the table (definition, Arrow schema, primary key,
defaults, its TableStore). Who is asking travels in the ExecutionContext of every call.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from kalam_engine.model.context import ExecutionContext, TableId, TableType
from kalam_engine.model.definitions import (
    DELETED_COLUMN,
    SEQ_COLUMN,
    ColumnDefault,
    TableDefinition,
)
from kalam_engine.model.errors import (
    ConstraintError,
    InvalidParameterError,
    RetiredProviderError,
)
from kalam_engine.model.ids import SnowflakeGenerator, ulid, uuid_v7
from kalam_engine.providers.coerce import coerce
from kalam_engine.storage.table_store import TableStore


def column_positions(names: list[str]) -> dict[str, int]:
    """Lower-cased column name -> position; a name given twice is refused."""
    positions = {name.lower(): i for i, name in enumerate(names)}
    if len(positions) != len(names):
        lowered = [name.lower() for name in names]
        raise InvalidParameterError(
            f"Column {next(n for n in lowered if lowered.count(n) > 1)!r} is given twice",
            hint="give each column once (names are case-insensitive)")
    return positions


@dataclass(frozen=True, slots=True)
class TableProviderCore:
    """What every provider type shares; built once when the table is registered."""

    table_id: TableId
    table_type: TableType
    definition: TableDefinition
    schema: pa.Schema  # stored schema: user columns + _seq + _deleted
    primary_key: str | None
    defaults: tuple[tuple[str, ColumnDefault], ...]
    not_null: frozenset[str]
    created_at: float
    storage_id: str | None

    @staticmethod
    def from_definition(definition: TableDefinition) -> TableProviderCore:
        return TableProviderCore(
            table_id=definition.table_id,
            table_type=definition.table_type,
            definition=definition,
            schema=definition.arrow_schema(),
            primary_key=definition.primary_key,
            defaults=tuple((c.name, c.default) for c in definition.columns if c.default),
            not_null=frozenset(c.name for c in definition.columns if not c.nullable),
            created_at=definition.created_at,
            storage_id=definition.options.storage_id,
        )

    @property
    def namespace(self) -> str:
        return self.table_id.namespace

    @property
    def table_name(self) -> str:
        return self.table_id.name

    @property
    def schema_version(self) -> int:
        return self.definition.schema_version


def _default_array(default: ColumnDefault, n: int, field: pa.Field, ctx: ExecutionContext,
                   seq: SnowflakeGenerator) -> pa.Array:
    if default.kind == "function":
        name = default.value
        if name == "SNOWFLAKE_ID":
            first = seq.next_range(n)
            return coerce(pa.array(range(first, first + n), pa.int64()), field)
        if name == "UUID_V7":
            return coerce(pa.array([uuid_v7() for _ in range(n)]), field)
        if name == "ULID":
            return coerce(pa.array([ulid() for _ in range(n)]), field)
        if name == "NOW":
            now = pa.scalar(int(time.time() * 1_000_000), pa.timestamp("us", tz="UTC"))
            return coerce(pa.array([now] * n, now.type), field)
        if name == "CURRENT_USER":
            return coerce(pa.array([ctx.user_id] * n, pa.string()), field)
    value = default.value
    return coerce(pa.array([value] * n), field) if value is not None else pa.nulls(n, field.type)


class BaseTableProvider(ABC):
    """One per table (per schema version). Stateless with respect to users and requests."""

    __slots__ = ("__weakref__", "_retired", "_seq", "_store", "core")

    def __init__(self, core: TableProviderCore, store: TableStore,
                 seq: SnowflakeGenerator) -> None:
        self.core = core
        self._store = store
        self._seq = seq
        self._retired: str | None = None

    # --- identity
    @property
    def table_id(self) -> TableId:
        return self.core.table_id

    @property
    def schema(self) -> pa.Schema:
        return self.core.schema

    @property
    def table_type(self) -> TableType:
        return self.core.table_type

    @property
    def store(self) -> TableStore:
        return self._store

    # --- lifecycle
    def retire(self, reason: str) -> None:
        """Called on ALTER/DROP: scans already running finish; new calls fail clearly."""
        self._retired = reason

    @property
    def retired(self) -> bool:
        return self._retired is not None

    def _check_live(self) -> None:
        if self._retired is not None:
            raise RetiredProviderError(
                f"The provider for table {self.table_id} (schema version "
                f"{self.core.schema_version}) was retired: {self._retired}",
                hint="get the current provider again, e.g. db.cache.get_provider(table_id)")

    # --- per-request scope and permissions ------------------------------------------------------
    @abstractmethod
    def scope(self, ctx: ExecutionContext) -> str:
        """The partition a request reads and writes."""

    def check_read(self, ctx: ExecutionContext) -> None:  # noqa: B027 - open by default
        """Raise PermissionDeniedError if ``ctx`` may not read this table."""

    def check_write(self, ctx: ExecutionContext) -> None:  # noqa: B027 - open by default
        """Raise PermissionDeniedError if ``ctx`` may not write this table."""

    # --- reads
    def _fresh(self, rows: pa.Table) -> pa.Table:
        """Hook for rows that expire (STREAM TTL); every read path goes through it."""
        return rows

    def visible_rows(self, ctx: ExecutionContext, *, include_deleted: bool = False) -> pa.Table:
        """The newest version of each of this request's rows."""
        self._check_live()
        self.check_read(ctx)
        return self._fresh(self._store.read(self.scope(ctx), self.core.schema,
                                            include_deleted=include_deleted))

    def read(self, ctx: ExecutionContext, projection: list[str] | None = None,
             filters: pds.Expression | None = None, limit: int | None = None,
             *, include_deleted: bool = False, exact: bool = True) -> pa.Table:
        """The rows ``ctx`` may see (the newest version of each row of its partition), as one
        Arrow table: the one read primitive. DataFusion's scans (prefetched or lazy, see
        ``query.session.request_rows``) and exports read through it; ``lookup`` is its
        primary-key equality case.

        With ``filters`` only the rows matching it come back, and the partition opens only the
        Parquet segments whose manifest statistics (primary key and ``_seq`` bounds) may match
        it (see ``Partition.read_filtered``). With ``exact=False`` other rows may come back too
        (the partition's cached view, as it is, when nothing was pruned): for callers that
        filter again, as DataFusion does with the whole WHERE."""
        if filters is None:
            rows = self.visible_rows(ctx, include_deleted=include_deleted)
        else:
            self._check_live()
            self.check_read(ctx)
            rows = self._fresh(self._store.read_filtered(
                self.scope(ctx), self.core.schema, filters, include_deleted=include_deleted,
                exact=exact or limit is not None))
        if projection is not None:
            rows = rows.select(projection)
        if limit is not None:
            rows = rows.slice(0, limit)
        return rows

    def lookup(self, ctx: ExecutionContext, key: pa.Scalar,
               projection: list[str] | None = None) -> pa.Table:
        """``read(ctx, projection, filters=<primary key> == key)`` (zero or one row), served
        from the partition's key index or only the segments whose key bounds hold ``key``;
        ``key`` has the key column's type."""
        self._check_live()
        self.check_read(ctx)
        rows = self._fresh(self._store.lookup(self.scope(ctx), self.core.schema, key))
        return rows if projection is None else rows.select(projection)

    # --- writes
    def _complete(self, ctx: ExecutionContext, batch: pa.Table, *, fill_defaults: bool,
                  deleted: bool = False) -> pa.Table:
        """Build full stored rows from ``batch``: coerce, fill defaults, check NOT NULL."""
        n = batch.num_rows
        supplied = column_positions(batch.column_names)
        schema = self.core.schema
        user_fields = [f for f in schema if f.name not in (SEQ_COLUMN, DELETED_COLUMN)]
        unknown = set(supplied) - {f.name for f in user_fields}
        if unknown:
            raise InvalidParameterError(
                f"Table {self.table_id} has no column {', '.join(sorted(unknown))}",
                hint=f"its columns are {', '.join(f.name for f in user_fields)}")
        defaults = dict(self.core.defaults)
        arrays = []
        for f in user_fields:
            idx = supplied.get(f.name)
            if idx is not None:
                arrays.append(coerce(batch.column(idx), f))
            elif fill_defaults and f.name in defaults:
                arrays.append(_default_array(defaults[f.name], n, f, ctx, self._seq))
            else:
                arrays.append(pa.nulls(n, f.type))
        if not deleted:
            for f, arr in zip(user_fields, arrays, strict=True):
                if f.name in self.core.not_null and arr.null_count:
                    row = pc.index(pc.is_null(arr), True).as_py() + 1
                    raise ConstraintError(
                        f"NOT NULL constraint violation: column '{f.name}' cannot be NULL "
                        f"(row {row})", hint="supply a value or give the column a DEFAULT")
        first = self._seq.next_range(n)
        arrays.append(pa.array(np.arange(first, first + n, dtype=np.int64)))
        arrays.append(pa.array(np.full(n, deleted, dtype=np.bool_)))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _key_values(self, rows: pa.Table) -> list:
        return rows[self._store.key_column].to_pylist()

    def insert(self, ctx: ExecutionContext, batch: pa.Table) -> int:
        """Insert new rows for this request's scope; all or nothing."""
        self._check_live()
        self.check_write(ctx)
        if batch.num_rows == 0:
            return 0
        scope = self.scope(ctx)
        pk = self.core.primary_key
        with self._store.write_lock:
            rows = self._complete_live(ctx, batch, fill_defaults=True)
            if pk is not None:
                keys = self._key_values(rows)
                unique = set(keys)
                if len(unique) != len(keys):
                    seen: set = set()
                    dup = next(k for k in keys if k in seen or seen.add(k))
                    raise ConstraintError(
                        f"Primary key violation: value '{dup}' appears multiple times in the "
                        f"insert batch for column '{pk}'", hint="give every row its own key")
                self._check_keys_free(scope, unique, pk)
            self._store.write(scope, self.core.schema_version, rows, "insert")
        return rows.num_rows

    def _complete_live(self, ctx: ExecutionContext, batch: pa.Table, *, fill_defaults: bool,
                       deleted: bool = False) -> pa.Table:
        """``_complete`` under the table's write lock: a provider that an ALTER or DROP
        retired (which happens under that lock) never writes, and the ``_seq`` the rows get
        orders this write after every write committed before it."""
        self._check_live()
        return self._complete(ctx, batch, fill_defaults=fill_defaults, deleted=deleted)

    def _check_keys_free(self, scope: str, keys: set, pk: str) -> None:
        taken = self._store.taken_keys(scope, self.core.schema, keys)
        if taken:
            raise ConstraintError(
                f"Primary key violation: value '{next(iter(taken))}' already exists in "
                f"column '{pk}'", hint="use UPDATE to change an existing row")

    def update(self, ctx: ExecutionContext, new_rows: pa.Table) -> int:
        """Write new versions of existing rows (``new_rows`` carries every user column)."""
        self._check_live()
        self.check_write(ctx)
        if new_rows.num_rows == 0:
            return 0
        with self._store.write_lock:
            rows = self._complete_live(ctx, new_rows, fill_defaults=False)
            self._store.write(self.scope(ctx), self.core.schema_version, rows, "update")
        return rows.num_rows

    def delete(self, ctx: ExecutionContext, old_rows: pa.Table) -> int:
        """Write tombstones for ``old_rows`` (their current values, keys included)."""
        self._check_live()
        self.check_write(ctx)
        if old_rows.num_rows == 0:
            return 0
        with self._store.write_lock:
            rows = self._complete_live(ctx, old_rows, fill_defaults=False, deleted=True)
            self._store.write(self.scope(ctx), self.core.schema_version, rows, "delete")
        return rows.num_rows
