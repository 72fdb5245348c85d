"""Per-request DataFusion session and the catalog adapters that carry the request's context.

The adapters are the only objects built per query besides the ExecutionContext: small
(``__slots__``), they resolve a table name to the table's one shared provider and ask it for this
request's rows. Every table DataFusion scans is read by ``request_rows``: one call of
``provider.read(ctx, filters=...)`` whose filter is the primary-key and ``_seq`` bound the
statement's WHERE puts on that table (``where_bounds``), so that a filtered SELECT over cold data
opens only the segments that can match. The rows reach DataFusion as a MemTable view when read
before planning (``prefetch``), or as a ``pyarrow.dataset`` when DataFusion asks during planning
(a MemTable cannot be built then). DataFusion still applies the whole WHERE to them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext
from datafusion.catalog import CatalogProvider, SchemaProvider, Table

from kalam_engine.model.context import ExecutionContext, Role, TableId
from kalam_engine.model.errors import KalamError, TableNotFoundError
from kalam_engine.providers.core import BaseTableProvider
from kalam_engine.query.execution import Budget
from kalam_engine.query.where_bounds import TableBounds, bound_expression

CATALOG_NAME = "kalam"
SYSTEM_NAMESPACE = "system"


_EMPTY_DIR = tempfile.TemporaryDirectory(prefix="kalam-empty-")
_EMPTY_DATASETS: dict[bytes, pds.Dataset] = {}
_EMPTY_LOCK = threading.Lock()


def _empty_table(schema: pa.Schema) -> Table:
    """DataFusion 55 cannot sort a dataset with no fragments (SanityCheckPlan), and a
    DataFusion-made view cannot be built while DataFusion is planning. An empty table is served
    as a one-fragment dataset over an empty Arrow file, one file per schema."""
    key = hashlib.sha1(schema.serialize().to_pybytes()).digest()
    with _EMPTY_LOCK:
        dataset = _EMPTY_DATASETS.get(key)
        if dataset is None:
            path = os.path.join(_EMPTY_DIR.name, key.hex() + ".arrow")
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
                writer.write_table(schema.empty_table())
            dataset = pds.dataset(path, format="ipc", schema=schema)
            _EMPTY_DATASETS[key] = dataset
    return Table(dataset)


class TableResolver:
    """What the adapters need from the engine (namespaces, table names, providers)."""

    __slots__ = ("namespaces", "provider", "table_names")

    def __init__(self, namespaces: Callable[[], Iterable[str]],
                 table_names: Callable[[str], Iterable[str]],
                 provider: Callable[[TableId], BaseTableProvider]) -> None:
        self.namespaces = namespaces
        self.table_names = table_names
        self.provider = provider


class RequestState:
    """Per-request facts the adapters share: the context, options, the WHERE's bounds with the
    request's ``$n`` values, and the first error."""

    __slots__ = ("bounds", "budget", "ctx", "error", "include_deleted", "params", "resolver",
                 "views")

    def __init__(self, resolver: TableResolver, ctx: ExecutionContext,
                 include_deleted: bool, budget: Budget | None = None, *,
                 bounds: TableBounds | None = None, params: list | None = None) -> None:
        self.resolver = resolver
        self.budget = budget if budget is not None else Budget(None)
        self.ctx = ctx
        self.include_deleted = include_deleted
        self.bounds = bounds
        self.params = params
        self.error: KalamError | None = None
        self.views: dict[tuple[str, str], Table] = {}  # prefetched rows, by (namespace, name)

    def filter_for(self, table_id: TableId, provider: BaseTableProvider) -> pc.Expression | None:
        """The key/_seq filter the statement's WHERE puts on ``table_id``, if any."""
        bounds = self.bounds
        if bounds is None:
            return None
        namespace, name = bounds.table
        if TableId(namespace or self.ctx.namespace, name) != table_id:
            return None
        return bound_expression(bounds.bound, provider.schema, provider.core.primary_key,
                                self.params)


def request_rows(state: RequestState, table_id: TableId,
                 provider: BaseTableProvider) -> pa.Table:
    """This request's rows of ``table_id`` (served by ``provider``), read with the WHERE's
    key/_seq filter: the one place the SQL path reads a table."""
    return provider.read(state.ctx, filters=state.filter_for(table_id, provider),
                         include_deleted=state.include_deleted, exact=False)


class RequestSchema(SchemaProvider):
    """One namespace, seen by the request its catalog currently serves."""

    __slots__ = ("_catalog", "_namespace")

    def __init__(self, catalog: RequestCatalog, namespace: str) -> None:
        self._catalog = catalog
        self._namespace = namespace

    @property
    def _state(self) -> RequestState:
        return self._catalog.request()

    # datafusion-python 55 reads ``table_names`` as an attribute from Rust, so it is a property.
    # It also wants a sequence, not a set.
    @property
    def table_names(self) -> list[str]:  # type: ignore[override]
        state = self._state
        if self._namespace == SYSTEM_NAMESPACE and state.ctx.role < Role.DBA:
            return []  # information_schema lists no system table to those who may not read it
        return [name for name in state.resolver.table_names(self._namespace)
                if self._readable(state, name)]

    def _readable(self, state: RequestState, name: str) -> bool:
        """Whether this request may read the table (information_schema lists only those)."""
        try:
            state.resolver.provider(TableId(self._namespace, name)).check_read(state.ctx)
        except KalamError:
            return False
        return True

    def table(self, name: str) -> Table | None:
        state = self._state
        view = state.views.get((self._namespace, name))
        if view is not None:
            return view
        table_id = TableId(self._namespace, name)
        try:
            provider = state.resolver.provider(table_id)
        except TableNotFoundError:
            return None  # DataFusion reports it; the runner adds close names
        try:
            rows = request_rows(state, table_id, provider)
        except KalamError as exc:
            if state.error is None:
                state.error = exc
            raise
        if rows.num_rows == 0:
            return _empty_table(rows.schema)
        return Table(pds.dataset(rows))

    def table_exist(self, name: str) -> bool:
        return name in self.table_names


class RequestCatalog(CatalogProvider):
    """The ``kalam`` catalog of one session; ``state`` is the request it serves right now
    (None between requests, so a pooled session holds no request's rows)."""

    __slots__ = ("state",)

    def __init__(self, state: RequestState | None = None) -> None:
        self.state = state

    def request(self) -> RequestState:
        """The request this catalog serves now."""
        state = self.state
        if state is None:
            raise RuntimeError("a Kalam catalog was used outside a request")
        return state

    def schema_names(self) -> set[str]:
        if self.state is None:
            return set()
        return set(self.state.resolver.namespaces())

    def schema(self, name: str) -> RequestSchema | None:
        if name not in self.schema_names():
            return None
        return RequestSchema(self, name)


@functools.lru_cache(maxsize=256)
def _config(namespace: str, target_partitions: int) -> SessionConfig:
    return (SessionConfig()
            .with_default_catalog_and_schema(CATALOG_NAME, namespace)
            .with_create_default_catalog_and_schema(False)
            .with_information_schema(True)
            .with_target_partitions(target_partitions))


def new_session(namespace: str, *, target_partitions: int = 1, memory_limit: int | None = None
                ) -> tuple[SessionContext, RequestCatalog]:
    """A DataFusion session with the Kalam catalog as default (serving no request yet).

    With ``memory_limit`` (bytes) the session's operators (sorts, joins, aggregations) share a
    memory pool of that size: spillable ones spill to disk, the others fail with "Resources
    exhausted" once it is full. A session serves one statement at a time, so this is a budget
    per statement."""
    runtime = RuntimeEnvBuilder()
    if memory_limit is not None:
        runtime = runtime.with_fair_spill_pool(memory_limit)
    session = SessionContext(_config(namespace, target_partitions), runtime)
    catalog = RequestCatalog()
    session.register_catalog_provider(CATALOG_NAME, catalog)
    return session, catalog


class SessionPool:
    """Idle DataFusion sessions by default namespace, lent to one request at a time.

    A SessionContext costs ~0.1 ms to build, a tenth of a small query. A session is lent with
    its catalog pointed at the request, and given back with the catalog pointed at nothing, so
    no request ever sees another's state. ``prepare`` runs once on each new session (the Kalam
    functions are registered there).
    """

    def __init__(self, prepare: Callable[[SessionContext, RequestCatalog], None],
                 per_namespace: int = 4, namespaces: int = 64,
                 memory_limit: int | None = None) -> None:
        self.memory_limit = memory_limit
        self._idle: OrderedDict[str, list[tuple[SessionContext, RequestCatalog]]] = \
            OrderedDict()
        self._prepare = prepare
        self._per_namespace = per_namespace
        self._namespaces = namespaces
        self._lock = threading.Lock()

    def lend(self, state: RequestState) -> tuple[SessionContext, RequestCatalog]:
        namespace = state.ctx.namespace
        with self._lock:
            idle = self._idle.get(namespace)
            lent = idle.pop() if idle else None
        session, catalog = lent if lent is not None else self.fresh(namespace)
        catalog.state = state
        return session, catalog

    def fresh(self, namespace: str) -> tuple[SessionContext, RequestCatalog]:
        """A new session as this pool makes them (a pooled one must stay indistinguishable
        from it after any request)."""
        lent = new_session(namespace, memory_limit=self.memory_limit)
        self._prepare(*lent)
        return lent

    def give_back(self, session: SessionContext, catalog: RequestCatalog, *,
                  reusable: bool = True) -> None:
        """End the loan; a session whose statement was interrupted is dropped."""
        namespace = catalog.request().ctx.namespace
        catalog.state = None
        if not reusable:
            return
        with self._lock:
            idle = self._idle.setdefault(namespace, [])
            self._idle.move_to_end(namespace)
            if len(idle) < self._per_namespace:
                idle.append((session, catalog))
            while len(self._idle) > self._namespaces:
                self._idle.popitem(last=False)
