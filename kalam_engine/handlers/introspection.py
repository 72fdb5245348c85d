"""SHOW NAMESPACES / SHOW TABLES / DESCRIBE TABLE / SHOW STATS, the rows of the catalog's
system tables, and the engine's summaries for the notebook layer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from kalam_engine.handlers import Params, handles
from kalam_engine.model.context import ExecutionContext, Role, TableType
from kalam_engine.model.definitions import TableDefinition
from kalam_engine.model.errors import NamespaceNotFoundError
from kalam_engine.providers.system import SYSTEM_NAMESPACE
from kalam_engine.providers.system_extra import version
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.names import validate_namespace

if TYPE_CHECKING:
    from kalam_engine.services import Services

TS = pa.timestamp("us", tz="UTC")


def _ts(values: list[float | None]) -> pa.Array:
    return pa.array([None if v is None else int(v * 1_000_000) for v in values], pa.int64()) \
        .cast(TS)


def namespaces_table(services: Services) -> pa.Table:
    rows = services.all_namespaces()
    counts = {ns: len(services.catalog.table_names(ns)) for ns, _, _ in rows}
    return pa.table({
        "namespace_id": [r[0] for r in rows],
        "name": [r[0] for r in rows],
        "created_at": _ts([r[1] for r in rows]),
        "options": [json.dumps(r[2]) if r[2] else None for r in rows],
        "table_count": pa.array([counts[r[0]] for r in rows], pa.int32()),
    })


def tables_table(definitions: list[TableDefinition]) -> pa.Table:
    return pa.table({
        "namespace_id": [d.table_id.namespace for d in definitions],
        "table_name": [d.table_id.name for d in definitions],
        "table_type": [d.table_type.value for d in definitions],
        "storage_id": [d.options.storage_id for d in definitions],
        "version": pa.array([d.schema_version for d in definitions], pa.int32()),
        "options": [_options_json(d) for d in definitions],
        "comment": pa.array([d.comment for d in definitions], pa.string()),
        "updated_at": _ts([d.updated_at for d in definitions]),
        "created_at": _ts([d.created_at for d in definitions]),
    })


def _options_json(d: TableDefinition) -> str:
    o = d.options
    data: dict = {"table_type": d.table_type.value, "storage_id": o.storage_id}
    if o.flush_policy_text():
        data["flush_policy"] = o.flush_policy_text()
    if o.ttl_seconds is not None:
        data["ttl_seconds"] = o.ttl_seconds
    if o.access_level is not None:
        data["access_level"] = o.access_level.value
    if o.use_user_storage:
        data["use_user_storage"] = True
    if o.vector_indexes:
        data["vector_indexes"] = dict(o.vector_indexes)
    return json.dumps(data)


def schemas_table(services: Services) -> pa.Table:
    versions = services.catalog.all_versions()
    defs = [d for d, _ in versions]
    return pa.table({
        "table_id": [d.table_id.key for d in defs],
        "table_name": [d.table_id.name for d in defs],
        "namespace_id": [d.table_id.namespace for d in defs],
        "table_type": [d.table_type.value for d in defs],
        "created_at": _ts([d.created_at for d in defs]),
        "schema_version": pa.array([d.schema_version for d in defs], pa.int32()),
        "columns": [json.dumps([_column_json(c) for c in d.columns]) for d in defs],
        "table_comment": pa.array([d.comment for d in defs], pa.string()),
        "updated_at": _ts([d.updated_at for d in defs]),
        "options": [_options_json(d) for d in defs],
        "access_level": [d.options.access_level.value if d.options.access_level else None
                         for d in defs],
        "is_latest": [latest for _, latest in versions],
        "storage_id": [d.options.storage_id for d in defs],
        "use_user_storage": [d.options.use_user_storage for d in defs],
    })


def _column_json(c) -> dict:
    return {"column_name": c.name, "column_id": c.column_id, "data_type": c.kalam_type,
            "is_nullable": c.nullable, "is_primary_key": c.primary_key,
            "default": c.default.describe() if c.default else None}


def columns_table(definitions: list[TableDefinition]) -> pa.Table:
    rows = [(d, c, i) for d in definitions for i, c in enumerate(d.columns)]
    return pa.table({
        "namespace_id": [d.table_id.namespace for d, _, _ in rows],
        "table_name": [d.table_id.name for d, _, _ in rows],
        "version": pa.array([d.schema_version for d, _, _ in rows], pa.int32()),
        "column_id": pa.array([c.column_id for _, c, _ in rows], pa.int32()),
        "column_name": [c.name for _, c, _ in rows],
        "comment": pa.array([c.comment for _, c, _ in rows], pa.string()),
        "data_type": [c.kalam_type for _, c, _ in rows],
        "default_value": pa.array([c.default.describe() if c.default else None
                                   for _, c, _ in rows], pa.string()),
        "ordinal": pa.array([i + 1 for _, _, i in rows], pa.int32()),
        "nullable": [c.nullable for _, c, _ in rows],
        "primary_key": [c.primary_key for _, c, _ in rows],
        "primary_key_pos": pa.array([1 if c.primary_key else None for _, c, _ in rows],
                                    pa.int32()),
    })


def stats_table(services: Services) -> pa.Table:
    stats = services.cache.stats()
    sizes = services.storage.data_sizes()
    metrics = {
        "schema_cache_entries": stats.entries, "schema_cache_capacity": stats.capacity,
        "schema_cache_hits": stats.hits, "schema_cache_misses": stats.misses,
        "schema_cache_evictions": stats.evictions, "schema_cache_revived": stats.revived,
        "providers_built": stats.built, "live_providers": stats.live_providers,
        "schema_cache_memory_bytes": stats.memory_bytes,
        "total_namespaces": len(services.all_namespaces()),
        "total_tables": len(services.catalog.latest_tables()),
        **{k: v for k, v in sizes.items()},
        **_kalamdb_stats(services),
    }
    return pa.table({"metric_name": list(metrics),
                     "metric_value": [str(v) for v in metrics.values()]})


def _kalamdb_stats(services: Services) -> dict[str, Any]:
    """KalamDB's metric names, beside ours."""
    users = services.db.query("SELECT COUNT(*) FROM users WHERE deleted_at IS NULL")[0][0]
    return {
        "schema_cache_size": services.cache.stats().entries,
        "schema_registry_size": len(services.catalog.latest_tables())
        + len(services.system_tables),
        "total_users": users,
        "server_version": version(),
    }


# --- statements
@handles(st.ShowNamespaces)
def show_namespaces(services: Services, stmt: st.ShowNamespaces, ctx: ExecutionContext,
                    params: Params) -> Result:
    table = namespaces_table(services)
    return Result("query", table=table, row_count=table.num_rows)


@handles(st.ShowTables)
def show_tables(services: Services, stmt: st.ShowTables, ctx: ExecutionContext,
                params: Params) -> Result:
    ns = None
    if stmt.namespace is not None:
        ns = validate_namespace(stmt.namespace)
        if not services.namespace_exists(ns):
            raise NamespaceNotFoundError(f"Namespace '{ns}' does not exist")
    defs = services.catalog.latest_tables(ns)
    table = tables_table(defs).select(["namespace_id", "table_name", "table_type", "storage_id",
                                       "version", "options", "comment", "updated_at",
                                       "created_at"])
    return Result("query", table=table, row_count=table.num_rows)


@handles(st.DescribeTable)
def describe_table(services: Services, stmt: st.DescribeTable, ctx: ExecutionContext,
                   params: Params) -> Result:
    table_id = services.table_id_for(stmt.table, ctx)
    definition = services.cache.get_definition(table_id)
    if stmt.history:
        defs = [d for d, _ in services.catalog.all_versions() if d.table_id == table_id]
    else:
        defs = [definition]
    rows = [(d, c, i) for d in defs for i, c in enumerate(d.columns)]
    table = pa.table({
        "column_name": [c.name for _, c, _ in rows],
        "ordinal_position": pa.array([i + 1 for _, _, i in rows], pa.int32()),
        "column_id": pa.array([c.column_id for _, c, _ in rows], pa.int32()),
        "data_type": [c.kalam_type for _, c, _ in rows],
        "is_nullable": [c.nullable for _, c, _ in rows],
        "is_primary_key": [c.primary_key for _, c, _ in rows],
        "column_default": pa.array([c.default.describe() if c.default else None
                                    for _, c, _ in rows], pa.string()),
        "column_comment": pa.array([c.comment for _, c, _ in rows], pa.string()),
        "schema_version": pa.array([d.schema_version for d, _, _ in rows], pa.int32()),
    })
    return Result("query", table=table, row_count=table.num_rows)


@handles(st.ShowStats)
def show_stats(services: Services, stmt: st.ShowStats, ctx: ExecutionContext,
               params: Params) -> Result:
    """One row of figures for a table. Below role dba the figures are those of the caller's own
    partition (their rows of a USER/STREAM table), so they never move with other users'
    writes; dba and system see the whole table."""
    table_id = services.table_id_for(stmt.table, ctx)
    provider = services.cache.get_provider(table_id)
    store = provider.store
    visible = provider.visible_rows(ctx).num_rows if store is not None else 0
    hot_rows = hot_bytes = segments = 0
    if store is not None and ctx.role >= Role.DBA:
        hot_rows, hot_bytes = store.hot_stats()
        segments = store.cold_stats()[2]
    elif store is not None:
        part = store.existing_partition(provider.scope(ctx))
        if part is not None:
            hot_rows, hot_bytes, segments = part.row_count, part.nbytes, len(part.segments)
    entry = services.cache.peek(table_id)
    table = pa.table({
        "table_name": [table_id.name], "namespace": [table_id.namespace],
        "schema_version": pa.array([provider.core.schema_version], pa.int32()),
        "logical_rows": pa.array([visible], pa.int64()),
        "hot_rows": pa.array([hot_rows], pa.int64()),
        "flushed_segments": pa.array([segments], pa.int64()),
        "active_streams": pa.array([0], pa.int64()),
        "memory_bytes": pa.array([hot_bytes + (entry.memory_bytes if entry else 0)], pa.int64()),
    })
    return Result("query", table=table, row_count=1)


# --- summaries for the notebook layer (Engine.catalog_snapshot, table_stats, user_count)
def catalog_snapshot(services: Services) -> dict[str, dict[str, list[str]]]:
    """Namespace -> table -> column names, ``system`` included."""
    out: dict[str, dict[str, list[str]]] = {ns: {} for ns in services.namespace_names()}
    for d in services.catalog.latest_tables():
        out.setdefault(d.table_id.namespace, {})[d.table_id.name] = d.user_column_names()
    out[SYSTEM_NAMESPACE] = {name: list(system.schema.names)
                             for name, system in services.system_tables.items()}
    return out


def table_stats(services: Services) -> list[dict[str, Any]]:
    out = []
    for d in services.catalog.latest_tables():
        entry = services.cache.peek(d.table_id)
        store = services.storage.existing_store(d.table_id)
        hot_rows, hot_bytes = store.hot_stats() if store else (0, 0)
        cold_rows, cold_bytes, _segments = store.cold_stats() if store else (0, 0, 0)
        out.append({"table": str(d.table_id), "type": d.table_type.value,
                    "schema_version": d.schema_version,
                    "provider_id": id(entry.provider) if entry else None,
                    "cached": entry is not None,
                    "hot_rows": hot_rows, "hot_bytes": hot_bytes,
                    "cold_rows": cold_rows, "cold_bytes": cold_bytes,
                    "users": len(store.scopes()) if store and
                    d.table_type is not TableType.SHARED else 0})
    return out


def user_count(services: Services) -> int:
    """Users with rows in some USER or STREAM table."""
    users: set[str] = set()
    for d in services.catalog.latest_tables():
        store = services.storage.existing_store(d.table_id)
        if store is not None and d.table_type is not TableType.SHARED:
            users.update(store.scopes())
    return len(users)
