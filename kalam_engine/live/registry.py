"""The live queries of one engine: subscribe, the hook a table's store calls after each commit,
and ``system.live``.

A table's store carries a :class:`TableLive` only once someone subscribed to it; until then a
write costs one attribute check. The hook runs under the table's write lock, right after the
write is durable and applied, so events are produced in commit order, and a subscription
registered under that same lock (with its snapshot) misses and repeats nothing."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from kalam_engine.catalog.table_lock import held
from kalam_engine.live.events import UPDATE, LiveEvent, LivePlan
from kalam_engine.live.sql import LiveQuery, checked_options, parse_live_query
from kalam_engine.live.subscription import DEFAULT_MAX_QUEUE, Subscription
from kalam_engine.model.context import ExecutionContext, TableId, TableType
from kalam_engine.model.definitions import DELETED_COLUMN, SEQ_COLUMN
from kalam_engine.model.errors import (
    ExecutionError,
    InvalidParameterError,
    KalamError,
    TableNotFoundError,
    UnsupportedError,
)
from kalam_engine.providers.system_schemas import LIVE_SCHEMA
from kalam_engine.sql.statements import TableRef

if TYPE_CHECKING:
    from kalam_engine.catalog.cache import SchemaCache
    from kalam_engine.providers.core import BaseTableProvider
    from kalam_engine.query.runner import QueryRunner
    from kalam_engine.storage.table_store import TableStore

_TS = pa.timestamp("us", tz="UTC")
NODE_ID = 1


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LiveHost(Protocol):
    """What a live query needs of the engine (``kalam_engine.services.Services`` has it)."""

    read_only: bool
    cache: SchemaCache
    runner: QueryRunner

    def table_id_for(self, ref: TableRef, ctx: ExecutionContext) -> TableId: ...


class TableLive:
    """The subscriptions of one table's store, by partition (scope)."""

    __slots__ = ("_by_scope", "_lock", "_plans")

    def __init__(self) -> None:
        self._by_scope: dict[str, tuple[Subscription, ...]] = {}
        self._plans: dict[tuple, LivePlan] = {}
        self._lock = threading.Lock()

    def plan(self, columns: list[str], key: str, where: str | None, version: int,
             schema: pa.Schema) -> LivePlan:
        cache_key = (tuple(columns), where, version)
        with self._lock:
            plan = self._plans.get(cache_key)
        if plan is None:
            plan = LivePlan(columns, key, where, version, schema)
            with self._lock:
                plan = self._plans.setdefault(cache_key, plan)
        return plan

    def add(self, sub: Subscription) -> None:
        assert sub.scope is not None
        with self._lock:
            self._by_scope[sub.scope] = (*self._by_scope.get(sub.scope, ()), sub)

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = tuple(s for s in self._by_scope.get(sub.scope or "", ()) if s is not sub)
            if subs:
                self._by_scope[sub.scope or ""] = subs
            else:
                self._by_scope.pop(sub.scope or "", None)
            plans = {id(s.plan) for group in self._by_scope.values() for s in group}
            self._plans = {k: p for k, p in self._plans.items() if id(p) in plans}

    # --- the store's hook (both under the table's write lock)
    def wants(self, scope: str) -> bool:
        return scope in self._by_scope

    def before(self, store: TableStore, scope: str, kind: str, rows: pa.Table) -> pa.Table | None:
        """For an UPDATE: the previous version of each row, aligned with ``rows``."""
        if kind != UPDATE:
            return None
        key = store.key_column
        try:
            keys = rows[key].combine_chunks()
            old = store.read_filtered(scope, store.schema, pc.field(key).isin(keys))
            return old.take(pc.index_in(rows[key], value_set=old[key]))
        except Exception:  # never fail the write: publish ends the subscriptions instead
            return None

    def publish(self, scope: str, kind: str, rows: pa.Table, old: pa.Table | None,
                schema_version: int) -> None:
        """Queue the events of one committed write for every subscription of ``scope``."""
        subs = self._by_scope.get(scope, ())
        by_plan: dict[int, tuple[LivePlan, list[Subscription]]] = {}
        for sub in subs:
            assert sub.plan is not None
            by_plan.setdefault(id(sub.plan), (sub.plan, []))[1].append(sub)
        for plan, members in by_plan.values():
            events: list[LiveEvent] = []
            error: KalamError | None = None
            try:
                if kind == UPDATE and old is None:
                    error = ExecutionError("The previous versions of updated rows could not be "
                                           "read", hint="subscribe again")
                elif plan.schema_version != schema_version:
                    error = ExecutionError(
                        "The table's schema changed (ALTER TABLE) after this subscription "
                        "began", hint="subscribe again to follow the new schema")
                else:
                    events = plan.events(kind, rows, old)
            except KalamError as exc:
                error = exc
            except Exception as exc:  # never fail the write, which is already committed
                error = ExecutionError(f"Live query evaluation failed: {exc}",
                                       hint="subscribe again; report this if it repeats")
            for sub in members:
                if error is not None:
                    sub.fail(error)
                else:
                    sub.push(events)


class LiveRegistry:
    """Every active subscription of one engine."""

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.max_queue = max_queue
        self._subs: dict[str, Subscription] = {}
        self._stores: dict[str, TableStore] = {}  # live_id -> the store it listens to
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, host: LiveHost, sql: str, ctx: ExecutionContext, *,
                  batch_size: int | None = None, last_rows: int | None = None,
                  from_seq: int | None = None,
                  callback: Callable[[LiveEvent], object] | None = None,
                  max_queue: int | None = None, subscription_id: str | None = None,
                  connection_id: str = "local") -> Subscription:
        """Start a live query ``sql`` for ``ctx`` (see ``Engine.subscribe``)."""
        if not isinstance(sql, str):
            raise InvalidParameterError(f"sql must be a string, not {type(sql).__name__}",
                                        hint="e.g. db.subscribe('SELECT * FROM app.t')")
        if host.read_only:
            raise UnsupportedError(
                "Live queries need the engine that writes the directory",
                hint="subscribe in the engine opened without read_only=True")
        size, last_rows, from_seq = checked_options(batch_size, last_rows, from_seq)
        queue = self._checked_queue(max_queue, callback)
        query = parse_live_query(sql)
        table_id = host.table_id_for(TableRef(query.namespace, query.table), ctx)
        sub_id = subscription_id or f"sub-{table_id.namespace}-{table_id.name}-" \
                                    f"{uuid.uuid4().hex[:12]}"
        options = {k: v for k, v in (("batch_size", batch_size), ("last_rows", last_rows),
                                     ("from", from_seq)) if v is not None}
        with held(host.cache, table_id) as provider:
            if provider is None:
                raise TableNotFoundError(f"Table {table_id} does not exist",
                                         hint="SHOW TABLES lists the tables")
            provider.check_read(ctx)
            start = _start(host, provider, query, ctx, last_rows, from_seq)
            sub = Subscription(
                live_id=f"{ctx.user_id}-{connection_id}-{sub_id}", subscription_id=sub_id,
                connection_id=connection_id, table_id=table_id, scope=start.scope,
                user_id=ctx.user_id, sql=sql, options=options, plan=start.plan,
                snapshot=start.snapshot, last_seq=start.last_seq, batch_size=size,
                max_queue=queue, on_close=self._forget)
            self._register(sub, provider)
        if callback is not None:
            sub.start_callback(callback)
        return sub

    def _checked_queue(self, max_queue: int | None,
                       callback: Callable[[LiveEvent], object] | None) -> int:
        queue = self.max_queue if max_queue is None else max_queue
        if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
            raise InvalidParameterError(f"max_queue must be a positive whole number, not "
                                        f"{queue!r}")
        if callback is not None and not callable(callback):
            raise InvalidParameterError("callback must be callable or None")
        return queue

    def _register(self, sub: Subscription, provider: BaseTableProvider) -> None:
        """Make ``sub`` active and hook it to its table's store (under the table's lock)."""
        store = None if provider.table_type is TableType.SYSTEM else provider.store
        with self._lock:
            if sub.live_id in self._subs:
                raise InvalidParameterError(
                    f"Subscription id '{sub.subscription_id}' is already in use",
                    hint="give each subscription its own id (or let Kalam choose one)")
            self._subs[sub.live_id] = sub
            if store is not None:
                self._stores[sub.live_id] = store
        if store is not None:
            assert store.live is not None
            store.live.add(sub)

    @staticmethod
    def _columns(query: LiveQuery, names: list[str], key: str, table_id: TableId) -> list[str]:
        if query.columns is None:
            return names
        unknown = [c for c in query.columns if c not in names]
        if unknown:
            raise InvalidParameterError(
                f"Table {table_id} has no column {', '.join(unknown)}",
                hint="its columns are " + ", ".join(n for n in names if n != SEQ_COLUMN))
        extra = [c for c in dict.fromkeys((key, SEQ_COLUMN))
                 if c not in query.columns and c in names]
        return [*query.columns, *extra]

    @staticmethod
    def _snapshot_sql(table_id: TableId, columns: list[str], where: str | None,
                      last_rows: int | None, from_seq: int | None, ordered: bool) -> str:
        conds = [f"({where})"] if where else []
        if from_seq is not None and ordered:
            conds.append(f"{_q(SEQ_COLUMN)} > {int(from_seq)}")
        sql = (f"SELECT {', '.join(_q(c) for c in columns)} FROM "
               f"{_q(table_id.namespace)}.{_q(table_id.name)}")
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        if not ordered:
            return sql if last_rows is None else sql + f" LIMIT {int(last_rows)}"
        if last_rows is not None and from_seq is None:
            return sql + f" ORDER BY {_q(SEQ_COLUMN)} DESC LIMIT {int(last_rows)}"
        return sql + f" ORDER BY {_q(SEQ_COLUMN)}"

    def _forget(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.pop(sub.live_id, None)
            store = self._stores.pop(sub.live_id, None)
        if store is not None and store.live is not None:
            store.live.remove(sub)

    def table_dropped(self, table_id: TableId) -> None:
        """End the subscriptions of a dropped table."""
        with self._lock:
            subs = [s for s in self._subs.values() if s.table_id == table_id]
        for sub in subs:
            sub.fail(TableNotFoundError(f"Table {table_id} was dropped",
                                        hint="subscribe again once it is created again"))

    def close_all(self) -> None:
        with self._lock:
            subs = list(self._subs.values())
        for sub in subs:
            sub.close()

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return list(self._subs.values())

    def live_table(self) -> pa.Table:
        """``system.live``: one row per active subscription."""
        subs = self.subscriptions()

        def ts(values: list[float]) -> pa.Array:
            return pa.array([int(v * 1_000_000) for v in values], pa.int64()).cast(_TS)

        cols: dict[str, Any] = {
            "live_id": [s.live_id for s in subs],
            "connection_id": [s.connection_id for s in subs],
            "subscription_id": [s.subscription_id for s in subs],
            "namespace_id": [s.table_id.namespace for s in subs],
            "table_name": [s.table_id.name for s in subs],
            "user_id": [s.user_id for s in subs],
            "query": [s.sql for s in subs],
            "options": [json.dumps(s.options) if s.options else None for s in subs],
            "status": [s.status for s in subs],
            "created_at": ts([s.created_at for s in subs]),
            "last_update": ts([s.last_update for s in subs]),
            "changes": [s.changes for s in subs],
            "node_id": [NODE_ID] * len(subs),
            "last_ping_at": ts([s.last_update for s in subs]),
        }
        return pa.table(cols, schema=LIVE_SCHEMA)


class _Start(NamedTuple):
    """Where a subscription begins: its snapshot, the last ``_seq`` it covers, its partition
    and change plan (None for a system table, which has no changes)."""

    snapshot: pa.Table
    last_seq: int
    scope: str | None
    plan: LivePlan | None


def _start(host: LiveHost, provider: BaseTableProvider, query: LiveQuery,
           ctx: ExecutionContext, last_rows: int | None, from_seq: int | None) -> _Start:
    """Read the snapshot and, for a table with changes, its plan (the table's lock held)."""
    definition = provider.core.definition
    key = definition.primary_key or SEQ_COLUMN
    names = [f.name for f in provider.schema if f.name != DELETED_COLUMN]
    columns = LiveRegistry._columns(query, names, key, provider.table_id)
    ordered = SEQ_COLUMN in names  # system tables have no _seq (and no changes)
    snapshot = host.runner.run(ctx, LiveRegistry._snapshot_sql(
        provider.table_id, columns, query.where, last_rows, from_seq, ordered),
        include_deleted=False)
    if last_rows is not None and ordered:
        snapshot = snapshot.take(pa.array(range(snapshot.num_rows - 1, -1, -1), pa.int64()))
    last_seq = 0
    if snapshot.num_rows and ordered:
        last_seq = pc.max(snapshot[SEQ_COLUMN]).as_py() or 0
    if provider.table_type is TableType.SYSTEM:
        return _Start(snapshot, last_seq, None, None)
    store = provider.store
    if store.live is None:
        store.live = TableLive()
    scope = provider.scope(ctx)
    plan = store.live.plan(columns, key, query.where, definition.schema_version, store.schema)
    part = store.existing_partition(scope)
    last_seq = max(part.max_seq if part is not None else 0, last_seq)
    return _Start(snapshot, last_seq, scope, plan)
