"""String vectors in ``COSINE_DISTANCE(..)`` calls, made DataFusion-typed.

KalamDB writes a query vector as a string literal: ``COSINE_DISTANCE(embedding, '[1,0,0]')``.
DataFusion cannot coerce a string to a float list, so an argument that is exactly one string
literal, or one ``$n`` parameter bound to a str, is wrapped in ``kalam_vector(..)``, which
parses it (a literal is folded to a constant once per statement). The call is found in the
statement's tokens (the engine's one tokenizer, read once per statement), so strings, quoted
names and comments are never rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot.tokens import Token, TokenType

from kalam_engine.model.errors import KalamError
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement

FUNCTION = "COSINE_DISTANCE"
WRAPPER = "kalam_vector"


@per_statement
def _vector_arguments(stmt: ParsedStatement) -> tuple[tuple[int, int, int | None], ...]:
    """(start, end, param index or None) of each COSINE_DISTANCE argument that is one string
    literal or one ``$n``, in text order."""
    try:
        tokens = stmt.tokens
    except KalamError:
        return ()
    found: list[tuple[int, int, int | None]] = []
    for i, tok in enumerate(tokens[:-1]):
        if tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER) or \
                tok.text.upper() != FUNCTION or tokens[i + 1].token_type is not TokenType.L_PAREN:
            continue
        depth, arg_start = 0, i + 2
        for j in range(i + 1, len(tokens)):
            kind = tokens[j].token_type
            if kind is TokenType.L_PAREN:
                depth += 1
                continue
            if depth == 1 and kind in (TokenType.COMMA, TokenType.R_PAREN):
                argument = _single_vector(tokens[arg_start:j])
                if argument is not None:
                    found.append(argument)
                arg_start = j + 1
            if kind is TokenType.R_PAREN:
                depth -= 1
                if depth == 0:
                    break
    return tuple(found)


def _single_vector(tokens: Sequence[Token]) -> tuple[int, int, int | None] | None:
    if len(tokens) == 1 and tokens[0].token_type is TokenType.STRING:
        return tokens[0].start, tokens[0].end, None
    if (len(tokens) == 2 and tokens[0].token_type is TokenType.PARAMETER
            and tokens[1].token_type is TokenType.NUMBER and tokens[1].text.isdigit()
            and tokens[1].start == tokens[0].end + 1):
        return tokens[0].start, tokens[1].end, int(tokens[1].text) - 1
    return None


def wrap_vector_strings(stmt: str | ParsedStatement, params: Sequence[Any] | None) -> str:
    """The statement's text with its string vector arguments wrapped in ``kalam_vector(..)``."""
    sql = stmt.text if isinstance(stmt, ParsedStatement) else stmt
    if FUNCTION.lower() not in sql.lower():
        return sql
    arguments = _vector_arguments(as_parsed(stmt))
    if not arguments:
        return sql
    out, last = [], 0
    for start, end, param in arguments:
        if param is not None and not (params and param < len(params)
                                      and isinstance(params[param], str)):
            continue  # a list parameter is already a float list
        out.append(sql[last:start])
        out.append(f"{WRAPPER}({sql[start:end + 1]})")
        last = end + 1
    out.append(sql[last:])
    return "".join(out)
