"""EXPORT USER DATA and SHOW EXPORT (semantics 1.8; every role, own data only).

EXPORT USER DATA writes the caller's own rows of every USER table (the newest version of each
row, tombstones left out) to ``<data_dir>/exports/<user_id>/UE-<id>.zip``: one Parquet file per
table (``<namespace>/<table>.parquet``) and ``export.json`` describing them. The rows are read
through each table's provider with the caller's context, so the partition is the caller's (under
EXECUTE AS USER, the target's) and no other. Each export is a ``system.jobs`` row (``UE-...``);
SHOW EXPORT lists the caller's own.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from kalam_engine.handlers import Params, handles
from kalam_engine.model.context import ExecutionContext, TableType
from kalam_engine.model.definitions import DELETED_COLUMN
from kalam_engine.model.errors import TableNotFoundError, UnsupportedError
from kalam_engine.result import Result
from kalam_engine.sql.backup_commands import ExportUserData, ShowExport
from kalam_engine.storage.failures import file_error
from kalam_engine.storage.jobs import EXPORT_PREFIX, JOB_TYPES, Job, record_job

if TYPE_CHECKING:
    from kalam_engine.services import Services

EXPORT_DIR = "exports"


@handles(ExportUserData)
def export_user_data(services: Services, stmt: ExportUserData, ctx: ExecutionContext,
                     params: Params) -> Result:
    if services.path is None:
        raise UnsupportedError(
            "EXPORT USER DATA needs a data directory; this database is ':memory:'",
            hint="SELECT your rows instead, or open a directory with kalam_engine.connect('<dir>')")
    job = Job(EXPORT_PREFIX, {"user_id": ctx.user_id})
    folder = services.path / EXPORT_DIR / ctx.user_id
    path = folder / f"{job.job_id}.zip"
    buffer = io.BytesIO()
    tables: dict[str, int] = {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for definition in services.catalog.latest_tables():
            if definition.table_type is not TableType.USER:
                continue
            try:
                provider = services.cache.get_provider(definition.table_id)
            except TableNotFoundError:  # dropped since the list was read
                continue
            rows = provider.visible_rows(ctx)  # the caller's partition only
            rows = rows.drop_columns([c for c in (DELETED_COLUMN,) if c in rows.column_names])
            name = f"{definition.table_id.namespace}/{definition.table_id.name}.parquet"
            archive.writestr(name, _parquet(rows))
            tables[str(definition.table_id)] = rows.num_rows
        archive.writestr("export.json", json.dumps({
            "export_id": job.job_id, "user_id": ctx.user_id, "created_at": job.started_at,
            "format": "parquet", "tables": tables}, indent=2))
    data = buffer.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise file_error(exc, f"write the export {path}") from None
    total = sum(tables.values())
    job.parameters.update(path=str(path), tables=len(tables), rows=total, size_bytes=len(data))
    message = (f"User data export completed for user '{ctx.user_id}': {total} row(s) from "
               f"{len(tables)} table(s) written to '{path}'. Job ID: {job.job_id}")
    record_job(services.db, job, "completed", message)
    return Result("command", message=message)


def _parquet(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


_SHOW_SCHEMA = pa.schema([("export_id", pa.string()), ("user_id", pa.string()),
                          ("status", pa.string()), ("path", pa.string()),
                          ("tables", pa.int32()), ("rows", pa.int64()),
                          ("size_bytes", pa.int64()), ("created_at", pa.timestamp("us", "UTC"))])


@handles(ShowExport)
def show_export(services: Services, stmt: ShowExport, ctx: ExecutionContext,
                params: Params) -> Result:
    """The caller's own exports, oldest first."""
    found = services.db.query(
        "SELECT job_id, status, parameters, created_at FROM jobs WHERE job_type = ? "
        "AND json_extract(parameters, '$.user_id') = ? ORDER BY created_at, job_id",
        (JOB_TYPES[EXPORT_PREFIX], ctx.user_id))
    rows = []
    for job_id, status, parameters, created_at in found:
        params = json.loads(parameters or "{}")
        rows.append({"export_id": job_id, "user_id": ctx.user_id, "status": status,
                     "path": params.get("path"), "tables": params.get("tables"),
                     "rows": params.get("rows"), "size_bytes": params.get("size_bytes"),
                     "created_at": int(created_at * 1_000_000)})
    table = pa.Table.from_pylist(rows, schema=_SHOW_SCHEMA)
    return Result("query", table=table, row_count=table.num_rows)

