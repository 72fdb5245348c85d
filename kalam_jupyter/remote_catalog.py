"""A KalamDB server's catalog and figures, read over its SQL API for the notebook layer.

Table definitions come from ``DESCRIBE TABLE`` (any role that may use the table), the names for
completion from ``system.columns`` (role dba or system) or else ``SHOW TABLES``, and the
inspector's figures from ``system.stats`` and ``system.tables`` (dba or system). A metric the
server does not list is ``None``: the inspector says "not reported by this server".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kalam_engine.model.context import TableId, TableType
from kalam_engine.model.definitions import (
    DEFAULT_FUNCTIONS,
    ColumnDefault,
    ColumnDefinition,
    TableDefinition,
)
from kalam_engine.model.errors import InvalidParameterError, PermissionDeniedError
from kalam_engine.model.types import resolve_type

if TYPE_CHECKING:
    from kalam_jupyter.remote import RemoteClient

__all__ = ["ReportedCacheStats", "definition_from_describe", "read_stats", "snapshot",
           "table_list"]

# system.stats metric -> CacheStats field (the names kalam serve and KalamDB's server use)
_CACHE_METRICS = {
    "entries": "schema_cache_entries", "capacity": "schema_cache_capacity",
    "hits": "schema_cache_hits", "misses": "schema_cache_misses",
    "evictions": "schema_cache_evictions", "revived": "schema_cache_revived",
    "built": "providers_built", "live_providers": "live_providers",
    "memory_bytes": "schema_cache_memory_bytes",
}
SIZE_METRICS = ("hot_rows", "hot_bytes", "cold_rows", "cold_bytes")


@dataclass(frozen=True, slots=True)
class ReportedCacheStats:
    """The schema cache's counters as a server reports them; None: not reported."""

    entries: int | None = None
    capacity: int | None = None
    hits: int | None = None
    misses: int | None = None
    evictions: int | None = None
    revived: int | None = None
    built: int | None = None
    live_providers: int | None = None
    memory_bytes: int | None = None


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def read_stats(client: RemoteClient) -> dict[str, int | None]:
    """``system.stats`` as metric -> integer (None where the value is not a number)."""
    frame = client.execute("SELECT metric_name, metric_value FROM system.stats").to_pandas()
    return {str(name): _as_int(value)
            for name, value in zip(frame["metric_name"], frame["metric_value"], strict=True)}


def cache_stats(metrics: dict[str, int | None]) -> ReportedCacheStats:
    return ReportedCacheStats(**{field: metrics.get(metric)
                                 for field, metric in _CACHE_METRICS.items()})


def table_list(client: RemoteClient) -> list[dict[str, Any]]:
    """One ``{"table", "type"}`` per table: system.tables, else SHOW TABLES (any role)."""
    try:
        frame = client.execute(
            "SELECT namespace_id, table_name, table_type FROM system.tables").to_pandas()
    except PermissionDeniedError:
        frame = client.execute("SHOW TABLES").to_pandas()
    return [{"table": f"{ns}.{name}", "type": str(kind)}
            for ns, name, kind in zip(frame["namespace_id"], frame["table_name"],
                                      frame["table_type"], strict=True)]


def snapshot(client: RemoteClient) -> dict[str, dict[str, list[str]]]:
    """namespace -> table -> columns (system.columns; SHOW TABLES gives names only)."""
    out: dict[str, dict[str, list[str]]] = {}
    try:
        frame = client.execute("SELECT namespace_id, table_name, column_name FROM "
                               "system.columns ORDER BY namespace_id, table_name, ordinal"
                               ).to_pandas()
    except PermissionDeniedError:
        for entry in table_list(client):
            ns, _, name = entry["table"].partition(".")
            out.setdefault(ns, {})[name] = []
        return out
    for ns, name, column in zip(frame["namespace_id"], frame["table_name"],
                                frame["column_name"], strict=True):
        out.setdefault(str(ns), {}).setdefault(str(name), []).append(str(column))
    return out


def _default(text: Any) -> ColumnDefault | None:
    if text is None or (isinstance(text, float) and text != text):
        return None
    text = str(text)
    name = text.removesuffix("()").upper()
    if text.endswith("()") and name in DEFAULT_FUNCTIONS:
        return ColumnDefault("function", name)
    return ColumnDefault("literal", _literal(text))


def _literal(text: str) -> Any:
    """The value of a DEFAULT as DESCRIBE writes it (ColumnDefault.describe's inverse)."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if text in {"TRUE", "FALSE"}:
        return text == "TRUE"
    if text == "NULL":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _column(row: dict[str, Any], position: int) -> ColumnDefinition:
    kalam_type = str(row["data_type"])
    sql_type = kalam_type.upper()  # KalamDB's type names read back as SQL types
    try:
        resolve_type(sql_type)
    except InvalidParameterError:
        sql_type = "TEXT"  # a type this client does not know: checked by the server only
    column_id = _as_int(row.get("column_id"))
    return ColumnDefinition(
        name=str(row["column_name"]), column_id=position if column_id is None else column_id,
        sql_type=sql_type, kalam_type=kalam_type, nullable=bool(row.get("is_nullable", True)),
        primary_key=bool(row.get("is_primary_key", False)),
        default=_default(row.get("column_default")))


def definition_from_describe(table: TableId, rows: list[dict[str, Any]],
                             table_type: str | None) -> TableDefinition:
    """A TableDefinition of DESCRIBE TABLE's rows (types by KalamDB name, NOT NULL,
    defaults); the table type from SHOW TABLES (SHARED when not listed)."""
    columns = tuple(_column(row, i) for i, row in enumerate(rows))
    versions = [_as_int(row.get("schema_version")) for row in rows]
    kind = TableType(table_type) if table_type in {t.value for t in TableType} \
        else TableType.SHARED
    return TableDefinition(table_id=table, table_type=kind, columns=columns,
                           schema_version=max([v for v in versions if v is not None],
                                              default=1),
                           next_column_id=len(columns))
