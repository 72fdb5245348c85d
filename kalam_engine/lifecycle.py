"""An engine's life: open the catalog (after locking the directory), build the services, create
the root user, replay the hot log (or, read-only, open the view of the writer's commits);
rebuild them in place on RESTORE; close them."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kalam_engine.catalog.cache import SchemaCache
from kalam_engine.catalog.store import CatalogStore
from kalam_engine.live.registry import LiveRegistry
from kalam_engine.model.context import ROOT_USER, TableType
from kalam_engine.model.definitions import TableDefinition
from kalam_engine.model.errors import InvalidParameterError
from kalam_engine.providers.core import BaseTableProvider
from kalam_engine.providers.system import SystemTableProvider
from kalam_engine.query.functions import IdFunctions
from kalam_engine.query.runner import QueryRunner
from kalam_engine.query.session import TableResolver
from kalam_engine.services import Services, SystemTable
from kalam_engine.storage.catalog_file import open_catalog
from kalam_engine.storage.data_dir import (
    CATALOG_FILE,
    MEMORY,
    check_readable,
    open_errors,
    prepare_writable,
)
from kalam_engine.storage.dir_lock import DirectoryLock
from kalam_engine.storage.manager import StorageManager
from kalam_engine.storage.read_view import ReadOnlyView
from kalam_engine.storage.sqlite_db import DURABILITY_LEVELS, SqliteDatabase
from kalam_engine.storage.storages import StorageRegistry

# KalamDB's server stops a statement after 300 s; a notebook user can set None (no limit).
DEFAULT_STATEMENT_TIMEOUT: float | None = 300.0


def _default_memory_limit() -> int:
    """A quarter of the machine's memory (2 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 2 << 30


DEFAULT_MEMORY_LIMIT: int | None = _default_memory_limit()  # bytes per statement


def checked_limit(value: Any, name: str) -> Any:
    """``value`` if it is None or a positive number, else InvalidParameterError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not value > 0):
        raise InvalidParameterError(f"{name} must be a positive number or None, not {value!r}")
    return value


@dataclass(frozen=True)
class Options:
    """The settings an engine's services are built with (checked by the caller)."""

    cache_capacity: int
    fast_paths: bool
    memory_limit: int | None
    statement_timeout: float | None


def checked_options(durability: str, read_only: bool, cache_capacity: int, fast_paths: bool,
                    memory_limit: int | None, statement_timeout: float | None) -> Options:
    """The options of ``connect()``, or InvalidParameterError naming the bad one."""
    if durability not in DURABILITY_LEVELS:
        raise InvalidParameterError(f"Unknown durability '{durability}'",
                                    hint="use 'full', 'normal' or 'off'")
    if not isinstance(read_only, bool):
        raise InvalidParameterError("read_only must be True or False")
    return Options(cache_capacity, fast_paths, checked_limit(memory_limit, "memory_limit"),
                   checked_limit(statement_timeout, "statement_timeout"))


def open_services(path: Path | None, read_only: bool, durability: str, options: Options,
                  system_tables: Mapping[str, SystemTable]) -> Services:
    """Everything an engine on ``path`` (None: in memory) runs with; on failure nothing stays
    open and the directory is unlocked."""
    db, lock = _open_database(path, read_only, durability)
    services = Services(path, read_only, db, lock, system_tables)
    try:
        _start(services, options)
    except BaseException:
        abandon(services)
        raise
    return services


def reopen(services: Services, durability: str) -> None:
    """Rebuild ``services`` in place from the files in their directory (RESTORE swapped them,
    holding the directory lock); on failure the services are closed."""
    assert services.path is not None
    options = Options(services.cache.capacity, services.fast_paths,
                      services.runner.memory_limit, services.runner.statement_timeout)
    try:
        services.db = open_catalog(services.path / CATALOG_FILE, durability)
        _start(services, options)
    except BaseException:
        services.closed = True
        abandon(services)
        raise


def close(services: Services) -> None:
    services.closed = True
    services.live.close_all()
    services.storage.stop_eviction()
    services.cache.clear()
    services.db.close()
    services.storages.close()
    if services.dir_lock is not None:
        services.dir_lock.release()


def abandon(services: Services) -> None:
    """Undo a failed open: nothing stays open, the directory is unlocked."""
    storage = getattr(services, "storage", None)
    if storage is not None:
        storage.stop_eviction()
    storages = getattr(services, "storages", None)
    if storages is not None:
        storages.close()
    services.db.close()
    if services.dir_lock is not None:
        services.dir_lock.release()


def _open_database(path: Path | None, read_only: bool,
                   durability: str) -> tuple[SqliteDatabase, DirectoryLock | None]:
    """The catalog, opened only after the directory is locked (recovery deletes files)."""
    if path is None:
        if read_only:
            raise InvalidParameterError(
                "read_only=True needs a data directory",
                hint="an in-memory database starts empty; give the directory to read")
        return SqliteDatabase(None, durability), None
    if read_only:
        check_readable(path, CATALOG_FILE)
        with open_errors(path):
            return SqliteDatabase(path / CATALOG_FILE, read_only=True), None
    prepare_writable(path)
    lock = DirectoryLock(path)
    with open_errors(path):
        lock.acquire()
    try:
        with open_errors(path):
            return open_catalog(path / CATALOG_FILE, durability), lock
    except BaseException:
        lock.release()
        raise


def _start(services: Services, options: Options) -> None:
    _build(services, options)
    if services.read_only:
        services.view = ReadOnlyView(services.db, lambda: _load_snapshot(services),
                                     lambda: services.storage.segment_changes)
        with open_errors(services.path or Path(MEMORY)):
            services.view.open()
        services.storage.start_eviction()  # in memory only: the log is the writer's
        return
    with open_errors(services.path or Path(MEMORY)):
        _bootstrap(services.db)
        services.storages.open()  # lock custom storage directories before recovery reads them
        latest = {d.table_id.key: d for d in services.catalog.latest_tables()}
        services.storage.replay(latest)
    # Providers are built when the engine opens (up to the cache's capacity).
    for definition in list(latest.values())[:options.cache_capacity]:
        services.cache.register(definition)
    services.storage.start_eviction()


def _build(services: Services, options: Options) -> None:
    db, path, read_only = services.db, services.path, services.read_only
    services.catalog = CatalogStore(db)
    services.storages = StorageRegistry(db, path, read_only=read_only)
    services.storage = StorageManager(db, path, read_only=read_only, placer=services.storages)
    services.live = LiveRegistry()
    services.cache = SchemaCache(services.load_definition,
                                 lambda definition: _new_provider(services, definition),
                                 lambda definition: _storage_path(path, definition),
                                 capacity=options.cache_capacity)
    resolver = TableResolver(services.namespace_names, services.table_names,
                             services.cache.get_provider)
    services.runner = QueryRunner(resolver, IdFunctions(services.storage.seq),
                                  memory_limit=options.memory_limit)
    services.runner.statement_timeout = options.statement_timeout
    services.fast_paths = options.fast_paths
    services.view = None
    services.session_namespaces.clear()
    services.forget_roles()
    services.closed = False


def _bootstrap(db: SqliteDatabase) -> None:
    if not db.query("SELECT 1 FROM users WHERE user_id = ?", (ROOT_USER,)):
        now = time.time()
        with db.transaction() as conn:
            conn.execute("INSERT INTO users (user_id, role, auth_type, created_at, "
                         "updated_at) VALUES (?, 'system', 'internal', ?, ?)",
                         (ROOT_USER, now, now))


def _load_snapshot(services: Services) -> None:
    """Read-only: rebuild what is held in memory from the snapshot being read."""
    services.catalog.forget_cached()
    latest = {d.table_id.key: d for d in services.catalog.latest_tables()}
    for table_id in services.storage.reload(latest):
        services.cache.retire(table_id, "another process changed or dropped the table")
    services.after_ddl()
    services.forget_roles()


# --- the schema cache's callbacks
def _new_provider(services: Services, definition: TableDefinition) -> BaseTableProvider:
    if definition.table_type is TableType.SYSTEM:
        system = services.system_tables[definition.table_id.name]
        return SystemTableProvider(definition, system.schema,
                                   lambda ctx: system.rows(services, ctx))
    return services.new_provider(definition, services.storage.store_for(definition))


def _storage_path(path: Path | None, definition: TableDefinition) -> str:
    base = str(path / "storage") if path else ":memory:"
    tid = definition.table_id
    suffix = "/{userId}" if definition.table_type is TableType.USER else ""
    return f"{base}/{tid.namespace}/{tid.name}{suffix}"
