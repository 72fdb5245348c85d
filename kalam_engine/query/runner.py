"""Run SQL on DataFusion for one request and turn DataFusion's failures into KalamErrors."""

from __future__ import annotations

import difflib
import re
from collections import OrderedDict
from typing import Any

import pyarrow as pa
from datafusion import DataFrame, SessionContext, SQLOptions

from kalam_engine.model.context import ExecutionContext, TableId
from kalam_engine.model.errors import (
    ExecutionError,
    InvalidParameterError,
    InvalidSqlError,
    KalamError,
    ResourceLimitError,
    TableNotFoundError,
    UnsupportedError,
)
from kalam_engine.query.checked_functions import register_checked_functions
from kalam_engine.query.default_order import with_default_order
from kalam_engine.query.execution import Budget, StatementTimeout, collect, describe_bytes
from kalam_engine.query.functions import IdFunctions
from kalam_engine.query.json_functions import register_json_functions
from kalam_engine.query.prefetch import ArrowViews, table_references
from kalam_engine.query.session import (
    RequestCatalog,
    RequestState,
    SessionPool,
    TableResolver,
    request_rows,
)
from kalam_engine.query.vector_search import VectorIndexes, nearest_rows
from kalam_engine.query.vector_text import wrap_vector_strings
from kalam_engine.query.vectors import register_vector_functions
from kalam_engine.query.where_bounds import where_bounds
from kalam_engine.sql.json_rewrite import rewrite_json
from kalam_engine.sql.parsed import ParsedStatement, as_parsed

CATALOG_PREFIX = "kalam."
_TABLE_NOT_FOUND = re.compile(r"table '([^']+)' not found", re.IGNORECASE)
_CURRENT_FN = re.compile(r"current_(user|role)\s*\(\s*\)", re.IGNORECASE)
# What DataFusion may run: queries only. DataFusion checks this on the logical plan (EXPLAIN's
# inner plan included), whatever the text looked like: no COPY ... TO, INSERT, CREATE
# [EXTERNAL] TABLE / VIEW / SCHEMA / DATABASE, SELECT ... INTO, SET, PREPARE, transactions.
# So no request can write a file, read one, or leave anything behind in a pooled session.
READ_ONLY = SQLOptions().with_allow_ddl(False).with_allow_dml(False) \
    .with_allow_statements(False)
_REFUSED_PLAN = re.compile(r"(DDL|DML|Statement) not supported: (\w+)")


def _strip_identity_parens(stmt: ParsedStatement) -> str:
    """``CURRENT_USER()`` -> ``CURRENT_USER`` outside string literals (sqlparser wants no parens
    for CURRENT_USER)."""
    sql = stmt.text
    if not _CURRENT_FN.search(sql):
        return sql
    out, last = [], 0
    tokens = stmt.tokens
    for i, tok in enumerate(tokens[:-2]):
        if tok.text.upper() == "CURRENT_USER" and tokens[i + 1].text == "(" \
                and tokens[i + 2].text == ")":
            out.append(sql[last:tok.end + 1])
            last = tokens[i + 2].end + 1
    out.append(sql[last:])
    return "".join(out)


def _rewritten(stmt: ParsedStatement) -> ParsedStatement:
    """The statement as DataFusion is given it (before the default ORDER BY and the vector
    arguments): ``CURRENT_USER()`` without parens, JSON operators as the engine's UDF calls.
    The statement itself when neither applies (the common case: nothing is read again)."""
    for rewrite in (_strip_identity_parens, rewrite_json):
        text = rewrite(stmt)
        if text != stmt.text:
            stmt = as_parsed(text)
    return stmt


def _is_panic(exc: BaseException) -> bool:
    """pyo3 raises a Rust panic as ``pyo3_runtime.PanicException`` (a BaseException that its
    module does not export for import)."""
    return type(exc).__name__ == "PanicException" and \
        type(exc).__module__ == "pyo3_runtime"


class QueryRunner:
    """Plans and runs statements for the engine; keeps the default-ORDER-BY decisions cached
    per (namespace, statement text) like KalamDB's plan cache. Each statement comes as a
    :class:`ParsedStatement` (or its text), read once and shared by the fast paths, the
    prefetch, the rewrites and the default ORDER BY."""

    def __init__(self, resolver: TableResolver, functions: IdFunctions,
                 plan_cache_size: int = 512, *, memory_limit: int | None = None,
                 statement_timeout: float | None = None) -> None:
        self.resolver = resolver
        self.functions = functions
        self._rewrites: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._rewrite_cap = plan_cache_size
        self._views = ArrowViews()
        self.memory_limit = memory_limit  # bytes per statement (DataFusion's pool and results)
        self.statement_timeout = statement_timeout  # seconds per statement, None: no limit

        def prepare(session: SessionContext, catalog: RequestCatalog) -> None:
            functions.register(session, lambda: catalog.request().ctx)
            register_checked_functions(session, catalog.request)
            register_json_functions(session)
            register_vector_functions(session, catalog.request)

        self._sessions = SessionPool(prepare, memory_limit=memory_limit)
        self.prefetch = True  # hand DataFusion MemTables read before planning (see prefetch.py)
        # read tables with the key/_seq bounds of the WHERE (see where_bounds.py); off only to
        # measure and check that it changes no answer
        self.push_filters = True
        self.vectors = VectorIndexes()  # nearest-neighbour indexes (see vector_search.py)

    def clear_plans(self) -> None:
        self._rewrites.clear()

    def _plan(self, session: SessionContext, state: RequestState, stmt: ParsedStatement,
              params: list[Any] | None, default_order: bool) -> DataFrame:
        base = _rewritten(stmt)
        ordered = self._ordered(state.ctx, base) if default_order else base
        text = wrap_vector_strings(ordered, params)
        param_values = {str(i + 1): v for i, v in enumerate(params)} if params else None
        return session.sql_with_options(text, READ_ONLY, param_values=param_values)

    def _prefetch(self, state: RequestState, stmt: ParsedStatement) -> None:
        """Read the tables the statement names now, so DataFusion scans them as MemTables. A
        table that cannot be read here is left to the lazy path, which reports why (as it did
        before prefetching)."""
        ctx = state.ctx
        for namespace, name in table_references(stmt):
            key = (namespace or ctx.namespace, name)
            if key in state.views:
                continue
            try:
                table_id = TableId(*key)
                rows = request_rows(state, table_id, self.resolver.provider(table_id))
            except Exception:
                continue
            state.views[key] = self._views.view(rows)

    def run(self, ctx: ExecutionContext, sql: str | ParsedStatement,
            params: list[Any] | None = None, *, default_order: bool = False,
            include_deleted: bool | None = None) -> pa.Table:
        """Plan and run ``sql`` (one statement) for ``ctx`` and return all its rows."""
        stmt = as_parsed(sql)
        if include_deleted is None:
            include_deleted = "_deleted" in stmt.text.lower()
        timeout = StatementTimeout(self.statement_timeout)
        state = RequestState(self.resolver, ctx, include_deleted, Budget(self.memory_limit),
                             bounds=where_bounds(stmt) if self.push_filters else None,
                             params=params)
        nearest = None if include_deleted else nearest_rows(self.vectors, self.resolver, ctx,
                                                            stmt, params)
        if nearest is not None:
            state.views[nearest[0]] = self._views.view(nearest[1])
        if self.prefetch:
            self._prefetch(state, stmt)
        session, catalog = self._sessions.lend(state)
        reusable = True
        try:
            frame = self._plan(session, state, stmt, params, default_order)
            return collect(frame, timeout, state.budget)
        except ResourceLimitError:  # stopped mid-statement: do not lend this session again
            reusable = False
            raise
        except KalamError:
            raise
        except Exception as exc:  # DataFusion raises plain exceptions with its message
            error = self.translate(exc, state, ctx)
            reusable = not isinstance(error, ResourceLimitError)
            raise error from None
        except BaseException as exc:  # interrupted mid-statement: do not lend this session again
            reusable = False
            if _is_panic(exc):  # a Rust panic inside DataFusion (pyo3's PanicException)
                raise ExecutionError(
                    f"DataFusion failed on this statement: {str(exc).splitlines()[0][:300]}",
                    hint="check the statement's values (e.g. a time zone DataFusion does not "
                         "know); the engine is still usable") from None
            raise
        finally:
            self._sessions.give_back(session, catalog, reusable=reusable)

    def _ordered(self, ctx: ExecutionContext, stmt: ParsedStatement) -> ParsedStatement:
        """The statement with KalamDB's default ORDER BY (see default_order.py), decided once
        per (namespace, statement text)."""
        key = (ctx.namespace, stmt.text)
        text = self._rewrites.get(key)
        if text is None:
            text = with_default_order(stmt, lambda ns, name: self._pk_of(ctx, ns, name)) \
                or stmt.text
            self._rewrites[key] = text  # the text only: statements are kept in parsed.py
            if len(self._rewrites) > self._rewrite_cap:
                self._rewrites.popitem(last=False)
        return stmt if text == stmt.text else as_parsed(text)

    def _pk_of(self, ctx: ExecutionContext, namespace: str | None, name: str) -> str | None:
        try:
            provider = self.resolver.provider(TableId((namespace or ctx.namespace).lower(),
                                                      name.lower()))
        except KalamError:
            return None
        return provider.core.primary_key

    def translate(self, exc: Exception, state: RequestState, ctx: ExecutionContext) -> KalamError:
        """A clear KalamError for what DataFusion reported."""
        if state.error is not None:
            return state.error
        text = str(exc)
        if "Resources exhausted" in text:  # DataFusion's memory pool is full
            limit = describe_bytes(self.memory_limit or 0)
            return ResourceLimitError(
                f"The statement needs more than its memory budget of {limit}",
                hint="narrow the query (WHERE, LIMIT, fewer groups), or connect with a larger "
                     "memory_limit")
        message = text.split("\n")[0]
        for prefix in ("DataFusion error: ", "Error during planning: ", "SQL error: ",
                       "Execution error: ", "Arrow error: "):
            message = message.replace(prefix, "")
        refused = _REFUSED_PLAN.search(text)
        if refused:
            return UnsupportedError(
                f"Only queries run here; DataFusion's {refused.group(2)} is not allowed",
                hint="KalamDB's own statements (CREATE TABLE, INSERT, ...) are written at the "
                     "start of the statement; files, views and settings are not reachable")
        missing = _TABLE_NOT_FOUND.search(text)
        if missing:
            name = missing.group(1)
            if name.startswith(CATALOG_PREFIX):
                name = name[len(CATALOG_PREFIX):]
            return TableNotFoundError(f"Table '{name}' does not exist",
                                      hint=self._close_names(ctx, name))
        if "ParserError" in text or "sql parser error" in text.lower():
            return InvalidSqlError(f"Invalid SQL: {message}",
                                   hint="check the statement's syntax")
        if "No field named" in text or "Schema error" in text:
            return InvalidSqlError(message, hint="check the column names (DESCRIBE TABLE t)")
        if "placeholder" in text.lower() or "param" in text.lower():
            return InvalidParameterError(message, hint="pass one value per $n in params=[...]")
        if "Error during planning" in text or "Invalid function" in text:
            return InvalidSqlError(message)
        return ExecutionError(message)

    def _close_names(self, ctx: ExecutionContext, name: str) -> str:
        short = name.split(".")[-1]
        known = []
        for ns in self.resolver.namespaces():
            if ns == "system":
                continue
            known.extend(f"{ns}.{t}" for t in self.resolver.table_names(ns))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5) or \
            [k for k in known if k.endswith("." + short)][:3]
        if close:
            return "did you mean " + ", ".join(close) + "?"
        return f"no such table in namespace '{ctx.namespace}'; SHOW TABLES lists them"
