"""CREATE STORAGE, DROP STORAGE, SHOW STORAGES and STORAGE CHECK (semantics 1.8): their parsed
forms and their parsers (tokens from :mod:`kalam_engine.sql.tokens`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.tokens import Token, TokenType

from kalam_engine.model.errors import InvalidParameterError, InvalidSqlError
from kalam_engine.sql.tokens import TokenCursor

STORAGE_ID = re.compile(r"[a-zA-Z0-9_-]+")
MAX_STORAGE_ID = 64
_CLAUSES = ("NAME", "DESCRIPTION", "PATH", "BASE_DIRECTORY", "BUCKET", "REGION",
            "SHARED_TABLES_TEMPLATE", "USER_TABLES_TEMPLATE", "CREDENTIALS", "CONFIG")
_ID_PART = re.compile(r"[A-Za-z0-9_-]+")


def _id_token(tok: Token) -> bool:
    """A piece of an unquoted storage id: a word (keywords too, e.g. ``first``), a number or
    '-'."""
    return tok.token_type is not TokenType.STRING and bool(_ID_PART.fullmatch(tok.text))


@dataclass(frozen=True, slots=True)
class CreateStorage:
    storage_id: str
    storage_type: str
    clauses: tuple[tuple[str, str], ...]  # (CLAUSE, value) as written
    if_not_exists: bool = False

    def clause(self, name: str) -> str | None:
        return next((v for k, v in self.clauses if k == name), None)


@dataclass(frozen=True, slots=True)
class DropStorage:
    storage_id: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class ShowStorages:
    pass


@dataclass(frozen=True, slots=True)
class StorageCheck:
    storage_id: str
    extended: bool = False


StorageCommand = CreateStorage | DropStorage | ShowStorages | StorageCheck


def validate_storage_id(text: str) -> str:
    if not STORAGE_ID.fullmatch(text) or len(text) > MAX_STORAGE_ID or not text.isascii():
        raise InvalidParameterError(
            f"Invalid storage id {text[:80]!r}",
            hint=f"storage ids use letters, digits, _ and - (at most {MAX_STORAGE_ID})")
    return text


def storage_id(cur: TokenCursor) -> str:
    """A storage id: a quoted string, or adjacent word/number/'-' tokens (``my-store``)."""
    tok = cur.peek()
    if tok is not None and tok.token_type is TokenType.STRING:
        cur.next()
        return validate_storage_id(tok.text)
    if tok is None or not _id_token(tok):
        raise InvalidSqlError(f"Expected a storage id but found "
                              f"{repr(tok.text) if tok else 'the end'}",
                              hint=f"statement: {cur.sql[:120]}")
    text = cur.next().text
    last = tok
    while (nxt := cur.peek()) is not None and _id_token(nxt) and nxt.start == last.end + 1:
        text += cur.next().text
        last = nxt
    return validate_storage_id(text)


def parse_create_storage(cur: TokenCursor) -> CreateStorage:
    """After CREATE: ``STORAGE [IF NOT EXISTS] id TYPE t [CLAUSE 'value']...``."""
    cur.expect("STORAGE")
    ine = cur.accept("IF", "NOT", "EXISTS")
    sid = storage_id(cur)
    cur.expect("TYPE")
    kind = cur.string_or_word("a storage type").lower()
    clauses: list[tuple[str, str]] = []
    while not cur.at_end():
        word = cur.peek_word()
        if word not in _CLAUSES:
            tok = cur.peek()
            raise InvalidSqlError(
                f"Unexpected {tok.text if tok else ''!r} in CREATE STORAGE",
                hint="clauses: " + ", ".join(_CLAUSES) + ", each followed by a quoted value")
        cur.next()
        if any(k == word for k, _ in clauses):
            raise InvalidSqlError(f"{word} is given twice in CREATE STORAGE")
        tok = cur.peek()
        if tok is None or tok.token_type is not TokenType.STRING:
            raise InvalidSqlError(f"{word} needs a quoted value, e.g. {word} '...'")
        clauses.append((word, cur.next().text))
    return CreateStorage(sid, kind, tuple(clauses), ine)


def parse_drop_storage(cur: TokenCursor) -> DropStorage:
    cur.expect("STORAGE")
    ie = cur.accept("IF", "EXISTS")
    sid = storage_id(cur)
    cur.expect_end()
    return DropStorage(sid, ie)


def parse_show_storages(cur: TokenCursor) -> ShowStorages:
    cur.expect("STORAGES")
    cur.expect_end()
    return ShowStorages()


def parse_storage_check(cur: TokenCursor) -> StorageCheck:
    """After STORAGE: ``CHECK id [EXTENDED]``."""
    cur.expect("CHECK")
    sid = storage_id(cur)
    extended = cur.accept("EXTENDED")
    cur.expect_end()
    return StorageCheck(sid, extended)
