"""The one reader of SQL text: tokens (sqlglot's tokenizer, set up to read text as DataFusion's
parser does), the one statement splitter, and a small cursor for KalamDB's commands.

Everything that looks at SQL text (the engine's classifier and command parser, the magics'
splitter and ``:name`` binding) reads it through :func:`tokenize`, so that comments (nested
ones included), quoted strings and identifiers, dollar-quoted strings and ``E'..'`` strings are
seen the same way everywhere, and the same way DataFusion's parser (sqlparser-rs) sees them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import TokenizerCore
from sqlglot.tokens import Token, TokenType

from kalam_engine.model.errors import InvalidSqlError

MAX_SQL_LENGTH = 1 << 20  # 1 MiB, as KalamDB's MAX_SQL_QUERY_LENGTH


QUOTED_TOKENS = {TokenType.STRING, TokenType.IDENTIFIER, TokenType.NATIONAL_STRING,
           TokenType.HEREDOC_STRING, TokenType.BYTE_STRING, TokenType.HEX_STRING,
           TokenType.BIT_STRING}
_WORD = re.compile(r"\S+")


class _KalamTokenizer(Postgres.Tokenizer):
    """sqlparser-rs (DataFusion's parser) reads nested ``/* */`` comments, ``$$..$$`` and
    ``$tag$..$tag$`` strings, ``E'..'`` strings with backslash escapes and backtick identifiers;
    PostgreSQL's tokenizer in sqlglot reads all of them the same way."""

    # sqlglot swallows the rest of SHOW/EXECUTE/... statements as one opaque command; we parse
    # those ourselves, so keep them as ordinary tokens.
    COMMANDS: set = set()
    IDENTIFIERS = ['"', "`"]

    def __init__(self) -> None:
        super().__init__()
        self._core.__class__ = _KalamTokenizerCore


class _KalamTokenizerCore(TokenizerCore):
    """sqlglot reads ``$1,$2`` as the start of a string tagged ``1,``; PostgreSQL and
    sqlparser-rs never start a dollar-quote tag with a digit: ``$`` then a digit is always a
    positional parameter, whatever follows the digits."""

    __slots__ = ()

    def _scan_string(self, start: str) -> bool:
        if start == "$" and self._peek.isdigit():
            self._add(TokenType.PARAMETER)
            return True
        return super()._scan_string(start)


def tokenize(sql: str) -> list[Token]:
    """Tokens of ``sql``; multi-word keywords ("PRIMARY KEY") come back as one token per word."""
    try:
        raw = _KalamTokenizer().tokenize(sql)
    except TokenError as exc:
        raise InvalidSqlError(f"Cannot read the SQL: {exc}",
                              hint="check quotes and brackets are closed") from exc
    out: list[Token] = []
    for tok in raw:
        if tok.token_type in QUOTED_TOKENS or not any(c.isspace() for c in tok.text):
            out.append(tok)
            continue
        for m in _WORD.finditer(sql, tok.start, tok.end + 1):
            out.append(Token(TokenType.VAR, m.group(0), tok.line, tok.col, m.start(),
                             m.end() - 1))
    return out


def check_length(sql: str) -> None:
    if len(sql) > MAX_SQL_LENGTH:
        raise InvalidSqlError(
            f"SQL text is {len(sql)} characters; the limit is {MAX_SQL_LENGTH} (1 MiB)",
            hint="split it into smaller statements or load bulk data with insert_arrow")


def split_statements(sql: str) -> list[str]:
    """Split a request into statements at ``;`` outside brackets, strings and comments. A piece
    runs from just after the previous ``;`` (its leading comments kept) to its last token;
    pieces with no token are dropped. The engine, the server and the magics all split with
    this (:func:`kalam_engine.sql.parsed.split_parsed`, which keeps each statement's tokens
    for whoever reads that statement next)."""
    from kalam_engine.sql.parsed import split_parsed  # parsed.py builds on this module

    return [stmt.text for stmt in split_parsed(sql)]


def split_pieces(sql: str) -> tuple[tuple[str, tuple[Token, ...]], ...]:
    """The statements of ``sql`` with their tokens (offsets into the statement's own text): the
    one splitter. The text is read once."""
    tokens = tokenize(sql)
    pieces: list[tuple[str, tuple[Token, ...]]] = []
    first = 0  # index of the current piece's first token
    start = 0  # just after the previous top-level ';'
    depth = 0
    for i, tok in enumerate(tokens):
        kind = tok.token_type
        if kind is TokenType.SEMICOLON and depth == 0:
            if i > first:
                pieces.append(_piece(sql, start, tokens[first:i]))
            start, first = tok.end + 1, i + 1
        elif kind in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif kind in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth = max(0, depth - 1)
    if len(tokens) > first:
        pieces.append(_piece(sql, start, tokens[first:]))
    return tuple(pieces)


def _piece(sql: str, start: int, tokens: list[Token]) -> tuple[str, tuple[Token, ...]]:
    """One statement's text (from ``start`` to its last token, stripped) and its tokens moved
    to offsets into that text."""
    raw = sql[start:tokens[-1].end + 1]
    text = raw.strip()
    offset = start + len(raw) - len(raw.lstrip())
    if offset == 0:
        return text, tuple(tokens)
    return text, tuple(Token(t.token_type, t.text, t.line, t.col, t.start - offset,
                             t.end - offset, t.comments) for t in tokens)


def _token_start(sql: str, tok: Token) -> int:
    """Start offset of a token in the text (quotes of quoted tokens included)."""
    return tok.start


WORD_TYPES = {TokenType.VAR, TokenType.IDENTIFIER}


class TokenCursor:
    """Reads one statement's tokens front to back."""

    def __init__(self, sql: str, tokens: Sequence[Token] | None = None) -> None:
        self.sql = sql
        self.tokens: Sequence[Token] = tokens if tokens is not None else tokenize(sql)
        self.pos = 0

    # --- looking
    def peek(self, offset: int = 0) -> Token | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def peek_word(self, offset: int = 0) -> str:
        tok = self.peek(offset)
        if tok is None or tok.token_type is TokenType.STRING:
            return ""
        return tok.text.upper()

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def is_words(self, *words: str) -> bool:
        return all(self.peek_word(i) == w for i, w in enumerate(words))

    # --- consuming
    def next(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise InvalidSqlError(f"Unexpected end of statement: {self.sql!r}")
        self.pos += 1
        return tok

    def accept(self, *words: str) -> bool:
        if self.is_words(*words):
            self.pos += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            got = self.peek()
            raise InvalidSqlError(
                f"Expected {' '.join(words)} but found "
                f"{repr(got.text) if got else 'the end of the statement'}",
                hint=f"statement: {self.sql[:120]}")

    def accept_type(self, token_type: TokenType) -> Token | None:
        tok = self.peek()
        if tok is not None and tok.token_type is token_type:
            self.pos += 1
            return tok
        return None

    def word(self, what: str = "a name") -> str:
        """An identifier or keyword used as a name, as written (unquoted)."""
        tok = self.peek()
        if tok is None or tok.token_type in (TokenType.STRING, TokenType.L_PAREN,
                                             TokenType.R_PAREN, TokenType.COMMA,
                                             TokenType.SEMICOLON, TokenType.DOT):
            raise InvalidSqlError(
                f"Expected {what} but found {repr(tok.text) if tok else 'the end'}",
                hint=f"statement: {self.sql[:120]}")
        self.pos += 1
        return tok.text

    def string_or_word(self, what: str = "a value") -> str:
        tok = self.peek()
        if tok is not None and tok.token_type is TokenType.STRING:
            self.pos += 1
            return tok.text
        return self.word(what)

    def expect_end(self) -> None:
        if not self.at_end():
            tok = self.peek()
            assert tok is not None
            raise InvalidSqlError(f"Unexpected {tok.text!r} at the end of the statement",
                                  hint=f"statement: {self.sql[:120]}")

    def text_from(self, start_index: int, end_index: int | None = None) -> str:
        """Original text of tokens[start_index:end_index]."""
        end_index = len(self.tokens) if end_index is None else end_index
        if start_index >= end_index:
            return ""
        first = self.tokens[start_index]
        last = self.tokens[end_index - 1]
        return self.sql[_token_start(self.sql, first):_token_end(self.sql, last) + 1]

    def rest(self) -> str:
        text = self.text_from(self.pos)
        self.pos = len(self.tokens)
        return text

    def balanced_until(self, stop_words: set[str], stop_types: tuple = ()) -> int:
        """Advance over tokens at bracket depth 0 until a stop word/type; return the end index."""
        depth = 0
        while not self.at_end():
            tok = self.tokens[self.pos]
            if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and (
                    (tok.token_type is not TokenType.STRING and tok.text.upper() in stop_words)
                    or tok.token_type in stop_types):
                break
            self.pos += 1
        return self.pos


def _token_end(sql: str, tok: Token) -> int:
    return tok.end
