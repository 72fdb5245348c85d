"""CREATE STORAGE, DROP STORAGE, SHOW STORAGES, STORAGE CHECK, and the system.storages and
system.manifest tables (semantics 1.8, 3 and 4).

CREATE/DROP STORAGE and STORAGE CHECK need role dba or system; SHOW STORAGES is open to every
role (as in KalamDB). Only ``filesystem`` storages exist in the embedded services.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from kalam_engine.auth.permissions import require_admin
from kalam_engine.handlers import Params, handles
from kalam_engine.model.context import ExecutionContext
from kalam_engine.model.errors import (
    AlreadyExistsError,
    ConstraintError,
    InvalidParameterError,
    KalamError,
    PermissionDeniedError,
    UnsupportedError,
)
from kalam_engine.providers.system_schemas import MANIFEST_SCHEMA, STORAGE_SCHEMA
from kalam_engine.result import Result
from kalam_engine.sql.storage_commands import (
    CreateStorage,
    DropStorage,
    ShowStorages,
    StorageCheck,
)
from kalam_engine.storage.manifest import Segment
from kalam_engine.storage.storage_paths import (
    DEFAULT_SHARED_TEMPLATE,
    DEFAULT_USER_TEMPLATE,
    check_base,
    check_template_pair,
    normalise_template,
)
from kalam_engine.storage.storages import LOCAL, StorageRow, storage_created_now

if TYPE_CHECKING:
    from kalam_engine.services import Services

_CLOUD_TYPES = ("s3", "gcs", "azure")
_TS = pa.timestamp("us", tz="UTC")


def _ts(values: list[float]) -> pa.Array:
    return pa.array([int(v * 1_000_000) for v in values], pa.int64()).cast(_TS)


# --- system tables
def storages_table(services: Services) -> pa.Table:
    rows = services.storages.all()
    data = {name: [getattr(r, name) for r in rows] for name in STORAGE_SCHEMA.names[:9]}
    arrays = [pa.array(data[n], pa.string()) for n in STORAGE_SCHEMA.names[:9]]
    arrays += [_ts([r.created_at for r in rows]), _ts([r.updated_at for r in rows])]
    return pa.Table.from_arrays(arrays, schema=STORAGE_SCHEMA)


def _manifest_json(table_key: str, scope: str, segments: list[Segment]) -> str:
    return json.dumps({
        "table_id": table_key, "user_id": scope or None, "version": len(segments),
        "created_at": min(s.created_at for s in segments),
        "updated_at": max(s.created_at for s in segments),
        "segments": [{"id": f"batch-{s.batch_no}", "path": s.path, "min_seq": s.min_seq,
                      "max_seq": s.max_seq, "row_count": s.row_count,
                      "size_bytes": s.size_bytes, "created_at": s.created_at,
                      "schema_version": s.schema_version, "checksum": s.checksum,
                      "status": "committed"} for s in segments],
        "last_sequence_number": max(s.max_seq for s in segments)})


def manifest_table(services: Services) -> pa.Table:
    """One row per (table, user) that has Parquet segments: our manifest in KalamDB's shape.
    ``sync_state`` is ``pending_write`` while the partition also holds hot rows."""
    scopes: dict[tuple[str, str], list[Segment]] = {}
    for segment in services.storage.manifest.segments():
        scopes.setdefault((segment.table_key, segment.scope), []).append(segment)
    cols: dict[str, list] = {name: [] for name in MANIFEST_SCHEMA.names}
    stores = {tid.key: services.storage.existing_store(tid)
              for tid in (d.table_id for d in services.catalog.latest_tables())}
    for (key, scope), segments in sorted(scopes.items()):
        namespace, _, table = key.partition(":")
        store = stores.get(key)
        part = store.existing_partition(scope) if store is not None else None
        body = _manifest_json(key, scope, segments)
        cols["cache_key"].append(f"{namespace}:{table}:{scope or 'shared'}")
        cols["namespace_id"].append(namespace)
        cols["table_name"].append(table)
        cols["scope"].append(scope or "shared")
        cols["etag"].append(hashlib.sha256(body.encode()).hexdigest()[:16])
        cols["last_refreshed"].append(max(s.created_at for s in segments))
        cols["last_accessed"].append(max(s.created_at for s in segments))
        cols["in_memory"].append(part is not None)
        cols["sync_state"].append("pending_write" if part is not None and part.row_count
                                  else "in_sync")
        cols["manifest_json"].append(body)
    arrays = [pa.array(cols[n], MANIFEST_SCHEMA.field(n).type)
              if MANIFEST_SCHEMA.field(n).type != _TS else _ts(cols[n])
              for n in MANIFEST_SCHEMA.names]
    return pa.Table.from_arrays(arrays, schema=MANIFEST_SCHEMA)


# --- statements
@handles(ShowStorages)
def show_storages(services: Services, stmt: ShowStorages, ctx: ExecutionContext,
                  params: Params) -> Result:
    table = storages_table(services)
    return Result("query", table=table, row_count=table.num_rows)


def _row_from(services: Services, stmt: CreateStorage) -> StorageRow:
    if stmt.storage_type in _CLOUD_TYPES:
        raise UnsupportedError(
            f"Storage type '{stmt.storage_type}' is not supported by the embedded engine",
            hint="use TYPE filesystem, or a KalamDB server for object stores")
    if stmt.storage_type != "filesystem":
        raise InvalidParameterError(f"Unknown storage type '{stmt.storage_type}'",
                                    hint="TYPE filesystem (s3, gcs, azure need a KalamDB server)")
    for clause in ("BUCKET", "REGION", "CREDENTIALS"):
        if stmt.clause(clause) is not None:
            raise InvalidParameterError(f"{clause} does not apply to a filesystem storage",
                                        hint="leave it out")
    path, base_dir = stmt.clause("PATH"), stmt.clause("BASE_DIRECTORY")
    if path is not None and base_dir is not None:
        raise InvalidParameterError("Give PATH or BASE_DIRECTORY, not both")
    base = path if path is not None else base_dir
    if base is None:
        raise InvalidParameterError("A filesystem storage needs PATH '...'",
                                    hint="e.g. PATH '/mnt/archive/kalam' or PATH 'archive' "
                                         "(relative to the data directory)")
    shared = normalise_template(stmt.clause("SHARED_TABLES_TEMPLATE")
                                or DEFAULT_SHARED_TEMPLATE, "shared")
    user = normalise_template(stmt.clause("USER_TABLES_TEMPLATE") or DEFAULT_USER_TEMPLATE,
                              "user")
    check_template_pair(shared, user)
    config = stmt.clause("CONFIG")
    if config is not None:
        try:
            json.loads(config)
        except ValueError:
            raise InvalidParameterError("CONFIG must be JSON text, e.g. CONFIG '{}'") from None
    return storage_created_now(stmt.storage_id, stmt.clause("NAME"), stmt.clause("DESCRIPTION"),
                               base, shared, user, config)


@handles(CreateStorage)
def create_storage(services: Services, stmt: CreateStorage, ctx: ExecutionContext,
                   params: Params) -> Result:
    require_admin(ctx, "CREATE STORAGE")
    row = _row_from(services, stmt)
    registry = services.storages
    with registry.guard:
        if registry.get(stmt.storage_id) is not None:
            if stmt.if_not_exists:
                return Result("ddl", message=f"Storage '{stmt.storage_id}' already exists")
            raise AlreadyExistsError(f"Storage '{stmt.storage_id}' already exists",
                                     hint="SHOW STORAGES lists them; DROP STORAGE removes one")
        base = registry.base_of(row)
        check_base(base, services.path, [registry.base_of(r) for r in registry.custom()])
        registry.create(row)
    return Result("ddl", message=f"Storage '{stmt.storage_id}' created successfully")


@handles(DropStorage)
def drop_storage(services: Services, stmt: DropStorage, ctx: ExecutionContext,
                 params: Params) -> Result:
    require_admin(ctx, "DROP STORAGE")
    if stmt.storage_id == LOCAL:
        raise PermissionDeniedError("The storage 'local' is built in and cannot be dropped")
    registry = services.storages
    with registry.guard:
        row = registry.get(stmt.storage_id)
        if row is None:
            if stmt.if_exists:
                return Result("ddl", message=f"Storage '{stmt.storage_id}' does not exist")
            registry.require(stmt.storage_id)
        assert row is not None
        users = registry.tables_using(row.storage_id, services.catalog.latest_tables())
        if users:
            raise ConstraintError(
                f"Cannot drop storage '{row.storage_id}': {len(users)} table(s) still use it "
                f"({', '.join(users[:5])})", hint="drop those tables first")
        registry.drop(row)
    return Result("ddl", message=f"Storage '{stmt.storage_id}' dropped successfully")


# --- STORAGE CHECK
def _probe(base: Path) -> dict[str, object]:
    """Write, read back, list and delete a probe file in ``base``; say what worked."""
    out: dict[str, object] = {"writable": False, "readable": False, "listable": False,
                              "deletable": False, "error": None}
    probe = base / f".kalam-check-{uuid.uuid4().hex}.tmp"
    payload = os.urandom(64)
    try:
        if not base.is_dir():
            raise FileNotFoundError(f"the directory {base} does not exist")
        with open(probe, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        out["writable"] = True
        out["readable"] = probe.read_bytes() == payload
        if not out["readable"]:
            raise OSError("the probe file read back different bytes")
        out["listable"] = probe.name in os.listdir(base)
        probe.unlink()
        out["deletable"] = not probe.exists()
    except OSError as exc:
        out["error"] = str(exc)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return out


@handles(StorageCheck)
def storage_check(services: Services, stmt: StorageCheck, ctx: ExecutionContext,
                  params: Params) -> Result:
    require_admin(ctx, "STORAGE CHECK")
    row = services.storages.require(stmt.storage_id)
    started = time.perf_counter()
    base, result = _check(services, row)
    latency = (time.perf_counter() - started) * 1000
    healthy = bool(result["writable"] and result["readable"] and result["deletable"]) \
        and (result["listable"] or not stmt.extended)
    columns: dict[str, pa.Array] = {
        "storage_id": pa.array([row.storage_id]),
        "status": pa.array(["healthy" if healthy else "unhealthy"]),
        "readable": pa.array([result["readable"]], pa.bool_()),
        "writable": pa.array([result["writable"]], pa.bool_()),
        "listable": pa.array([result["listable"]], pa.bool_()),
        "deletable": pa.array([result["deletable"]], pa.bool_()),
        "latency_ms": pa.array([round(latency, 3)], pa.float64()),
    }
    if stmt.extended:
        columns.update(_extended_columns(services, row, base))
    columns["error"] = pa.array([result["error"]], pa.string())
    columns["tested_at"] = _ts([time.time()])
    table = pa.table(columns)
    return Result("query", table=table, row_count=1,
                  message=f"Storage '{row.storage_id}' is "
                          f"{'healthy' if healthy else 'unhealthy'}")


def _check(services: Services, row: StorageRow) -> tuple[Path | None, dict[str, object]]:
    """The storage's base directory (None: none to probe) and what the probe found."""
    failed: dict[str, object] = {"writable": False, "readable": False, "listable": False,
                                 "deletable": False}
    if row.storage_id == LOCAL and services.path is None:
        return None, {**failed, "error": "the database is ':memory:' and has no data directory"}
    try:
        base = services.storages.base_of(row)
        if row.storage_id == LOCAL:
            base.mkdir(parents=True, exist_ok=True)
        return base, _probe(base)
    except (KalamError, OSError) as exc:
        return None, {**failed, "error": str(exc)}


def _extended_columns(services: Services, row: StorageRow,
                      base: Path | None) -> dict[str, pa.Array]:
    """STORAGE CHECK ... EXTENDED: the disk's space and the storage's segments."""
    total = free = used = None
    keys = {d.table_id.key for d in services.catalog.latest_tables()
            if d.options.storage_id == row.storage_id}
    segments = [s for s in services.storage.manifest.segments() if s.table_key in keys]
    if base is not None and base.is_dir():
        usage = shutil.disk_usage(base)
        total, free = usage.total, usage.free
        used = usage.total - usage.free
    return {
        "storage_type": pa.array([row.storage_type]),
        "base_directory": pa.array([str(base) if base is not None else row.base_directory]),
        "total_bytes": pa.array([total], pa.int64()),
        "used_bytes": pa.array([used], pa.int64()),
        "available_bytes": pa.array([free], pa.int64()),
        "segment_count": pa.array([len(segments)], pa.int64()),
        "segment_bytes": pa.array([sum(s.size_bytes for s in segments)], pa.int64()),
    }
