"""KalamDB orders a single-table query by its primary key when the query has no ORDER BY.

We decide that from the statement's top-level tokens and insert ``ORDER BY <pk>`` before any
LIMIT/OFFSET. The caller plans the rewritten text and falls back to the original if DataFusion
rejects it (aggregates, DISTINCT, ...), and caches the decision per statement text.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot.tokens import TokenType

from kalam_engine.model.errors import KalamError
from kalam_engine.sql.tokens import tokenize

_BLOCKERS = {"ORDER", "GROUP", "UNION", "INTERSECT", "EXCEPT", "DISTINCT", "HAVING", "JOIN",
             "WINDOW", "INTO"}
_AFTER_TABLE = {"WHERE", "LIMIT", "OFFSET", "AS"}

PkResolver = Callable[[str | None, str], str | None]


def with_default_order(sql: str, primary_key_of: PkResolver) -> str | None:
    """The statement with ``ORDER BY pk`` added, or None when it does not apply."""
    try:
        tokens = tokenize(sql)
    except KalamError:
        return None
    if not tokens or tokens[0].token_type is not TokenType.SELECT:
        return None
    depth = 0
    top: list[int] = []  # indexes of depth-0 tokens
    for i, tok in enumerate(tokens):
        if tok.token_type is TokenType.L_PAREN:
            depth += 1
            continue
        if tok.token_type is TokenType.R_PAREN:
            depth -= 1
            continue
        if depth == 0:
            top.append(i)
    words = [tokens[i].text.upper() if tokens[i].token_type is not TokenType.STRING else ""
             for i in top]
    if _BLOCKERS & set(words) or words.count("FROM") != 1:
        return None
    at = words.index("FROM")
    rest = top[at + 1:]
    if not rest or tokens[rest[0]].token_type not in (TokenType.VAR, TokenType.IDENTIFIER):
        return None
    # table reference: name or ns.name, directly after FROM (no subquery, no second table)
    first = tokens[rest[0]]
    namespace, name = None, first.text
    k = 1
    if len(rest) >= 3 and tokens[rest[1]].token_type is TokenType.DOT:
        namespace, name = first.text, tokens[rest[2]].text
        k = 3
    from_clause = words[at + 1 + k:]
    for stop in ("WHERE", "LIMIT", "OFFSET"):
        if stop in from_clause:
            from_clause = from_clause[:from_clause.index(stop)]
    if "," in from_clause:  # a second table in the FROM clause
        return None
    pk = primary_key_of(namespace, name)
    if pk is None:
        return None
    insert_at = len(sql.rstrip().rstrip(";"))
    for idx, word in zip(top[at + 1:], words[at + 1:], strict=True):
        if word in ("LIMIT", "OFFSET", "FETCH"):
            insert_at = tokens[idx].start
            break
    return f'{sql[:insert_at].rstrip()} ORDER BY "{pk}" {sql[insert_at:]}'.rstrip()
