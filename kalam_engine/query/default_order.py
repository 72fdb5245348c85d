"""KalamDB orders a single-table query by its primary key when the query has no ORDER BY.

The decision is made on the statement's sqlglot tree (:class:`ParsedStatement`, parsed once):
a plain ``SELECT ... FROM [ns.]t [alias] [WHERE ...] [LIMIT/OFFSET/FETCH ...]`` with no
aggregate in its select list gets ``ORDER BY "<pk>"``, written before its top-level
LIMIT/OFFSET/FETCH (found in the statement's tokens). Anything else (joins, GROUP BY,
DISTINCT, HAVING, set operations, an aggregate, a statement sqlglot cannot read) is planned as
written. Which functions aggregate is asked of DataFusion itself (its function catalogue), so
an aggregate sqlglot does not know still counts. The caller caches the result per namespace
and statement text; nothing is planned twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from datafusion import SessionConfig, SessionContext
from sqlglot import expressions as exp
from sqlglot.tokens import TokenType

from kalam_engine.sql.literals import table_name
from kalam_engine.sql.parsed import ParsedStatement
from kalam_engine.sql.tokens import QUOTED_TOKENS

PkResolver = Callable[[str | None, str], str | None]

_ALLOWED_CLAUSES = {"expressions", "from", "from_", "where", "limit", "offset"}
_ALLOWED_TABLE_PARTS = {"this", "db", "alias"}
_TAIL_WORDS = {"LIMIT", "OFFSET", "FETCH"}


def with_default_order(stmt: ParsedStatement, primary_key_of: PkResolver) -> str | None:
    """The statement's text with ``ORDER BY pk`` added, or None when it does not apply."""
    if stmt.kind != "SELECT":
        return None
    table = _single_table(stmt.tree)
    if table is None:
        return None
    pk = primary_key_of(*table)
    if pk is None:
        return None
    sql = stmt.text
    at = _tail_start(stmt)
    if at is None:
        at = len(sql.rstrip().rstrip(";"))
    return f'{sql[:at].rstrip()} ORDER BY "{pk}" {sql[at:]}'.rstrip()


def _single_table(tree: exp.Expression | None) -> tuple[str | None, str] | None:
    """(namespace or None, table) of a plain one-table SELECT without aggregates, else None."""
    if not isinstance(tree, exp.Select):
        return None
    if {k for k, v in tree.args.items() if v not in (None, [], False)} - _ALLOWED_CLAUSES:
        return None
    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or \
            {k for k, v in table.args.items() if v} - _ALLOWED_TABLE_PARTS:
        return None
    ref = table_name(table)
    if ref is None or any(_aggregates(item) for item in tree.expressions):
        return None
    return ref


def _aggregates(node: exp.Expression) -> bool:
    """Whether ``node`` calls an aggregate function outside a window and a subquery."""
    names = aggregate_names()
    for inner in node.walk(prune=lambda n: isinstance(n, (exp.Window, exp.Subquery))):
        if isinstance(inner, exp.AggFunc):
            return True
        if isinstance(inner, exp.Func) and _function_name(inner) in names:
            return True
    return False


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


@functools.cache
def aggregate_names() -> frozenset[str]:
    """The aggregate functions DataFusion knows, from its own catalogue."""
    session = SessionContext(SessionConfig().with_information_schema(True))
    rows = session.sql("SELECT DISTINCT routine_name FROM information_schema.routines "
                       "WHERE function_type = 'AGGREGATE'").to_arrow_table()
    return frozenset(str(name).lower() for name in rows.column(0).to_pylist())


def _tail_start(stmt: ParsedStatement) -> int | None:
    """Offset of the top-level LIMIT / OFFSET / FETCH clause, if the statement has one."""
    depth = 0
    for tok in stmt.tokens:
        kind = tok.token_type
        if kind in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif kind in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
        elif depth == 0 and kind not in QUOTED_TOKENS and tok.text.upper() in _TAIL_WORDS:
            return tok.start
    return None
