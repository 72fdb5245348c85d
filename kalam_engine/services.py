"""Services: what a statement handler may use, in one typed object (KalamDB's AppContext).

``kalam_engine.lifecycle`` builds it when an engine opens (and rebuilds its parts in place on
RESTORE); every handler gets it as its first argument. It holds the components (catalog,
schema cache, storage, runner, live registry, storages) and the small amount of per-engine
state handlers share: session namespaces and the cache of user roles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from kalam_engine.auth.users import role_from_row
from kalam_engine.catalog.cache import SchemaCache
from kalam_engine.catalog.store import CatalogStore
from kalam_engine.live.registry import LiveRegistry
from kalam_engine.model.context import ExecutionContext, Role, TableId, TableType
from kalam_engine.model.definitions import TableDefinition
from kalam_engine.model.errors import InvalidParameterError, NamespaceNotFoundError
from kalam_engine.providers.core import BaseTableProvider, TableProviderCore
from kalam_engine.providers.shared import SharedTableProvider
from kalam_engine.providers.stream import StreamTableProvider
from kalam_engine.providers.system import SYSTEM_NAMESPACE
from kalam_engine.providers.user import UserTableProvider
from kalam_engine.query.runner import QueryRunner
from kalam_engine.sql import statements as st
from kalam_engine.sql.names import validate_name, validate_namespace
from kalam_engine.storage.dir_lock import DirectoryLock
from kalam_engine.storage.manager import StorageManager
from kalam_engine.storage.read_view import ReadOnlyView
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.storages import StorageRegistry
from kalam_engine.storage.table_store import TableStore

DEFAULT_NAMESPACE = "default"
ROLE_CACHE_SIZE = 100_000
SystemRows = Callable[["Services", ExecutionContext], pa.Table]

PROVIDER_CLASSES: dict[TableType, type[BaseTableProvider]] = {
    TableType.USER: UserTableProvider,
    TableType.SHARED: SharedTableProvider,
    TableType.STREAM: StreamTableProvider,
}


@dataclass(frozen=True)
class SystemTable:
    """One ``system.*`` table: its definition, Arrow schema and the function building its rows."""

    definition: TableDefinition
    schema: pa.Schema
    rows: SystemRows


class Services:
    """The components and shared state of one open engine."""

    catalog: CatalogStore
    storages: StorageRegistry
    storage: StorageManager
    live: LiveRegistry
    cache: SchemaCache
    runner: QueryRunner
    view: ReadOnlyView | None  # set when the engine was opened with read_only=True

    def __init__(self, path: Path | None, read_only: bool, db: SqliteDatabase,
                 dir_lock: DirectoryLock | None,
                 system_tables: Mapping[str, SystemTable]) -> None:
        self.path = path
        self.read_only = read_only
        self.db = db
        self.dir_lock = dir_lock
        self.system_tables = system_tables
        self.view = None
        self.closed = False
        self.session_namespaces: dict[str, str] = {}
        self._roles: dict[str, Role] = {}
        self._roles_generation = 0

    @property
    def fast_paths(self) -> bool:
        """Whether statements may skip parts of the general path (``Engine.fast_paths``)."""
        return self.runner.prefetch

    @fast_paths.setter
    def fast_paths(self, enabled: bool) -> None:
        self.runner.prefetch = enabled
        self.runner.push_filters = enabled

    # --- users and sessions
    def role_of(self, user_id: str) -> Role:
        """The role recorded in system.users; an unknown user acts with role user. Kept in
        memory until a user command runs (``forget_roles``)."""
        role = self._roles.get(user_id)
        if role is not None:
            return role
        generation = self._roles_generation
        rows = self.db.query(
            "SELECT role FROM users WHERE user_id = ? AND deleted_at IS NULL", (user_id,))
        role = role_from_row(rows[0][0]) if rows else Role.USER
        if generation == self._roles_generation and len(self._roles) < ROLE_CACHE_SIZE:
            self._roles[user_id] = role
        return role

    def forget_roles(self) -> None:
        self._roles_generation += 1
        self._roles.clear()

    # --- names
    def namespace_exists(self, name: str) -> bool:
        return name == DEFAULT_NAMESPACE or self.catalog.namespace_exists(name)

    def all_namespaces(self) -> list[tuple[str, float, dict]]:
        rows = self.catalog.namespaces()
        if not any(r[0] == DEFAULT_NAMESPACE for r in rows):
            rows.insert(0, (DEFAULT_NAMESPACE, 0.0, {}))
        return rows

    def namespace_names(self) -> list[str]:
        return [n for n, _, _ in self.all_namespaces()] + [SYSTEM_NAMESPACE]

    def table_names(self, namespace: str) -> list[str]:
        if namespace == SYSTEM_NAMESPACE:
            return list(self.system_tables)
        return self.catalog.table_names(namespace)

    def table_id_for(self, ref: st.TableRef, ctx: ExecutionContext,
                     must_exist_ns: bool = False) -> TableId:
        """``ref`` resolved against the session namespace of ``ctx``, names validated."""
        ns = validate_namespace(ref.namespace) if ref.namespace is not None else ctx.namespace
        name = validate_name(ref.name, "table")
        if must_exist_ns and not self.namespace_exists(ns):
            raise NamespaceNotFoundError(f"Namespace '{ns}' does not exist",
                                         hint=f"Create it first with CREATE NAMESPACE {ns}")
        return TableId(ns, name)

    def named_table(self, table: str | TableId, ctx: ExecutionContext) -> TableId:
        """``"namespace.table"`` (or ``"table"`` in the session namespace) as a TableId."""
        if isinstance(table, TableId):
            return table
        if not isinstance(table, str):
            raise InvalidParameterError(
                f"A table is named by a string, not {type(table).__name__}",
                hint="e.g. 'app.messages'")
        ns, _, name = table.rpartition(".")
        return self.table_id_for(st.TableRef(ns or None, name), ctx)

    def load_definition(self, table_id: TableId) -> TableDefinition | None:
        """The latest definition of a table (system tables included), or None."""
        if table_id.namespace == SYSTEM_NAMESPACE:
            system = self.system_tables.get(table_id.name)
            return system.definition if system else None
        return self.catalog.load_table(table_id)

    def close_names(self, ctx: ExecutionContext, name: str) -> str:
        """A hint naming tables close to ``name`` (the runner's, as for an unknown table in a
        query)."""
        return self.runner._close_names(ctx, name)

    # --- tables
    def after_ddl(self) -> None:
        """Plans cached before a catalog change may name what no longer exists."""
        self.runner.clear_plans()

    def new_provider(self, definition: TableDefinition, store: TableStore) -> BaseTableProvider:
        """A provider of a USER, SHARED or STREAM table over ``store``."""
        core = TableProviderCore.from_definition(definition)
        return PROVIDER_CLASSES[definition.table_type](core, store, self.storage.seq)
