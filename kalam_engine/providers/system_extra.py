"""More system tables with KalamDB's columns (semantics section 4): ``system.settings``,
``system.server_logs``, ``system.datatypes``, ``system.job_nodes``; and KalamDB's metric names
for ``system.stats``. Registered by ``Engine._system_tables``; readable by dba and system only,
like every system table (SystemTableProvider checks it).
"""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import datafusion
import pyarrow as pa

from kalam_engine.model.context import ExecutionContext
from kalam_engine.model.types import resolve_type, sql_type_names

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

LOCAL_NODE_ID = 1  # an embedded engine is one node

_TS = pa.timestamp("us", tz="UTC")
_S = pa.string()
SCHEMAS: dict[str, pa.Schema] = {
    "settings": pa.schema([("name", _S), ("value", _S), ("description", _S),
                           ("category", _S)]),
    "server_logs": pa.schema([("timestamp", _TS), ("level", _S), ("thread", _S),
                              ("target", _S), ("line", pa.int32()), ("message", _S)]),
    "datatypes": pa.schema([("arrow_type", _S), ("kalam_type", _S), ("sql_name", _S),
                            ("description", _S)]),
    "job_nodes": pa.schema([("job_id", _S), ("node_id", pa.int64()), ("status", _S),
                            ("error_message", _S), ("created_at", _TS), ("started_at", _TS),
                            ("finished_at", _TS), ("updated_at", _TS)]),
}
PRIMARY_KEYS: dict[str, str | None] = {"settings": "name", "server_logs": None,
                                       "datatypes": "sql_name", "job_nodes": "job_id"}


def version() -> str:
    try:
        return importlib.metadata.version("kalam-notebooks")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def builders(engine: Engine) -> dict[str, Callable[[ExecutionContext], pa.Table]]:
    return {
        "settings": lambda ctx: settings_table(engine),
        "server_logs": lambda ctx: SCHEMAS["server_logs"].empty_table(),
        "datatypes": lambda ctx: datatypes_table(),
        "job_nodes": lambda ctx: job_nodes_table(engine),
    }


# --- system.settings
_SYNCHRONOUS = {0: "off", 1: "normal", 2: "full", 3: "full"}


def settings_table(engine: Engine) -> pa.Table:
    sync = engine._db.query("PRAGMA synchronous")[0][0]
    timeout = engine.statement_timeout
    limit = engine.runner.memory_limit
    rows: list[tuple[str, Any, str, str]] = [
        ("version", version(), "Kalam for notebooks version", "server"),
        ("datafusion_version", datafusion.__version__, "Apache DataFusion version", "server"),
        ("sqlite_version", sqlite3.sqlite_version, "SQLite version of the catalog and hot log",
         "server"),
        ("node_id", LOCAL_NODE_ID, "This node (an embedded engine is one node)", "server"),
        ("data_path", str(engine.path) if engine.path else ":memory:",
         "Data directory", "storage"),
        ("durability", _SYNCHRONOUS.get(int(sync), str(sync)),
         "When a write is acknowledged: full (survives power loss), normal, off", "storage"),
        ("read_only", engine.read_only, "Opened with read_only=True (writes refused)",
         "storage"),
        ("statement_timeout", "none" if timeout is None else timeout,
         "Seconds a statement may run (none: no limit)", "execution"),
        ("memory_limit", "none" if limit is None else limit,
         "Bytes of memory a statement may use (none: no limit)", "execution"),
        ("fast_paths", engine.fast_paths,
         "Primary-key lookups and prefetched tables skip parts of the general path",
         "execution"),
        ("cache_capacity", engine.cache.capacity,
         "Table entries the schema cache holds before evicting", "cache"),
    ]
    return pa.table({
        "name": [r[0] for r in rows],
        "value": [json.dumps(r[1]) if isinstance(r[1], bool) else str(r[1]) for r in rows],
        "description": [r[2] for r in rows],
        "category": [r[3] for r in rows],
    })


# --- system.datatypes
_DESCRIPTIONS = {
    "Boolean": "true or false", "SmallInt": "16-bit integer", "Int": "32-bit integer",
    "BigInt": "64-bit integer", "Float": "32-bit floating point",
    "Double": "64-bit floating point", "Text": "UTF-8 text", "Bytes": "binary data",
    "Json": "JSON document stored as text", "Timestamp": "date and time, microseconds, no zone",
    "Date": "calendar date", "DateTime": "date and time, microseconds, UTC",
    "Time": "time of day, microseconds", "Uuid": "16-byte UUID",
    "File": "file reference (FileRef JSON)",
}
_PARAMETRIC = (("DECIMAL(p,s)", "Decimal128(p, s)",
                "exact decimal, precision 1..38, scale 0..precision (bare DECIMAL: 38,10)"),
               ("EMBEDDING(n)", "FixedSizeList(Float32, n)",
                "vector of n 32-bit floats, n 1..8192"))


_ARROW_NAMES = {pa.bool_(): "Boolean", pa.int16(): "Int16", pa.int32(): "Int32",
                pa.int64(): "Int64", pa.float32(): "Float32", pa.float64(): "Float64",
                pa.string(): "Utf8", pa.binary(): "Binary", pa.date32(): "Date32",
                pa.timestamp("us"): "Timestamp(Microsecond, None)",
                pa.timestamp("us", tz="UTC"): 'Timestamp(Microsecond, Some("UTC"))',
                pa.time64("us"): "Time64(Microsecond)", pa.binary(16): "FixedSizeBinary(16)"}


def datatypes_table() -> pa.Table:
    """Each SQL type name with its KalamDataType and Arrow type (Arrow's own names)."""
    rows = []
    for name in sql_type_names():
        kalam, arrow = resolve_type(name)
        rows.append((_ARROW_NAMES.get(arrow, str(arrow)), kalam, name,
                     _DESCRIPTIONS.get(kalam, "")))
    for written, arrow_name, description in _PARAMETRIC:
        rows.append((arrow_name, written.split("(")[0].title(), written, description))
    return pa.table({"arrow_type": [r[0] for r in rows], "kalam_type": [r[1] for r in rows],
                     "sql_name": [r[2] for r in rows], "description": [r[3] for r in rows]})


# --- system.job_nodes
def job_nodes_table(engine: Engine) -> pa.Table:
    """One row per job: every job ran on the local node."""
    found = engine._db.query(
        "SELECT job_id, status, message, created_at, started_at, finished_at, updated_at "
        "FROM jobs ORDER BY created_at, job_id")

    def micros(value: float | None) -> int | None:
        return None if value is None else int(value * 1_000_000)

    rows = [{"job_id": job_id, "node_id": LOCAL_NODE_ID, "status": status,
             "error_message": message if status == "failed" else None,
             "created_at": micros(created), "started_at": micros(started),
             "finished_at": micros(finished), "updated_at": micros(updated)}
            for job_id, status, message, created, started, finished, updated in found]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["job_nodes"])


# --- system.stats
def kalamdb_stats(engine: Engine) -> dict[str, Any]:
    """KalamDB's metric names, beside ours."""
    users = engine._db.query("SELECT COUNT(*) FROM users WHERE deleted_at IS NULL")[0][0]
    return {
        "schema_cache_size": engine.cache.stats().entries,
        "schema_registry_size": len(engine.catalog.latest_tables()) + len(engine._system),
        "total_users": users,
        "server_version": version(),
    }
