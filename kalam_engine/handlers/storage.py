"""STORAGE FLUSH and STORAGE COMPACT (semantics 1.8). Both need role service or higher.

Ours run synchronously: when the statement returns, the job is finished and recorded in
system.jobs. ``... ALL`` without ``IN ns`` works on the session namespace, as in KalamDB.
A ``:memory:`` database has no data directory: flush and compaction are no-ops that say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from kalam_engine.auth.permissions import require_role
from kalam_engine.handlers import Params, handles
from kalam_engine.model.context import ExecutionContext, Role, TableId, TableType
from kalam_engine.model.errors import NamespaceNotFoundError, TableNotFoundError, UnsupportedError
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.names import validate_namespace
from kalam_engine.storage.flush import StorageJobOutcome

if TYPE_CHECKING:
    from kalam_engine.services import Services
    from kalam_engine.storage.table_store import TableStore

_NO_DATA_DIR = "the database is ':memory:' and has no data directory; rows stay in memory"


def _verb(stmt: st.StorageFlush | st.StorageCompact) -> str:
    return "flush" if isinstance(stmt, st.StorageFlush) else "compact"


def _store(services: Services, table_id: TableId, verb: str) -> TableStore:
    provider = services.cache.get_provider(table_id)
    kind = provider.table_type
    if kind is TableType.STREAM or kind is TableType.SYSTEM:
        raise UnsupportedError(
            f"STORAGE {verb.upper()} TABLE is not supported for {kind.value} tables",
            hint=f"'{table_id}' keeps its rows in memory and the hot log only; only USER and "
                 "SHARED tables have Parquet segments")
    return provider.store


def _run(services: Services, store: TableStore, verb: str) -> StorageJobOutcome | None:
    if verb == "flush":
        return services.storage.flush(store)
    return services.storage.compact(store)


def _message(table_id: TableId, verb: str, outcome: StorageJobOutcome | None) -> str:
    if outcome is None:
        return f"Storage {verb} skipped for table '{table_id}': {_NO_DATA_DIR}"
    if verb == "flush":
        if outcome.status == "skipped":
            return f"Storage flush skipped: no pending writes for table '{table_id}'"
        return (f"Storage flush completed for table '{table_id}': {outcome.rows} row(s) in "
                f"{outcome.segments} segment(s). Job ID: {outcome.job_id}")
    if outcome.status == "skipped":
        return f"Storage compact skipped: nothing to compact for table '{table_id}'"
    if not outcome.replaced:
        return (f"Storage compact completed for table '{table_id}': nothing to compact (no "
                f"segments to merge; hot rows reach Parquet with STORAGE FLUSH). "
                f"Job ID: {outcome.job_id}")
    return (f"Storage compact completed for table '{table_id}': {outcome.replaced} segment(s) "
            f"merged into {outcome.segments} ({outcome.rows} row(s)). Job ID: {outcome.job_id}")


def _outcomes_table(done: list[tuple[TableId, StorageJobOutcome | None]]) -> pa.Table:
    return pa.table({
        "table": pa.array([str(t) for t, _ in done], pa.string()),
        "job_id": pa.array([o.job_id if o else None for _, o in done], pa.string()),
        "status": pa.array([o.status if o else "skipped" for _, o in done], pa.string()),
        "rows": pa.array([o.rows if o else 0 for _, o in done], pa.int64()),
        "segments": pa.array([o.segments if o else 0 for _, o in done], pa.int64()),
    })


@handles(st.StorageFlush, st.StorageCompact)
def storage_command(services: Services, stmt: st.StorageFlush | st.StorageCompact,
                    ctx: ExecutionContext, params: Params) -> Result:
    """STORAGE FLUSH|COMPACT TABLE ns.t, or ... ALL [IN ns]."""
    verb = _verb(stmt)
    require_role(ctx, Role.SERVICE, f"STORAGE {verb.upper()}")
    if stmt.table is not None:
        table_id = services.table_id_for(stmt.table, ctx)
        outcome = _run(services, _store(services, table_id, verb), verb)
        return Result("command", message=_message(table_id, verb, outcome))
    ns = validate_namespace(stmt.namespace) if stmt.namespace else ctx.namespace
    if not services.namespace_exists(ns):
        raise NamespaceNotFoundError(f"Namespace '{ns}' does not exist",
                                     hint="SHOW NAMESPACES lists them")
    done = []
    for definition in services.catalog.latest_tables():
        tid = definition.table_id
        if tid.namespace == ns and definition.table_type in (TableType.USER, TableType.SHARED):
            try:
                done.append((tid, _run(services, _store(services, tid, verb), verb)))
            except TableNotFoundError:  # dropped since the list was read: nothing to do
                continue
    completed = [o for _, o in done if o is not None and o.status == "completed"]
    message = (f"Storage {verb} completed for {len(completed)} of {len(done)} table(s) in "
               f"namespace '{ns}' ({sum(o.rows for o in completed)} row(s), "
               f"{sum(o.segments for o in completed)} segment(s))")
    if services.storage.flusher is None:
        message = f"Storage {verb} skipped for namespace '{ns}': {_NO_DATA_DIR}"
    table = _outcomes_table(done)
    return Result("command", table=table, message=message, row_count=table.num_rows)
