"""System tables (``system.*``): read-only views of the catalog, built per scan from the catalog.

Reading them needs role dba or system; no role may write them.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.dataset as pds

from kalam_engine.model.context import ExecutionContext, Role, TableId, TableType
from kalam_engine.model.definitions import ColumnDefinition, TableDefinition
from kalam_engine.model.errors import PermissionDeniedError
from kalam_engine.providers.core import BaseTableProvider, TableProviderCore

SYSTEM_NAMESPACE = "system"
RowsBuilder = Callable[[ExecutionContext], pa.Table]

_SQL_NAMES = {pa.string(): ("TEXT", "Text"), pa.int64(): ("BIGINT", "BigInt"),
              pa.int32(): ("INT", "Int"), pa.bool_(): ("BOOLEAN", "Boolean"),
              pa.float64(): ("DOUBLE", "Double"),
              pa.timestamp("us", tz="UTC"): ("DATETIME", "DateTime")}


def system_definition(name: str, schema: pa.Schema, primary_key: str | None) -> TableDefinition:
    cols = tuple(
        ColumnDefinition(name=f.name, column_id=i, sql_type=_SQL_NAMES[f.type][0],
                         kalam_type=_SQL_NAMES[f.type][1], nullable=f.name != primary_key,
                         primary_key=f.name == primary_key)
        for i, f in enumerate(schema))
    return TableDefinition(TableId(SYSTEM_NAMESPACE, name), TableType.SYSTEM, cols,
                           created_at=0.0, updated_at=0.0, next_column_id=len(cols))


class SystemTableProvider(BaseTableProvider):
    __slots__ = ("_builder", "_schema")

    def __init__(self, definition: TableDefinition, schema: pa.Schema,
                 builder: RowsBuilder) -> None:
        super().__init__(TableProviderCore.from_definition(definition), None, None)  # type: ignore[arg-type]
        self._schema = schema
        self._builder = builder

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def scope(self, ctx: ExecutionContext) -> str:
        return ""

    def check_read(self, ctx: ExecutionContext) -> None:
        if ctx.role < Role.DBA:
            raise PermissionDeniedError(
                f"Role '{ctx.role.label}' may not read system table {self.table_id}",
                hint="system tables need role dba or system; SHOW TABLES and DESCRIBE TABLE "
                     "are open to everyone")

    def check_write(self, ctx: ExecutionContext) -> None:
        raise PermissionDeniedError(f"Cannot write system table '{self.table_id}'",
                                    hint="system tables are read-only; use the SQL commands")

    def visible_rows(self, ctx: ExecutionContext, *, include_deleted: bool = False) -> pa.Table:
        self._check_live()
        self.check_read(ctx)
        return self._builder(ctx).cast(self._schema)

    def read(self, ctx: ExecutionContext, projection: list[str] | None = None,
             filters: pds.Expression | None = None, limit: int | None = None,
             *, include_deleted: bool = False, exact: bool = True) -> pa.Table:
        rows = self.visible_rows(ctx)
        if filters is not None:
            rows = rows.filter(filters)
        if projection is not None:
            rows = rows.select(projection)
        if limit is not None:
            rows = rows.slice(0, limit)
        return rows

    def insert(self, ctx: ExecutionContext, batch: pa.Table) -> int:
        self.check_write(ctx)
        return 0

    def update(self, ctx: ExecutionContext, new_rows: pa.Table) -> int:
        self.check_write(ctx)
        return 0

    def delete(self, ctx: ExecutionContext, old_rows: pa.Table) -> int:
        self.check_write(ctx)
        return 0
