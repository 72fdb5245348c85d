"""Per-request DataFusion session and the catalog adapters that carry the request's context.

The adapters are the only objects built per query besides the ExecutionContext: small
(``__slots__``), they resolve a table name to the table's one shared provider and ask it for this
request's rows. DataFusion then pushes projections and filters into the returned dataset.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.dataset as pds
from datafusion import SessionConfig, SessionContext
from datafusion.catalog import CatalogProvider, SchemaProvider, Table

from kalam_engine.context import ExecutionContext, Role, TableId
from kalam_engine.errors import KalamError, TableNotFoundError
from kalam_engine.providers.core import BaseTableProvider

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
    """Per-request facts the adapters share: the context, options, and the first error."""

    __slots__ = ("ctx", "error", "include_deleted", "resolver", "tables_used", "views")

    def __init__(self, resolver: TableResolver, ctx: ExecutionContext,
                 include_deleted: bool) -> None:
        self.resolver = resolver
        self.ctx = ctx
        self.include_deleted = include_deleted
        self.error: KalamError | None = None
        self.tables_used: list[BaseTableProvider] = []
        self.views: dict[tuple[str, str], Table] = {}  # prefetched rows, by (namespace, name)


class RequestSchema(SchemaProvider):
    __slots__ = ("_namespace", "_state")

    def __init__(self, state: RequestState, namespace: str) -> None:
        self._state = state
        self._namespace = namespace

    # datafusion-python 55 reads ``table_names`` as an attribute from Rust, so it is a property.
    # It also wants a sequence, not a set.
    @property
    def table_names(self) -> list[str]:  # type: ignore[override]
        state = self._state
        if self._namespace == SYSTEM_NAMESPACE and state.ctx.role < Role.DBA:
            return []  # information_schema lists no system table to those who may not read it
        return [name for name in state.resolver.table_names(self._namespace)
                if self._readable(name)]

    def _readable(self, name: str) -> bool:
        """Whether this request may read the table (information_schema lists only those)."""
        try:
            self._state.resolver.provider(TableId(self._namespace, name)).check_read(
                self._state.ctx)
        except KalamError:
            return False
        return True

    def table(self, name: str) -> Table | None:
        state = self._state
        view = state.views.get((self._namespace, name))
        if view is not None:
            return view
        try:
            provider = state.resolver.provider(TableId(self._namespace, name))
        except TableNotFoundError:
            return None  # DataFusion reports it; the runner adds close names
        try:
            dataset = provider.scan(state.ctx, include_deleted=state.include_deleted)
        except KalamError as exc:
            if state.error is None:
                state.error = exc
            raise
        state.tables_used.append(provider)
        if next(iter(dataset.get_fragments()), None) is None:
            return _empty_table(dataset.schema)
        return Table(dataset)

    def table_exist(self, name: str) -> bool:
        return name in self.table_names


class RequestCatalog(CatalogProvider):
    __slots__ = ("_state",)

    def __init__(self, state: RequestState) -> None:
        self._state = state

    def schema_names(self) -> set[str]:
        return set(self._state.resolver.namespaces())

    def schema(self, name: str) -> RequestSchema | None:
        if name not in self.schema_names():
            return None
        return RequestSchema(self._state, name)


@functools.lru_cache(maxsize=256)
def _config(namespace: str, target_partitions: int) -> SessionConfig:
    return (SessionConfig()
            .with_default_catalog_and_schema(CATALOG_NAME, namespace)
            .with_create_default_catalog_and_schema(False)
            .with_information_schema(True)
            .with_target_partitions(target_partitions))


def new_session(state: RequestState, *, target_partitions: int = 1) -> SessionContext:
    """A DataFusion session for one request, with the Kalam catalog as default."""
    session = SessionContext(_config(state.ctx.namespace, target_partitions))
    session.register_catalog_provider(CATALOG_NAME, RequestCatalog(state))
    return session
