"""Engine: open/close, execute statements, subscribe, bulk insert.

    db = kalam_engine.connect("./data")          # or ":memory:"
    db.execute("SELECT * FROM app.messages", user="alice").to_pandas()

The engine parses and times statements; ``kalam_engine.handlers`` runs them with the engine's
``Services`` (built by ``kalam_engine.lifecycle``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import pyarrow as pa

from kalam_engine import handlers, lifecycle
from kalam_engine.catalog.cache import SchemaCache
from kalam_engine.catalog.store import CatalogStore
from kalam_engine.handlers import dml, introspection
from kalam_engine.handlers.system_tables import SYSTEM_TABLES
from kalam_engine.lifecycle import DEFAULT_MEMORY_LIMIT, DEFAULT_STATEMENT_TIMEOUT, checked_limit
from kalam_engine.live import LiveEvent, LiveRegistry, Subscription
from kalam_engine.model.classification import StatementClass
from kalam_engine.model.context import ROOT_USER, ExecutionContext, Role, TableId
from kalam_engine.model.definitions import TableDefinition
from kalam_engine.model.errors import (
    EngineClosedError,
    InvalidParameterError,
    InvalidSqlError,
    KalamError,
    TableNotFoundError,
)
from kalam_engine.query.runner import QueryRunner
from kalam_engine.result import Result
from kalam_engine.services import DEFAULT_NAMESPACE, Services
from kalam_engine.sql.limits import check_statement_shape
from kalam_engine.sql.names import validate_user_id
from kalam_engine.sql.params import bind_params, check_text
from kalam_engine.sql.parsed import ParsedStatement, split_parsed
from kalam_engine.sql.parser import READ_ONLY_STATEMENTS, Statement, parse_statement
from kalam_engine.sql.statements import UseNamespace
from kalam_engine.storage.catalog_file import catalog_error
from kalam_engine.storage.data_dir import CATALOG_FILE, data_path
from kalam_engine.storage.manager import StorageManager
from kalam_engine.storage.read_view import ReadOnlyView
from kalam_engine.storage.sqlite_db import SqliteDatabase
from kalam_engine.storage.storages import StorageRegistry

T = TypeVar("T")


class _Part(Generic[T]):
    """A read-only engine attribute that is the attribute of its services of the same name."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name

    def __get__(self, engine: Engine | None, owner: type | None = None) -> T:
        if engine is None:  # looked up on the class
            return self  # type: ignore[return-value]
        return getattr(engine.services, self.name or "")


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
        options = lifecycle.checked_options(durability, read_only, cache_capacity, fast_paths,
                                            memory_limit, statement_timeout)
        self._lock = threading.RLock()
        self.services: Services = lifecycle.open_services(
            data_path(path), read_only, durability, options, SYSTEM_TABLES)

    def close(self) -> None:
        with self._lock:
            if not self.services.closed:
                lifecycle.close(self.services)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- executing
    def context(self, user: str | None = None) -> ExecutionContext:
        """The ExecutionContext a request by ``user`` (None: root) runs with."""
        user_id = ROOT_USER if user is None else validate_user_id(user)
        namespace = self.services.session_namespaces.get(user_id, DEFAULT_NAMESPACE)
        return ExecutionContext(user_id, self.role_of(user_id), namespace)

    def role_of(self, user_id: str) -> Role:
        """The role recorded in system.users; an unknown user acts with role user."""
        return self.services.role_of(user_id)

    def execute(self, sql: str, user: str | None = None,
                params: list[Any] | tuple[Any, ...] | None = None) -> Result:
        """Run one or more statements separated by ``;`` and return the last one's result."""
        self._check_open()
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

    def _execute_one(self, parsed: ParsedStatement, ctx: ExecutionContext,
                     params: list[Any] | None) -> Result:
        check_statement_shape(parsed.text)
        try:
            return self.run_statement(parse_statement(parsed), ctx, params)
        except RecursionError:
            raise InvalidSqlError("The statement is nested too deeply to read",
                                  hint="flatten the expression, e.g. with a WITH clause") from None

    def run_statement(self, stmt: Statement, ctx: ExecutionContext,
                      params: list[Any] | None) -> Result:
        """Run one parsed statement with ``ctx``; ``result.as_user`` names whose rows it used."""
        return handlers.run_statement(self.services, stmt, ctx, params)

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
        self._check_open()
        return self.services.live.subscribe(
            self.services, sql, self.context(user), batch_size=batch_size,
            last_rows=last_rows, from_seq=from_seq, callback=callback, max_queue=max_queue,
            subscription_id=subscription_id, connection_id=connection_id)

    def insert_arrow(self, table: str | TableId, data: pa.Table | pa.RecordBatch, *,
                     user: str | None = None, user_column: str | None = None) -> int:
        """Insert Arrow rows in one go (all or nothing per user). With ``user_column`` each row
        goes to the partition of the user named in that column."""
        self._check_open()
        return dml.insert_arrow(self.services, table, data, user, user_column, self.context)

    def _check_open(self) -> None:
        if self.services.closed:
            raise EngineClosedError("The engine is closed", hint="open it again with connect()")

    # --- introspection used by the notebook layer
    def catalog_snapshot(self) -> dict[str, dict[str, list[str]]]:
        return introspection.catalog_snapshot(self.services)

    def table_stats(self) -> list[dict[str, Any]]:
        return introspection.table_stats(self.services)

    def user_count(self) -> int:
        return introspection.user_count(self.services)

    def data_sizes(self) -> dict[str, int]:
        return self.services.storage.data_sizes()

    def namespace_exists(self, name: str) -> bool:
        return self.services.namespace_exists(name)

    def all_namespaces(self) -> list[tuple[str, float, dict]]:
        return self.services.all_namespaces()

    # --- the services' parts, by their public names
    path = _Part[Path | None]()
    read_only = _Part[bool]()
    closed = _Part[bool]()
    catalog = _Part[CatalogStore]()
    cache = _Part[SchemaCache]()
    storage = _Part[StorageManager]()
    storages = _Part[StorageRegistry]()
    runner = _Part[QueryRunner]()
    live = _Part[LiveRegistry]()
    _db = _Part[SqliteDatabase]("db")
    _view = _Part[ReadOnlyView | None]("view")

    @property
    def fast_paths(self) -> bool:
        """Whether statements may skip parts of the general path: primary-key lookups served
        without DataFusion, tables handed to DataFusion as prefetched MemTables, the WHERE's
        key/_seq bounds pushed into the read. Off only to compare the answers with the general
        path's."""
        return self.services.fast_paths

    @fast_paths.setter
    def fast_paths(self, enabled: bool) -> None:
        self.services.fast_paths = enabled

    @property
    def statement_timeout(self) -> float | None:
        """Seconds a statement's query may run before it is stopped with a ResourceLimitError
        (None: no limit). Settable at any time; the next statement uses the new value."""
        return self.services.runner.statement_timeout

    @statement_timeout.setter
    def statement_timeout(self, seconds: float | None) -> None:
        self.services.runner.statement_timeout = checked_limit(seconds, "statement_timeout")

    # --- public surface of the notebook layer (kalam_jupyter.backend.KalamBackend)
    @staticmethod
    def classify(sql: str) -> StatementClass:
        """What the statements of ``sql`` do, from their text alone (nothing runs): "read"
        when every one only reads, "invalid" when one does not parse, else "write"; with the
        namespace of the last ``USE``. Needs no engine: ``Engine.classify(sql)`` works too."""
        if not isinstance(sql, str):
            raise InvalidParameterError(f"sql must be a string, not {type(sql).__name__}",
                                        hint="e.g. Engine.classify('SELECT 1')")
        try:
            stmts = [parse_statement(parsed) for parsed in split_parsed(sql)]
        except (KalamError, RecursionError):
            return StatementClass("invalid")
        if not stmts:
            return StatementClass("invalid")
        uses = [s.name.lower() for s in stmts if isinstance(s, UseNamespace)]
        read = bool(stmts) and all(isinstance(s, READ_ONLY_STATEMENTS) for s in stmts)
        return StatementClass("read" if read else "write", uses[-1] if uses else None)

    def table_definition(self, table: str | TableId) -> TableDefinition:
        """The current definition (columns, types, NOT NULL, defaults) of ``table``
        (``"namespace.table"``); TableNotFoundError when there is none."""
        self._check_open()
        table_id = self.services.named_table(table, self.context())
        definition = self.services.load_definition(table_id)
        if definition is None:
            raise TableNotFoundError(f"Table '{table_id}' does not exist",
                                     hint="check the name with SHOW TABLES")
        return definition


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
