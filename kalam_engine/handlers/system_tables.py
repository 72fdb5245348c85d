"""The ``system.*`` tables: for each name, its schema (``providers/system_schemas.py``) and the
function that builds its rows from the engine's services on every scan. Reading them needs role
dba or system (``SystemTableProvider.check_read``); nothing writes them."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import datafusion
import pyarrow as pa

from kalam_engine.handlers import introspection, storages, users
from kalam_engine.providers.system import system_definition
from kalam_engine.providers.system_extra import LOCAL_NODE_ID, datatypes_table, version
from kalam_engine.providers.system_schemas import PRIMARY_KEYS, SYSTEM_SCHEMAS
from kalam_engine.services import Services, SystemRows, SystemTable

# --- system.settings
_SYNCHRONOUS = {0: "off", 1: "normal", 2: "full", 3: "full"}


def settings_table(services: Services) -> pa.Table:
    sync = services.db.query("PRAGMA synchronous")[0][0]
    timeout = services.runner.statement_timeout
    limit = services.runner.memory_limit
    rows: list[tuple[str, Any, str, str]] = [
        ("version", version(), "Kalam for notebooks version", "server"),
        ("datafusion_version", datafusion.__version__, "Apache DataFusion version", "server"),
        ("sqlite_version", sqlite3.sqlite_version, "SQLite version of the catalog and hot log",
         "server"),
        ("node_id", LOCAL_NODE_ID, "This node (an embedded engine is one node)", "server"),
        ("data_path", str(services.path) if services.path else ":memory:",
         "Data directory", "storage"),
        ("durability", _SYNCHRONOUS.get(int(sync), str(sync)),
         "When a write is acknowledged: full (survives power loss), normal, off", "storage"),
        ("read_only", services.read_only, "Opened with read_only=True (writes refused)",
         "storage"),
        ("statement_timeout", "none" if timeout is None else timeout,
         "Seconds a statement may run (none: no limit)", "execution"),
        ("memory_limit", "none" if limit is None else limit,
         "Bytes of memory a statement may use (none: no limit)", "execution"),
        ("fast_paths", services.runner.prefetch,
         "Primary-key lookups and prefetched tables skip parts of the general path",
         "execution"),
        ("cache_capacity", services.cache.capacity,
         "Table entries the schema cache holds before evicting", "cache"),
    ]
    return pa.table({
        "name": [r[0] for r in rows],
        "value": [json.dumps(r[1]) if isinstance(r[1], bool) else str(r[1]) for r in rows],
        "description": [r[2] for r in rows],
        "category": [r[3] for r in rows],
    })


# --- system.job_nodes
def job_nodes_table(services: Services) -> pa.Table:
    """One row per job: every job ran on the local node."""
    found = services.db.query(
        "SELECT job_id, status, message, created_at, started_at, finished_at, updated_at "
        "FROM jobs ORDER BY created_at, job_id")

    def micros(value: float | None) -> int | None:
        return None if value is None else int(value * 1_000_000)

    rows = [{"job_id": job_id, "node_id": LOCAL_NODE_ID, "status": status,
             "error_message": message if status == "failed" else None,
             "created_at": micros(created), "started_at": micros(started),
             "finished_at": micros(finished), "updated_at": micros(updated)}
            for job_id, status, message, created, started, finished, updated in found]
    return pa.Table.from_pylist(rows, schema=SYSTEM_SCHEMAS["job_nodes"])


# --- the registry
_ROWS: dict[str, SystemRows] = {
    "namespaces": lambda s, ctx: introspection.namespaces_table(s),
    "tables": lambda s, ctx: introspection.tables_table(s.catalog.latest_tables()),
    "schemas": lambda s, ctx: introspection.schemas_table(s),
    "columns": lambda s, ctx: introspection.columns_table(s.catalog.latest_tables()),
    "users": lambda s, ctx: users.users_table(s, ctx),
    "jobs": lambda s, ctx: users.jobs_table(s),
    "audit_log": lambda s, ctx: users.audit_log_table(s),
    "stats": lambda s, ctx: introspection.stats_table(s),
    "live": lambda s, ctx: s.live.live_table(),
    "storages": lambda s, ctx: storages.storages_table(s),
    "manifest": lambda s, ctx: storages.manifest_table(s),
    "settings": lambda s, ctx: settings_table(s),
    "server_logs": lambda s, ctx: SYSTEM_SCHEMAS["server_logs"].empty_table(),
    "datatypes": lambda s, ctx: datatypes_table(),
    "job_nodes": lambda s, ctx: job_nodes_table(s),
}


def _system_table(name: str) -> SystemTable:
    schema = SYSTEM_SCHEMAS[name]
    return SystemTable(system_definition(name, schema, PRIMARY_KEYS[name]), schema, _ROWS[name])


SYSTEM_TABLES: dict[str, SystemTable] = {name: _system_table(name) for name in SYSTEM_SCHEMAS}

