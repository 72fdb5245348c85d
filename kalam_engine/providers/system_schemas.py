"""The columns of every ``system.*`` table (KalamDB's names and types, semantics section 4) and
each table's primary key. The rows are built per scan by the functions that
``kalam_engine.handlers.system_tables`` registers for each name."""

from __future__ import annotations

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")
_S, _I32, _I64, _B = pa.string(), pa.int32(), pa.int64(), pa.bool_()

LIVE_SCHEMA = pa.schema([
    ("live_id", _S), ("connection_id", _S), ("subscription_id", _S), ("namespace_id", _S),
    ("table_name", _S), ("user_id", _S), ("query", _S), ("options", _S), ("status", _S),
    ("created_at", _TS), ("last_update", _TS), ("changes", _I64), ("node_id", _I64),
    ("last_ping_at", _TS)])
STORAGE_SCHEMA = pa.schema([
    ("storage_id", _S), ("storage_name", _S), ("description", _S), ("storage_type", _S),
    ("base_directory", _S), ("credentials", _S), ("config_json", _S),
    ("shared_tables_template", _S), ("user_tables_template", _S), ("created_at", _TS),
    ("updated_at", _TS)])
MANIFEST_SCHEMA = pa.schema([
    ("cache_key", _S), ("namespace_id", _S), ("table_name", _S), ("scope", _S), ("etag", _S),
    ("last_refreshed", _TS), ("last_accessed", _TS), ("in_memory", _B), ("sync_state", _S),
    ("manifest_json", _S)])

SYSTEM_SCHEMAS: dict[str, pa.Schema] = {
    "namespaces": pa.schema([("namespace_id", _S), ("name", _S), ("created_at", _TS),
                             ("options", _S), ("table_count", _I32)]),
    "tables": pa.schema([("namespace_id", _S), ("table_name", _S), ("table_type", _S),
                         ("storage_id", _S), ("version", _I32), ("options", _S),
                         ("comment", _S), ("updated_at", _TS), ("created_at", _TS)]),
    "schemas": pa.schema([("table_id", _S), ("table_name", _S), ("namespace_id", _S),
                          ("table_type", _S), ("created_at", _TS), ("schema_version", _I32),
                          ("columns", _S), ("table_comment", _S), ("updated_at", _TS),
                          ("options", _S), ("access_level", _S), ("is_latest", _B),
                          ("storage_id", _S), ("use_user_storage", _B)]),
    "columns": pa.schema([("namespace_id", _S), ("table_name", _S), ("version", _I32),
                          ("column_id", _I32), ("column_name", _S), ("comment", _S),
                          ("data_type", _S), ("default_value", _S), ("ordinal", _I32),
                          ("nullable", _B), ("primary_key", _B), ("primary_key_pos", _I32)]),
    "users": pa.schema([("user_id", _S), ("password_hash", _S), ("role", _S), ("email", _S),
                        ("auth_type", _S), ("auth_data", _S), ("storage_mode", _S),
                        ("storage_id", _S), ("failed_login_attempts", _I32),
                        ("locked_until", _TS), ("last_login_at", _TS), ("created_at", _TS),
                        ("updated_at", _TS), ("last_seen", _TS), ("deleted_at", _TS)]),
    "jobs": pa.schema([("job_id", _S), ("job_type", _S), ("status", _S), ("parameters", _S),
                       ("message", _S), ("exception_trace", _S), ("created_at", _TS),
                       ("updated_at", _TS), ("started_at", _TS), ("finished_at", _TS)]),
    "audit_log": pa.schema([("audit_id", _I64), ("timestamp", _TS), ("actor_user_id", _S),
                            ("action", _S), ("target", _S), ("details", _S),
                            ("subject_user_id", _S)]),
    "stats": pa.schema([("metric_name", _S), ("metric_value", _S)]),
    "live": LIVE_SCHEMA,
    "storages": STORAGE_SCHEMA,
    "manifest": MANIFEST_SCHEMA,
    "settings": pa.schema([("name", _S), ("value", _S), ("description", _S),
                           ("category", _S)]),
    "server_logs": pa.schema([("timestamp", _TS), ("level", _S), ("thread", _S),
                              ("target", _S), ("line", _I32), ("message", _S)]),
    "datatypes": pa.schema([("arrow_type", _S), ("kalam_type", _S), ("sql_name", _S),
                            ("description", _S)]),
    "job_nodes": pa.schema([("job_id", _S), ("node_id", _I64), ("status", _S),
                            ("error_message", _S), ("created_at", _TS), ("started_at", _TS),
                            ("finished_at", _TS), ("updated_at", _TS)]),
}

PRIMARY_KEYS: dict[str, str | None] = {
    "namespaces": "namespace_id", "tables": None, "schemas": None, "columns": None,
    "users": "user_id", "jobs": "job_id", "audit_log": "audit_id", "stats": None,
    "live": "live_id", "storages": "storage_id", "manifest": "cache_key", "settings": "name",
    "server_logs": None, "datatypes": "sql_name", "job_nodes": "job_id",
}
