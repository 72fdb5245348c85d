"""Engine: open/close, execute statements, sessions.

    db = kalam_engine.connect("./data")          # or ":memory:"
    db.execute("SELECT * FROM app.messages", user="alice").to_pandas()
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from kalam_engine.auth.users import role_from_row
from kalam_engine.catalog.cache import SchemaCache
from kalam_engine.catalog.store import CatalogStore
from kalam_engine.handlers import backup as backup_handlers
from kalam_engine.handlers import dml, introspection, live, namespaces, query, table_lock, tables
from kalam_engine.handlers import export as export_handlers
from kalam_engine.handlers import storage as storage_handlers
from kalam_engine.handlers import storages as storages_handlers
from kalam_engine.handlers import users as users_handlers
from kalam_engine.live import LiveEvent, LiveRegistry, SubscribeStatement, Subscription
from kalam_engine.live.registry import LIVE_SCHEMA
from kalam_engine.model.classification import StatementClass
from kalam_engine.model.context import ROOT_USER, ExecutionContext, Role, TableId, TableType
from kalam_engine.model.definitions import ColumnDefinition, TableDefinition
from kalam_engine.model.errors import (
    EngineClosedError,
    InvalidParameterError,
    InvalidSqlError,
    KalamError,
    NamespaceNotFoundError,
    ReadOnlyError,
    UnsupportedError,
)
from kalam_engine.providers import system_extra
from kalam_engine.providers.core import (
    BaseTableProvider,
    TableProviderCore,
    column_positions,
)
from kalam_engine.providers.shared import SharedTableProvider
from kalam_engine.providers.stream import StreamTableProvider
from kalam_engine.providers.system import (
    SYSTEM_NAMESPACE,
    SystemTableProvider,
    system_definition,
)
from kalam_engine.providers.user import UserTableProvider
from kalam_engine.query.functions import IdFunctions
from kalam_engine.query.runner import QueryRunner
from kalam_engine.query.session import TableResolver
from kalam_engine.result import Result
from kalam_engine.sql import backup_commands as bc
from kalam_engine.sql import statements as st
from kalam_engine.sql import storage_commands
from kalam_engine.sql.limits import check_statement_shape
from kalam_engine.sql.names import validate_name, validate_namespace, validate_user_id
from kalam_engine.sql.params import bind_params, check_text
from kalam_engine.sql.parsed import ParsedStatement, split_parsed
from kalam_engine.sql.parser import READ_ONLY_STATEMENTS, parse_statement
from kalam_engine.sql.user_commands import AlterUser, CreateUser, DropUser, ExecuteAsUser
from kalam_engine.storage.catalog_file import catalog_error, open_catalog
from kalam_engine.storage.data_dir import (
    CATALOG_FILE,
    MEMORY,
    check_readable,
    data_path,
    open_errors,
    prepare_writable,
)
from kalam_engine.storage.dir_lock import DirectoryLock
from kalam_engine.storage.manager import StorageManager
from kalam_engine.storage.read_view import ReadOnlyView
from kalam_engine.storage.sqlite_db import DURABILITY_LEVELS, SqliteDatabase
from kalam_engine.storage.storages import StorageRegistry

DEFAULT_NAMESPACE = "default"
# KalamDB's server stops a statement after 300 s; a notebook user can set None (no limit).
DEFAULT_STATEMENT_TIMEOUT: float | None = 300.0


def _default_memory_limit() -> int:
    """A quarter of the machine's memory (2 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 2 << 30


DEFAULT_MEMORY_LIMIT: int | None = _default_memory_limit()  # bytes per statement


def _checked_limit(value: Any, name: str) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not value > 0):
        raise InvalidParameterError(f"{name} must be a positive number or None, not {value!r}")
    return value


_PROVIDER_CLASSES: dict[TableType, type[BaseTableProvider]] = {
    TableType.USER: UserTableProvider,
    TableType.SHARED: SharedTableProvider,
    TableType.STREAM: StreamTableProvider,
}


class Engine:
    """An embedded Kalam database. Thread-safe; one writing engine per data directory.

    Opening a directory takes an exclusive OS lock on it (``kalam.lock``) before anything in
    it is read; a second engine, in this process or another, gets DataDirectoryLockedError.
    ``read_only=True`` takes no lock and never changes the directory: every statement sees
    the writer's latest commit, and writes are refused with ReadOnlyError."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *,
                 cache_capacity: int = 1024, durability: str = "full",
                 fast_paths: bool = True, read_only: bool = False,
                 memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
                 statement_timeout: float | None = DEFAULT_STATEMENT_TIMEOUT) -> None:
        if durability not in DURABILITY_LEVELS:
            raise InvalidParameterError(f"Unknown durability '{durability}'",
                                        hint="use 'full', 'normal' or 'off'")
        if not isinstance(read_only, bool):
            raise InvalidParameterError("read_only must be True or False")
        limits = (_checked_limit(memory_limit, "memory_limit"),
                  _checked_limit(statement_timeout, "statement_timeout"))
        self.path: Path | None = data_path(path)
        self.read_only = read_only
        self._dir_lock: DirectoryLock | None = None
        self._view: ReadOnlyView | None = None
        self._db = self._open_database(durability)
        try:
            self._open(cache_capacity, fast_paths, *limits)
        except BaseException:
            self._abandon()
            raise

    def _open_database(self, durability: str) -> SqliteDatabase:
        """The catalog, opened only after the directory is locked (recovery deletes files)."""
        if self.path is None:
            if self.read_only:
                raise InvalidParameterError(
                    "read_only=True needs a data directory",
                    hint="an in-memory database starts empty; give the directory to read")
            return SqliteDatabase(None, durability)
        if self.read_only:
            check_readable(self.path, CATALOG_FILE)
            with open_errors(self.path):
                return SqliteDatabase(self.path / CATALOG_FILE, read_only=True)
        prepare_writable(self.path)
        lock = DirectoryLock(self.path)
        with open_errors(self.path):
            lock.acquire()
        try:
            with open_errors(self.path):
                db = open_catalog(self.path / CATALOG_FILE, durability)
        except BaseException:
            lock.release()
            raise
        self._dir_lock = lock
        return db

    def _abandon(self) -> None:
        """Undo a failed open: nothing stays open, the directory is unlocked."""
        storage = getattr(self, "storage", None)
        if storage is not None:
            storage.stop_eviction()
        storages = getattr(self, "storages", None)
        if storages is not None:
            storages.close()
        self._db.close()
        if self._dir_lock is not None:
            self._dir_lock.release()

    def _open(self, cache_capacity: int, fast_paths: bool, memory_limit: int | None,
              statement_timeout: float | None) -> None:
        self.catalog = CatalogStore(self._db)
        self.storages = StorageRegistry(self._db, self.path, read_only=self.read_only)
        self.storage = StorageManager(self._db, self.path, read_only=self.read_only,
                                      placer=self.storages)
        self.live = LiveRegistry()
        self._system = self._system_tables()
        self.cache = SchemaCache(self._load_definition, self._build_provider,
                                 self._storage_path, capacity=cache_capacity)
        resolver = TableResolver(self._namespace_names, self._table_names, self.cache.get_provider)
        self.runner = QueryRunner(resolver, IdFunctions(self.storage.seq),
                                  memory_limit=memory_limit)
        self.statement_timeout = statement_timeout
        self._session_ns: dict[str, str] = {}
        self.fast_paths = fast_paths
        self._roles: dict[str, Role] = {}
        self._roles_generation = 0
        self._closed = False
        self._lock = threading.RLock()
        if self.read_only:
            self._view = ReadOnlyView(self._db, self._load_snapshot,
                                      lambda: self.storage.segment_changes)
            with open_errors(self.path or Path(MEMORY)):
                self._view.open()
            self.storage.start_eviction()  # in memory only: the log is the writer's
            return
        with open_errors(self.path or Path(MEMORY)):
            self._bootstrap()
            self.storages.open()  # lock custom storage directories before recovery reads them
            latest = {d.table_id.key: d for d in self.catalog.latest_tables()}
            self.storage.replay(latest)
        # Providers are built when the engine opens (up to the cache's capacity).
        for definition in list(latest.values())[:cache_capacity]:
            self.cache.register(definition)
        self.storage.start_eviction()

    def _load_snapshot(self) -> None:
        """Read-only: rebuild what is held in memory from the snapshot being read."""
        self.catalog.forget_cached()
        latest = {d.table_id.key: d for d in self.catalog.latest_tables()}
        for table_id in self.storage.reload(latest):
            self.cache.retire(table_id, "another process changed or dropped the table")
        self.after_ddl()
        self._forget_roles()

    # --- lifecycle
    def _bootstrap(self) -> None:
        if not self._db.query("SELECT 1 FROM users WHERE user_id = ?", (ROOT_USER,)):
            now = time.time()
            with self._db.transaction() as conn:
                conn.execute("INSERT INTO users (user_id, role, auth_type, created_at, "
                             "updated_at) VALUES (?, 'system', 'internal', ?, ?)",
                             (ROOT_USER, now, now))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.live.close_all()
            self.storage.stop_eviction()
            self.cache.clear()
            self._db.close()
            self.storages.close()
            if self._dir_lock is not None:
                self._dir_lock.release()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def fast_paths(self) -> bool:
        """Whether statements may skip parts of the general path: primary-key lookups served
        without DataFusion, tables handed to DataFusion as prefetched MemTables, the WHERE's
        key/_seq bounds pushed into the read. Off only to compare the answers with the general
        path's."""
        return self._fast_paths

    @fast_paths.setter
    def fast_paths(self, enabled: bool) -> None:
        self._fast_paths = enabled
        self.runner.prefetch = enabled
        self.runner.push_filters = enabled

    @property
    def statement_timeout(self) -> float | None:
        """Seconds a statement's query may run before it is stopped with a ResourceLimitError
        (None: no limit). Settable at any time; the next statement uses the new value."""
        return self.runner.statement_timeout

    @statement_timeout.setter
    def statement_timeout(self, seconds: float | None) -> None:
        self.runner.statement_timeout = _checked_limit(seconds, "statement_timeout")

    @property
    def closed(self) -> bool:
        return self._closed

    # --- executing
    def context(self, user: str | None = None) -> ExecutionContext:
        """The ExecutionContext a request by ``user`` (None: root) runs with."""
        user_id = ROOT_USER if user is None else validate_user_id(user)
        namespace = self._session_ns.get(user_id, DEFAULT_NAMESPACE)
        return ExecutionContext(user_id, self.role_of(user_id), namespace)

    def role_of(self, user_id: str) -> Role:
        """The role recorded in system.users; an unknown user acts with role user.

        Kept in memory between user commands (which clear it): the users table changes only
        through this engine."""
        role = self._roles.get(user_id)
        if role is not None:
            return role
        generation = self._roles_generation
        rows = self._db.query(
            "SELECT role FROM users WHERE user_id = ? AND deleted_at IS NULL", (user_id,))
        role = role_from_row(rows[0][0]) if rows else Role.USER
        if generation == self._roles_generation and len(self._roles) < _ROLE_CACHE_SIZE:
            self._roles[user_id] = role
        return role

    def _forget_roles(self) -> None:
        self._roles_generation += 1
        self._roles.clear()

    def execute(self, sql: str, user: str | None = None,
                params: list[Any] | tuple[Any, ...] | None = None) -> Result:
        """Run one or more statements separated by ``;`` and return the last one's result."""
        if self._closed:
            raise EngineClosedError("The engine is closed", hint="open it again with connect()")
        if not isinstance(sql, str):
            raise InvalidParameterError(f"sql must be a string, not {type(sql).__name__}",
                                        hint="e.g. db.execute('SELECT 1')")
        check_text(sql)  # comments included, which the split leaves out
        statements = split_parsed(sql)  # each statement read once, then handed down
        if not statements:
            raise InvalidParameterError("Empty SQL", hint="give at least one statement")
        param_list = bind_params(statements, params)
        result: Result | None = None
        for parsed in statements:
            ctx = self.context(user)
            started = time.perf_counter()
            result = self._execute_one(parsed, ctx, param_list)
            result.took_ms = (time.perf_counter() - started) * 1000
            result.statement = parsed.text
        assert result is not None
        return result

    def subscribe(self, sql: str, user: str | None = None, *, batch_size: int | None = None,
                  last_rows: int | None = None, from_seq: int | None = None,
                  callback: Callable[[LiveEvent], object] | None = None,
                  max_queue: int | None = None, subscription_id: str | None = None,
                  connection_id: str = "local") -> Subscription:
        """A live query: ``SELECT cols FROM ns.t [WHERE cond]`` as ``user`` (None: root).

        It delivers the rows matching now in batches of ``batch_size`` (at most 1000; only the
        newest ``last_rows``, or only rows changed after ``from_seq``), then every committed
        insert, update and delete that concerns it, in commit order, with nothing lost or
        repeated in between. Read it with ``next_event(timeout=)`` or by iterating, or give
        ``callback``; ``close()`` it (or use ``with``). More than ``max_queue`` unread change
        events end it with ResourceLimitError; writers never wait for it."""
        if self._closed:
            raise EngineClosedError("The engine is closed", hint="open it again with connect()")
        return self.live.subscribe(
            self, sql, self.context(user), batch_size=batch_size, last_rows=last_rows,
            from_seq=from_seq, callback=callback, max_queue=max_queue,
            subscription_id=subscription_id, connection_id=connection_id)

    def _execute_one(self, parsed: ParsedStatement, ctx: ExecutionContext,
                     params: list[Any] | None) -> Result:
        check_statement_shape(parsed.text)
        try:
            return self.run_statement(parse_statement(parsed), ctx, params)
        except RecursionError:
            raise InvalidSqlError("The statement is nested too deeply to read",
                                  hint="flatten the expression, e.g. with a WITH clause") from None

    def run_statement(self, stmt: object, ctx: ExecutionContext,
                      params: list[Any] | None) -> Result:
        """Run one parsed statement with ``ctx``; ``result.as_user`` names whose rows it used."""
        if self._view is not None:
            return self._run_read_only(stmt, ctx, params)
        return self._run_statement(stmt, ctx, params)

    def _run_read_only(self, stmt: object, ctx: ExecutionContext,
                       params: list[Any] | None) -> Result:
        """Refuse writes; run reads on the writer's latest commit (one snapshot each)."""
        if not isinstance(stmt, _READ_ONLY_ALLOWED):
            words = _CAMEL.sub(" ", type(stmt).__name__).upper().removesuffix(" STATEMENT")
            raise ReadOnlyError(
                f"{words} is refused: this engine was opened with read_only=True",
                hint="run writes in the engine or notebook that holds the directory, or close "
                     "that one and open the directory without read_only=True")
        assert self._view is not None

        def call(reloaded: bool) -> Result:
            run_ctx = ctx
            if reloaded and ctx.as_user is None:  # roles may have changed: take the new one
                run_ctx = ExecutionContext(ctx.user_id, self.role_of(ctx.user_id),
                                           ctx.namespace, ctx.request_id, ctx.started_at)
            return self._run_statement(stmt, run_ctx, params)

        return self._view.run(call)

    def _run_statement(self, stmt: object, ctx: ExecutionContext,
                       params: list[Any] | None) -> Result:
        if isinstance(stmt, ExecuteAsUser):  # sets as_user to the target itself
            return users_handlers.execute_as_user(self, stmt, ctx, params)
        result = self._dispatch(stmt, ctx, params)
        result.as_user = ctx.as_user or ctx.user_id
        return result

    def _dispatch(self, stmt: object, ctx: ExecutionContext,
                  params: list[Any] | None) -> Result:
        handler = _HANDLERS.get(type(stmt))
        if handler is None:
            if isinstance(stmt, st.TransactionStatement):
                raise UnsupportedError(
                    f"{stmt.verb} is not supported: every statement commits on its own",
                    hint="each statement is atomic; group rows into one INSERT for atomicity")
            raise UnsupportedError(f"{type(stmt).__name__} is not supported yet")
        if type(stmt) in _USER_COMMANDS:
            try:
                return handler(self, stmt, ctx)
            finally:
                self._forget_roles()
        if type(stmt) in _WITH_PARAMS:
            return handler(self, stmt, ctx, params)
        return handler(self, stmt, ctx)

    # --- bulk
    def insert_arrow(self, table: str | TableId, data: pa.Table | pa.RecordBatch, *,
                     user: str | None = None, user_column: str | None = None) -> int:
        """Insert Arrow rows in one go (all or nothing per user). With ``user_column`` each row
        goes to the partition of the user named in that column."""
        if self._closed:
            raise EngineClosedError("The engine is closed")
        if not isinstance(data, (pa.Table, pa.RecordBatch)):
            raise InvalidParameterError(
                f"data must be a pyarrow Table or RecordBatch, not {type(data).__name__}",
                hint="convert with pyarrow.Table.from_pandas(df), or use df.kalam.insert(...)")
        if not isinstance(table, (str, TableId)):
            raise InvalidParameterError(
                f"table must be a name such as 'app.messages', not {type(table).__name__}")
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        column_positions(data.column_names)
        table_id = self._parse_table_name(table, self.context(user))
        with table_lock.writing(self, table_id) as provider:  # the version current under it
            return self._insert_arrow(provider, data, user, user_column)

    def _insert_arrow(self, provider: BaseTableProvider, data: pa.Table, user: str | None,
                      user_column: str | None) -> int:
        if user_column is None:
            return provider.insert(self.context(user), data)
        if user_column not in data.column_names:
            raise InvalidParameterError(f"The data has no column '{user_column}'")
        if provider.table_type is TableType.SHARED:
            raise InvalidParameterError("user_column only applies to USER and STREAM tables")
        users = data[user_column]
        if users.null_count:
            raise InvalidParameterError(f"Column '{user_column}' has NULL user ids",
                                        hint="every row needs the id of its user")
        try:
            users = users.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise InvalidParameterError(
                f"Column '{user_column}' holds {users.type}, not user ids",
                hint="user ids are text (or whole numbers)") from None
        keep_col = provider.core.definition.column(user_column) is not None
        payload = data if keep_col else data.drop_columns([user_column])
        import pyarrow.compute as pc

        groups = []
        for uid in pc.unique(users).to_pylist():
            ctx = self.context(str(uid))
            provider.check_write(ctx)
            groups.append((ctx, payload.filter(pc.equal(users, uid))))
        # Validate every group before writing any, so bad input writes nothing.
        for ctx, rows in groups:
            provider._complete(ctx, rows, fill_defaults=True)
        return sum(provider.insert(ctx, rows) for ctx, rows in groups)

    # --- introspection used by the notebook layer
    def catalog_snapshot(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {ns: {} for ns in self._namespace_names()}
        for d in self.catalog.latest_tables():
            out.setdefault(d.table_id.namespace, {})[d.table_id.name] = d.user_column_names()
        out[SYSTEM_NAMESPACE] = {name: list(schema.names) for name, (schema, _, _) in
                                 self._system.items()}
        return out

    def table_stats(self) -> list[dict[str, Any]]:
        out = []
        for d in self.catalog.latest_tables():
            entry = self.cache.peek(d.table_id)
            store = self.storage.existing_store(d.table_id)
            hot_rows, hot_bytes = store.hot_stats() if store else (0, 0)
            cold_rows, cold_bytes, _segments = store.cold_stats() if store else (0, 0, 0)
            out.append({"table": str(d.table_id), "type": d.table_type.value,
                        "schema_version": d.schema_version,
                        "provider_id": id(entry.provider) if entry else None,
                        "cached": entry is not None,
                        "hot_rows": hot_rows, "hot_bytes": hot_bytes,
                        "cold_rows": cold_rows, "cold_bytes": cold_bytes,
                        "users": len(store.scopes()) if store and
                        d.table_type is not TableType.SHARED else 0})
        return out

    def user_count(self) -> int:
        users: set[str] = set()
        for d in self.catalog.latest_tables():
            store = self.storage.existing_store(d.table_id)
            if store is not None and d.table_type is not TableType.SHARED:
                users.update(store.scopes())
        return len(users)

    def data_sizes(self) -> dict[str, int]:
        return self.storage.data_sizes()

    # --- helpers for handlers
    def namespace_exists(self, name: str) -> bool:
        return name == DEFAULT_NAMESPACE or self.catalog.namespace_exists(name)

    def all_namespaces(self) -> list[tuple[str, float, dict]]:
        rows = self.catalog.namespaces()
        if not any(r[0] == DEFAULT_NAMESPACE for r in rows):
            rows.insert(0, (DEFAULT_NAMESPACE, 0.0, {}))
        return rows

    def set_session_namespace(self, user_id: str, namespace: str) -> None:
        self._session_ns[user_id] = namespace

    def table_id_for(self, ref: st.TableRef, ctx: ExecutionContext,
                     must_exist_ns: bool = False) -> TableId:
        ns = validate_namespace(ref.namespace) if ref.namespace is not None \
            else ctx.namespace
        name = validate_name(ref.name, "table")
        if must_exist_ns and not self.namespace_exists(ns):
            raise NamespaceNotFoundError(f"Namespace '{ns}' does not exist",
                                         hint=f"Create it first with CREATE NAMESPACE {ns}")
        return TableId(ns, name)

    def _parse_table_name(self, table: str | TableId, ctx: ExecutionContext) -> TableId:
        if isinstance(table, TableId):
            return table
        ns, _, name = table.rpartition(".")
        return self.table_id_for(st.TableRef(ns or None, name), ctx)

    def after_ddl(self) -> None:
        self.runner.clear_plans()

    def drop_table_everywhere(self, table_id: TableId) -> None:
        with table_lock.held(self, table_id):
            self.catalog.drop_table(table_id)
            self.cache.retire(table_id, "the table was dropped")
            self.storage.drop_table(table_id)
        self.live.table_dropped(table_id)
        self.after_ddl()

    def backfill_column(self, old: TableDefinition, new: TableDefinition,
                        column: ColumnDefinition) -> None:
        """Give existing rows a new NOT NULL column's DEFAULT, as new versions, and save ``new``
        in the same SQLite transaction: a crash leaves the old table or the new one, never
        backfilled rows without their column (they would reappear in a later column)."""
        store = self.storage.existing_store(old.table_id)
        if store is None or column.default is None:
            self.catalog.save_table(new)
            return
        provider = _PROVIDER_CLASSES[new.table_type](
            TableProviderCore.from_definition(new), store, self.storage.seq)
        batches = []
        for scope in store.scopes():
            rows = store.read(scope, old.arrow_schema())
            if rows.num_rows == 0:
                continue
            rows = rows.drop_columns(["_seq", "_deleted"])
            rows = rows.append_column(column.name, pa.array([column.default.value] * len(rows)))
            ctx = ExecutionContext(scope or ROOT_USER, Role.SYSTEM)
            batches.append((scope, provider._complete(ctx, rows, fill_defaults=False)))

        def save() -> None:
            self.catalog.save_table(new)
            store.bind(new)  # a flush the backfill triggers must keep the new column

        store.write_batches(batches, new.schema_version, "update", save)

    # --- cache plumbing
    def _namespace_names(self) -> list[str]:
        return [n for n, _, _ in self.all_namespaces()] + [SYSTEM_NAMESPACE]

    def _table_names(self, namespace: str) -> list[str]:
        if namespace == SYSTEM_NAMESPACE:
            return list(self._system)
        return self.catalog.table_names(namespace)

    def _load_definition(self, table_id: TableId) -> TableDefinition | None:
        if table_id.namespace == SYSTEM_NAMESPACE:
            sys_table = self._system.get(table_id.name)
            return sys_table[1] if sys_table else None
        return self.catalog.load_table(table_id)

    def _build_provider(self, definition: TableDefinition) -> BaseTableProvider:
        if definition.table_type is TableType.SYSTEM:
            schema, _, builder = self._system[definition.table_id.name]
            return SystemTableProvider(definition, schema, builder)
        store = self.storage.store_for(definition)
        core = TableProviderCore.from_definition(definition)
        return _PROVIDER_CLASSES[definition.table_type](core, store, self.storage.seq)

    def _storage_path(self, definition: TableDefinition) -> str:
        base = str(self.path / "storage") if self.path else ":memory:"
        tid = definition.table_id
        suffix = "/{userId}" if definition.table_type is TableType.USER else ""
        return f"{base}/{tid.namespace}/{tid.name}{suffix}"

    def _system_tables(self) -> dict[str, tuple[pa.Schema, TableDefinition,
                                                 Callable[[ExecutionContext], pa.Table]]]:
        from kalam_engine.handlers.introspection import (
            columns_table,
            namespaces_table,
            schemas_table,
            stats_table,
            tables_table,
        )
        from kalam_engine.handlers.users import audit_log_table, jobs_table, users_table

        builders: dict[str, tuple[Callable[[ExecutionContext], pa.Table], str | None]] = {
            "namespaces": (lambda ctx: namespaces_table(self), "namespace_id"),
            "tables": (lambda ctx: tables_table(self.catalog.latest_tables()), None),
            "schemas": (lambda ctx: schemas_table(self), None),
            "columns": (lambda ctx: columns_table(self.catalog.latest_tables()), None),
            "users": (lambda ctx: users_table(self, ctx), "user_id"),
            "jobs": (lambda ctx: jobs_table(self), "job_id"),
            "audit_log": (lambda ctx: audit_log_table(self), "audit_id"),
            "stats": (lambda ctx: stats_table(self), None),
            "live": (lambda ctx: self.live.live_table(), "live_id"),
            "storages": (lambda ctx: storages_handlers.storages_table(self), "storage_id"),
            "manifest": (lambda ctx: storages_handlers.manifest_table(self), "cache_key"),
        }
        out = {}
        for name, (builder, pk) in builders.items():
            schema = _SYSTEM_SCHEMAS[name]
            out[name] = (schema, system_definition(name, schema, pk), builder)
        for name, builder in system_extra.builders(self).items():
            schema, pk = system_extra.SCHEMAS[name], system_extra.PRIMARY_KEYS[name]
            out[name] = (schema, system_definition(name, schema, pk), builder)
        return out

    # --- public surface of the notebook layer (kalam_jupyter.backend.KalamBackend)
    @staticmethod
    def classify(sql: str) -> StatementClass:
        """What the statements of ``sql`` do, from their text alone (nothing runs): "read"
        when every one only reads, "invalid" when one does not parse, else "write"; with the
        namespace of the last ``USE``. Needs no engine: ``Engine.classify(sql)`` works too."""
        try:
            stmts = [parse_statement(parsed) for parsed in split_parsed(sql)]
        except (KalamError, RecursionError):
            return StatementClass("invalid")
        uses = [s.name.lower() for s in stmts if isinstance(s, st.UseNamespace)]
        read = bool(stmts) and all(isinstance(s, READ_ONLY_STATEMENTS) for s in stmts)
        return StatementClass("read" if read else "write", uses[-1] if uses else None)

    def table_definition(self, table: str | TableId) -> TableDefinition:
        """The current definition (columns, types, NOT NULL, defaults) of ``table``
        (``"namespace.table"``); TableNotFoundError when there is none."""
        from kalam_engine.model.errors import TableNotFoundError

        if self._closed:
            raise EngineClosedError("The engine is closed", hint="open it again with connect()")
        table_id = self._parse_table_name(table, self.context())
        definition = self._load_definition(table_id)
        if definition is None:
            raise TableNotFoundError(f"Table '{table_id}' does not exist",
                                     hint="check the name with SHOW TABLES")
        return definition


_ROLE_CACHE_SIZE = 100_000
# UseNamespace changes only the session; BEGIN/COMMIT get their own UnsupportedError.
# EXECUTE AS USER is refused: every attempt writes an audit row.
_READ_ONLY_ALLOWED = (*READ_ONLY_STATEMENTS, st.UseNamespace, st.TransactionStatement)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_USER_COMMANDS = frozenset({CreateUser, AlterUser, DropUser})


def connect(path: str | os.PathLike[str] = ":memory:", **options: Any) -> Engine:
    """Open (or create) a database in directory ``path``, or in memory with ``":memory:"``.

    The directory is locked for the engine's life (until ``close()`` or the process ends):
    another engine on it gets DataDirectoryLockedError. ``read_only=True`` opens an existing
    directory without a lock, alongside a writer, and refuses writes."""
    try:
        return Engine(path, **options)
    except KalamError:
        raise
    except sqlite3.DatabaseError as exc:  # e.g. a damaged page of kalam.sqlite read on open
        raise catalog_error(Path(path) / CATALOG_FILE, exc) from None
    except TypeError as exc:
        raise InvalidParameterError(f"Bad connect() option: {exc}") from None


_HANDLERS: dict[type, Callable[..., Result]] = {
    st.QueryStatement: query.query,
    st.InsertStatement: dml.insert,
    st.UpdateStatement: dml.update,
    st.DeleteStatement: dml.delete,
    st.CreateNamespace: namespaces.create_namespace,
    st.DropNamespace: namespaces.drop_namespace,
    st.AlterNamespace: namespaces.alter_namespace,
    st.UseNamespace: namespaces.use_namespace,
    st.CreateTable: tables.create_table,
    st.DropTable: tables.drop_table,
    st.AlterTable: tables.alter_table,
    st.ShowNamespaces: introspection.show_namespaces,
    st.ShowTables: introspection.show_tables,
    st.DescribeTable: introspection.describe_table,
    st.ShowStats: introspection.show_stats,
    st.StorageFlush: storage_handlers.storage_command,
    st.StorageCompact: storage_handlers.storage_command,
    CreateUser: users_handlers.create_user,
    AlterUser: users_handlers.alter_user,
    DropUser: users_handlers.drop_user,
    SubscribeStatement: live.subscribe,
    bc.BackupDatabase: backup_handlers.backup_database,
    bc.RestoreDatabase: backup_handlers.restore_database,
    bc.ExportUserData: export_handlers.export_user_data,
    bc.ShowExport: export_handlers.show_export,
    storage_commands.CreateStorage: storages_handlers.create_storage,
    storage_commands.DropStorage: storages_handlers.drop_storage,
    storage_commands.ShowStorages: storages_handlers.show_storages,
    storage_commands.StorageCheck: storages_handlers.storage_check,
}
_WITH_PARAMS = {st.QueryStatement, st.InsertStatement, st.UpdateStatement, st.DeleteStatement}


def _system_schemas() -> dict[str, pa.Schema]:
    ts = pa.timestamp("us", tz="UTC")
    s, i32, b = pa.string(), pa.int32(), pa.bool_()
    return {
        "namespaces": pa.schema([("namespace_id", s), ("name", s), ("created_at", ts),
                                 ("options", s), ("table_count", i32)]),
        "tables": pa.schema([("namespace_id", s), ("table_name", s), ("table_type", s),
                             ("storage_id", s), ("version", i32), ("options", s),
                             ("comment", s), ("updated_at", ts), ("created_at", ts)]),
        "schemas": pa.schema([("table_id", s), ("table_name", s), ("namespace_id", s),
                              ("table_type", s), ("created_at", ts), ("schema_version", i32),
                              ("columns", s), ("table_comment", s), ("updated_at", ts),
                              ("options", s), ("access_level", s), ("is_latest", b),
                              ("storage_id", s), ("use_user_storage", b)]),
        "columns": pa.schema([("namespace_id", s), ("table_name", s), ("version", i32),
                              ("column_id", i32), ("column_name", s), ("comment", s),
                              ("data_type", s), ("default_value", s), ("ordinal", i32),
                              ("nullable", b), ("primary_key", b), ("primary_key_pos", i32)]),
        "users": pa.schema([("user_id", s), ("password_hash", s), ("role", s), ("email", s),
                            ("auth_type", s), ("auth_data", s), ("storage_mode", s),
                            ("storage_id", s), ("failed_login_attempts", i32),
                            ("locked_until", ts), ("last_login_at", ts), ("created_at", ts),
                            ("updated_at", ts), ("last_seen", ts), ("deleted_at", ts)]),
        "jobs": pa.schema([("job_id", s), ("job_type", s), ("status", s), ("parameters", s),
                           ("message", s), ("exception_trace", s), ("created_at", ts),
                           ("updated_at", ts), ("started_at", ts), ("finished_at", ts)]),
        "stats": pa.schema([("metric_name", s), ("metric_value", s)]),
        "live": LIVE_SCHEMA,
        "audit_log": pa.schema([("audit_id", pa.int64()), ("timestamp", ts),
                                ("actor_user_id", s), ("action", s), ("target", s),
                                ("details", s), ("subject_user_id", s)]),
        "storages": storages_handlers.STORAGE_SCHEMA,
        "manifest": storages_handlers.MANIFEST_SCHEMA,
    }


_SYSTEM_SCHEMAS = _system_schemas()
