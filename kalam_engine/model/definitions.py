"""Table definitions: columns, options and schema versions, with their JSON form for the catalog."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pyarrow as pa

from kalam_engine.model.context import AccessLevel, TableId, TableType
from kalam_engine.model.types import KALAM_TYPE_KEY, resolve_type

SEQ_COLUMN = "_seq"
DELETED_COLUMN = "_deleted"
SYSTEM_COLUMNS = (SEQ_COLUMN, DELETED_COLUMN)
COLUMN_ID_KEY = b"kalam_column_id"

# DEFAULT kinds: ("function", NAME) for the recognised functions, ("literal", value) otherwise.
DEFAULT_FUNCTIONS = ("SNOWFLAKE_ID", "UUID_V7", "ULID", "NOW", "CURRENT_USER")


@dataclass(frozen=True, slots=True)
class ColumnDefault:
    kind: str  # "function" | "literal"
    value: Any  # function name, or the literal value (None for NULL)

    def describe(self) -> str:
        if self.kind == "function":
            return f"{self.value}()"
        if self.value is None:
            return "NULL"
        if isinstance(self.value, str):
            return "'" + self.value.replace("'", "''") + "'"
        return str(self.value).upper() if isinstance(self.value, bool) else str(self.value)


@dataclass(frozen=True, slots=True)
class ColumnDefinition:
    name: str
    column_id: int
    sql_type: str  # as written (normalised), e.g. "BIGINT", "DECIMAL(10,2)"
    kalam_type: str
    nullable: bool = True
    primary_key: bool = False
    default: ColumnDefault | None = None
    comment: str | None = None

    def arrow_field(self) -> pa.Field:
        _, arrow_type = resolve_type(self.sql_type)
        meta = {KALAM_TYPE_KEY: self.kalam_type.encode(),
                COLUMN_ID_KEY: str(self.column_id).encode()}
        # Stored fields are nullable: tombstones and schema evolution need it. NOT NULL is
        # enforced at write time.
        return pa.field(self.name, arrow_type, nullable=True, metadata=meta)


@dataclass(frozen=True, slots=True)
class TableOptions:
    storage_id: str = "local"
    flush_rows: int | None = None
    flush_interval_s: int | None = None
    ttl_seconds: int | None = None
    access_level: AccessLevel | None = None
    use_user_storage: bool = False
    deleted_retention_hours: int | None = None
    vector_indexes: tuple[tuple[str, str], ...] = ()  # (EMBEDDING column, metric)

    def flush_policy_text(self) -> str | None:
        parts = []
        if self.flush_rows is not None:
            parts.append(f"rows:{self.flush_rows}")
        if self.flush_interval_s is not None:
            parts.append(f"interval:{self.flush_interval_s}")
        return ",".join(parts) or None


@dataclass(frozen=True, slots=True)
class TableDefinition:
    table_id: TableId
    table_type: TableType
    columns: tuple[ColumnDefinition, ...]
    options: TableOptions = field(default_factory=TableOptions)
    schema_version: int = 1
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    comment: str | None = None
    next_column_id: int = 0

    @property
    def primary_key(self) -> str | None:
        for col in self.columns:
            if col.primary_key:
                return col.name
        return None

    def column(self, name: str) -> ColumnDefinition | None:
        lname = name.lower()
        for col in self.columns:
            if col.name == lname:
                return col
        return None

    def user_column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        """Stored schema: the user columns, then _seq and _deleted."""
        fields = [c.arrow_field() for c in self.columns]
        fields.append(pa.field(SEQ_COLUMN, pa.int64(), nullable=False,
                               metadata={KALAM_TYPE_KEY: b"BigInt", COLUMN_ID_KEY: b"-1"}))
        fields.append(pa.field(DELETED_COLUMN, pa.bool_(), nullable=False,
                               metadata={KALAM_TYPE_KEY: b"Boolean", COLUMN_ID_KEY: b"-2"}))
        return pa.schema(fields)

    def evolve(self, columns: tuple[ColumnDefinition, ...], **changes: Any) -> TableDefinition:
        """The next schema version with new columns (and other changed fields)."""
        next_id = max([self.next_column_id, *[c.column_id + 1 for c in columns]])
        return replace(self, columns=columns, schema_version=self.schema_version + 1,
                       updated_at=time.time(), next_column_id=next_id, **changes)

    # --- JSON form for the catalog
    def to_json(self) -> str:
        data = asdict(self)
        data["table_id"] = {"namespace": self.table_id.namespace, "name": self.table_id.name}
        data["table_type"] = self.table_type.value
        level = self.options.access_level
        data["options"]["access_level"] = level.value if level else None
        return json.dumps(data)

    @staticmethod
    def from_json(text: str) -> TableDefinition:
        data = json.loads(text)
        cols = tuple(
            ColumnDefinition(**{**c, "default": ColumnDefault(**c["default"]) if c["default"]
                                else None})
            for c in data["columns"])
        opts = data["options"]
        level = opts.get("access_level")
        options = TableOptions(**{**opts, "access_level": AccessLevel(level) if level else None,
                                   "vector_indexes": tuple(
                                       tuple(v) for v in opts.get("vector_indexes", ()))})
        return TableDefinition(
            table_id=TableId(**data["table_id"]), table_type=TableType(data["table_type"]),
            columns=cols, options=options, schema_version=data["schema_version"],
            created_at=data["created_at"], updated_at=data["updated_at"],
            comment=data.get("comment"), next_column_id=data.get("next_column_id", 0))
