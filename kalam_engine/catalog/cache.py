"""The weakref-aware schema cache: one provider per table version, shared by every user.

- Strong part: a bounded LRU of :class:`CachedTable` entries (definition, Arrow schema, storage
  path, provider). Definitions can always be reloaded from the catalog, so eviction is safe.
- Weak part: a ``WeakValueDictionary`` of providers keyed by (table id, schema version). An
  evicted entry whose provider is still alive somewhere (a running query, a notebook variable)
  gets that same provider back (a *revival*) instead of a twin.
- ``weakref.finalize`` on each provider keeps an honest count of live provider objects.

Invariant: never two live providers for one table version.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from kalam_engine.model.context import TableId
from kalam_engine.model.definitions import TableDefinition
from kalam_engine.model.errors import TableNotFoundError
from kalam_engine.providers.core import BaseTableProvider

DefinitionLoader = Callable[[TableId], TableDefinition | None]
ProviderFactory = Callable[[TableDefinition], BaseTableProvider]


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    capacity: int
    hits: int
    misses: int
    evictions: int
    revived: int
    built: int
    live_providers: int
    memory_bytes: int


class CachedTable:
    """One cache entry: everything the engine needs to serve a table, built once."""

    __slots__ = ("arrow_schema", "definition", "memory_bytes", "provider", "storage_path")

    def __init__(self, definition: TableDefinition, provider: BaseTableProvider,
                 storage_path: str) -> None:
        self.definition = definition
        self.arrow_schema: pa.Schema = provider.core.schema
        self.storage_path = storage_path
        self.provider = provider
        self.memory_bytes = measure_entry(self)


def _deep_size(obj: object, seen: set[int], stop: tuple[type, ...]) -> int:
    """Bytes of the Python objects reachable from ``obj``, each counted once, not crossing into
    objects of the ``stop`` types (shared infrastructure such as table data)."""
    if id(obj) in seen or isinstance(obj, stop):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        for k, v in obj.items():
            size += _deep_size(k, seen, stop) + _deep_size(v, seen, stop)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            size += _deep_size(item, seen, stop)
    elif isinstance(obj, pa.Schema):
        # The Arrow schema lives in C++ memory; count its Python-visible metadata too.
        size += sum(sys.getsizeof(f.name) for f in obj)
    else:
        slots = [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ())]
        for name in slots:
            if name in ("__weakref__", "__dict__"):
                continue
            val = getattr(obj, name, None)
            if val is not None:
                size += _deep_size(val, seen, stop)
        if hasattr(obj, "__dict__"):
            size += _deep_size(vars(obj), seen, stop)
    return size


def measure_entry(entry: CachedTable) -> int:
    from kalam_engine.model.ids import SnowflakeGenerator
    from kalam_engine.storage.table_store import TableStore

    stop = (TableStore, SnowflakeGenerator, type, type(None), bool, int, float)
    return _deep_size(entry, set(), stop)


class SchemaCache:
    """Bounded LRU of table entries plus a weak index of live providers."""

    def __init__(self, loader: DefinitionLoader, factory: ProviderFactory,
                 path_of: Callable[[TableDefinition], str], capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be at least 1")
        self._loader = loader
        self._factory = factory
        self._path_of = path_of
        self.capacity = capacity
        self._entries: OrderedDict[TableId, CachedTable] = OrderedDict()
        self._weak: weakref.WeakValueDictionary[tuple[TableId, int], BaseTableProvider] = (
            weakref.WeakValueDictionary())
        self._lock = threading.RLock()
        self._live = 0
        self._live_lock = threading.Lock()
        self.hits = self.misses = self.evictions = self.revived = self.built = 0

    # --- lookups
    def get_provider(self, table_id: TableId) -> BaseTableProvider:
        """The one provider of ``table_id``'s current schema version."""
        return self.get_entry(table_id).provider

    def get_definition(self, table_id: TableId) -> TableDefinition:
        return self.get_entry(table_id).definition

    def get_entry(self, table_id: TableId) -> CachedTable:
        entry = self._entries.get(table_id)
        if entry is not None:
            # Hot path without the lock: one dict lookup and an LRU touch, both atomic under the
            # GIL. An entry evicted meanwhile is still valid to return (its provider is alive).
            try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
                self._entries.move_to_end(table_id)
            except KeyError:
                pass
            self.hits += 1
            return entry
        with self._lock:
            entry = self._entries.get(table_id)
            if entry is not None:
                self._entries.move_to_end(table_id)
                self.hits += 1
                return entry
            self.misses += 1
            definition = self._loader(table_id)
            if definition is None:
                raise TableNotFoundError(f"Table {table_id} does not exist")
            return self._admit(definition)

    def peek(self, table_id: TableId) -> CachedTable | None:
        """The entry if cached, without counting a hit or loading."""
        return self._entries.get(table_id)

    # --- registration and retirement
    def register(self, definition: TableDefinition) -> BaseTableProvider:
        """Build (or revive) the provider for a newly created or altered table."""
        with self._lock:
            old = self._entries.pop(definition.table_id, None)
            if old is not None and old.definition.schema_version != definition.schema_version:
                old.provider.retire(f"the table changed to schema version "
                                    f"{definition.schema_version}")
            return self._admit(definition).provider

    def retire(self, table_id: TableId, reason: str) -> None:
        """Drop a table's entry and retire every live provider of it."""
        with self._lock:
            self._entries.pop(table_id, None)
            for (tid, version), provider in list(self._weak.items()):
                if tid == table_id:
                    provider.retire(reason)
                    self._weak.pop((tid, version), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _admit(self, definition: TableDefinition) -> CachedTable:
        key = (definition.table_id, definition.schema_version)
        provider = self._weak.get(key)
        if provider is not None and not provider.retired:
            self.revived += 1
        else:
            provider = self._factory(definition)
            self.built += 1
            with self._live_lock:
                self._live += 1
            weakref.finalize(provider, self._provider_died)
            self._weak[key] = provider
        entry = CachedTable(definition, provider, self._path_of(definition))
        self._entries[definition.table_id] = entry
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evictions += 1
        return entry

    def _provider_died(self) -> None:
        with self._live_lock:
            self._live -= 1

    # --- figures
    @property
    def live_providers(self) -> int:
        return self._live

    def stats(self) -> CacheStats:
        with self._lock:
            entries = list(self._entries.values())
            return CacheStats(
                entries=len(entries), capacity=self.capacity, hits=self.hits,
                misses=self.misses, evictions=self.evictions, revived=self.revived,
                built=self.built, live_providers=self._live,
                memory_bytes=sum(e.memory_bytes for e in entries))
