"""Statement handlers: one function per statement type, registered with ``@handles(Type)``.

Every handler has one signature, ``handler(services, stmt, ctx, params) -> Result``:
``services`` (:class:`kalam_engine.services.Services`) holds the engine's components,
``ctx`` who runs the statement, ``params`` the values of ``$1, $2, ...`` (or None).

The way of one statement, e.g. ``INSERT INTO app.t VALUES ($1)`` (``Engine.execute``):

- read: ``sql/parsed.py`` ``split_parsed`` -> one ``ParsedStatement`` per statement (text,
  tokens of the one tokenizer in ``sql/tokens.py``, sqlglot tree parsed at most once);
  ``sql/limits.py`` checks its shape, ``sql/params.py`` its ``$n``;
- parsed: ``sql/parser.py`` ``parse_statement`` -> a typed statement (``sql/statements.py``,
  ``sql/user_commands.py``, ``sql/backup_commands.py``, ``sql/storage_commands.py``,
  ``sql/subscribe.py``);
- dispatched: :func:`run_statement` below -> the handler registered for its type
  (SELECT, BEGIN/COMMIT: ``query.py``; INSERT/UPDATE/DELETE: ``dml.py``; CREATE/DROP TABLE:
  ``tables.py`` with ``table_options.py``; ALTER TABLE: ``alter_table.py``; NAMESPACE and USE:
  ``namespaces.py``; SHOW/DESCRIBE: ``introspection.py``;
  USER and EXECUTE AS: ``users.py``; STORAGE FLUSH/COMPACT: ``storage.py``; CREATE/DROP/SHOW
  STORAGE, STORAGE CHECK: ``storages.py``; BACKUP/RESTORE: ``backup.py``; EXPORT: ``export.py``;
  SUBSCRIBE: ``live.py``);
- authorised: in the handler, with ``auth/permissions.py`` and the table provider's
  ``check_read`` / ``check_write`` (``providers/*.py``);
- planned and run: ``query/runner.py`` ``QueryRunner.run`` (DataFusion under SQLOptions that
  allow queries only; the default ORDER BY from the tree, ``query/default_order.py``);
- scanned: ``query/session.py`` ``request_rows`` -> ``provider.read(ctx, filters)``
  (``providers/core.py``), the one read primitive, with the key and ``_seq`` bounds of the
  WHERE (``query/where_bounds.py``) pruning cold segments (``storage/pruning.py``); providers
  come from the schema cache (``catalog/cache.py``); ``SELECT .. WHERE pk = v`` is served by
  ``query/point_lookup.py`` without planning;
- stored: the provider writes through ``storage/table_store.py`` (hot log, Parquet segments)
  under the table's write lock (``catalog/table_lock.py``); definitions go to
  ``catalog/store.py``.

The ``system.*`` tables' rows are built in ``system_tables.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kalam_engine.model.context import ExecutionContext
from kalam_engine.model.errors import ReadOnlyError, UnsupportedError
from kalam_engine.result import Result
from kalam_engine.sql import statements as st
from kalam_engine.sql.parser import READ_ONLY_STATEMENTS

if TYPE_CHECKING:
    from kalam_engine.services import Services

Params = list[Any] | None
Handler = Callable[["Services", Any, ExecutionContext, Params], Result]
H = TypeVar("H", bound=Handler)

HANDLERS: dict[type, Handler] = {}
_REPORTS_ITS_USER: set[type] = set()  # EXECUTE AS USER: the statement it runs names the user
# UseNamespace changes only the session; BEGIN/COMMIT get their own UnsupportedError.
# EXECUTE AS USER is refused: every attempt writes an audit row.
_READ_ONLY_ALLOWED = (*READ_ONLY_STATEMENTS, st.UseNamespace, st.TransactionStatement)
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def handles(*types: type, reports_its_user: bool = False) -> Callable[[H], H]:
    """Register the decorated function as the handler of statements of ``types``."""
    def register(handler: H) -> H:
        for statement_type in types:
            if statement_type in HANDLERS:
                raise RuntimeError(f"{statement_type.__name__} has two handlers")
            HANDLERS[statement_type] = handler
            if reports_its_user:
                _REPORTS_ITS_USER.add(statement_type)
        return handler
    return register


def run_statement(services: Services, stmt: object, ctx: ExecutionContext,
                  params: Params) -> Result:
    """Run one parsed statement with ``ctx``; ``result.as_user`` names whose rows it used."""
    if services.view is None:
        return _dispatch(services, stmt, ctx, params)
    if not isinstance(stmt, _READ_ONLY_ALLOWED):
        words = _CAMEL.sub(" ", type(stmt).__name__).upper().removesuffix(" STATEMENT")
        raise ReadOnlyError(
            f"{words} is refused: this engine was opened with read_only=True",
            hint="run writes in the engine or notebook that holds the directory, or close "
                 "that one and open the directory without read_only=True")

    def call(reloaded: bool) -> Result:  # each read on the writer's latest commit
        run_ctx = ctx
        if reloaded and ctx.as_user is None:  # roles may have changed: take the new one
            run_ctx = ExecutionContext(ctx.user_id, services.role_of(ctx.user_id),
                                       ctx.namespace, ctx.request_id, ctx.started_at)
        return _dispatch(services, stmt, run_ctx, params)

    return services.view.run(call)


def _dispatch(services: Services, stmt: object, ctx: ExecutionContext,
              params: Params) -> Result:
    handler = HANDLERS.get(type(stmt))
    if handler is None:
        raise UnsupportedError(f"{type(stmt).__name__} is not supported yet")
    result = handler(services, stmt, ctx, params)
    if type(stmt) not in _REPORTS_ITS_USER:
        result.as_user = ctx.as_user or ctx.user_id
    return result


# Importing the handler modules registers their handlers.
from kalam_engine.handlers import (  # noqa: E402, F401
    alter_table,
    backup,
    dml,
    export,
    introspection,
    live,
    namespaces,
    query,
    storage,
    storages,
    tables,
    users,
)
