"""KalamDB's statements: classify a statement by its first words and parse the KalamDB commands.

SELECT-like statements are left to DataFusion; INSERT/UPDATE/DELETE are cut into pieces whose
expressions DataFusion evaluates.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot.tokens import TokenType

from kalam_engine.model.definitions import DEFAULT_FUNCTIONS, ColumnDefault
from kalam_engine.model.errors import (
    InvalidParameterError,
    InvalidSqlError,
    KalamError,
    UnsupportedError,
)
from kalam_engine.sql import backup_commands, storage_commands, user_commands
from kalam_engine.sql import statements as st
from kalam_engine.sql.backup_commands import BackupCommand
from kalam_engine.sql.parsed import ParsedStatement, as_parsed, per_statement
from kalam_engine.sql.storage_commands import StorageCommand
from kalam_engine.sql.subscribe import SubscribeStatement, parse_subscribe
from kalam_engine.sql.tokens import TokenCursor
from kalam_engine.sql.user_commands import UserCommand
from kalam_engine.sql.vector_index import is_index_action, parse_index_action

QUERY_WORDS = {"SELECT", "WITH", "VALUES", "(", "EXPLAIN", "TABLE"}
COLUMN_STOP_WORDS = {"NOT", "NULL", "DEFAULT", "PRIMARY", "AUTO_INCREMENT", "AUTO", "GENERATED",
                     "UNIQUE", "COMMENT", "REFERENCES", "CHECK", "IDENTITY"}
DEFAULT_ALIASES = {"CURRENT_TIMESTAMP": "NOW", "NOW": "NOW", "CURRENT_USER": "CURRENT_USER"}
TABLE_TYPES = ("USER", "SHARED", "STREAM")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")
READ_ONLY_STATEMENTS = (st.QueryStatement, st.ShowNamespaces, st.ShowTables, st.ShowStats,
                        st.DescribeTable, backup_commands.ShowExport,
                        storage_commands.ShowStorages)


# Every statement parse_statement returns.
Statement = (st.QueryStatement | st.InsertStatement | st.UpdateStatement | st.DeleteStatement
             | st.CreateNamespace | st.DropNamespace | st.AlterNamespace | st.UseNamespace
             | st.ShowNamespaces | st.CreateTable | st.DropTable | st.AlterTable | st.ShowTables
             | st.DescribeTable | st.ShowStats | st.StorageFlush | st.StorageCompact
             | st.TransactionStatement | UserCommand | StorageCommand | BackupCommand
             | SubscribeStatement)


def parse_statement(sql: str | ParsedStatement) -> Statement:
    """Parse one statement into a (frozen) dataclass of :mod:`kalam_engine.sql.statements` (or
    of the command modules beside it); a query (SELECT, WITH, EXPLAIN, ...) carries its
    :class:`ParsedStatement` on to the runner. Remembered per statement: notebooks and
    services repeat the same statements with new parameters."""
    return _parse(as_parsed(sql))


@per_statement
def _parse(parsed: ParsedStatement) -> Statement:
    if parsed.kind in QUERY_WORDS:  # the first word as DataFusion reads it (comments skipped)
        return st.QueryStatement(parsed, parsed.kind)
    cur = TokenCursor(parsed.text, parsed.tokens)
    if parsed.kind == "SHOW" and cur.peek_word(1) in ("COLUMNS", "ALL"):
        return st.QueryStatement(parsed, "SHOW")  # DataFusion answers these
    return _parse_command(cur)


def _parse_command(cur: TokenCursor) -> Statement:
    """A statement that is not a query, read from its tokens."""
    word = cur.peek_word()
    if word == "SHOW":
        return _parse_show(cur)
    if word in ("BEGIN", "START", "COMMIT", "ROLLBACK", "END"):
        return st.TransactionStatement(word)
    parse = _PARSERS.get(word)
    if parse is None:
        raise InvalidSqlError(
            f"Unsupported statement type: {cur.sql.strip()[:60]!r}",
            hint="see the README for the statements Kalam understands")
    return parse(cur)


def is_read_only(sql: str | ParsedStatement) -> bool:
    """Whether the statement ``sql`` only reads (a query, SHOW, DESCRIBE, EXPLAIN); False for
    anything else, and for text that does not parse (running it reports why)."""
    try:
        return isinstance(parse_statement(sql), READ_ONLY_STATEMENTS)
    except KalamError:
        return False


# --- shared pieces
def _table_ref(cur: TokenCursor) -> st.TableRef:
    first = cur.word("a table name")
    if cur.accept_type(TokenType.DOT):
        second = cur.word("a table name")
        if cur.accept_type(TokenType.DOT):
            raise InvalidParameterError(
                f"Table name '{first}.{second}.{cur.word()}' has too many parts",
                hint="use namespace.table")
        return st.TableRef(first, second)
    if cur.accept_type(TokenType.COLON):  # KalamDB's ns:table form
        return st.TableRef(first, cur.word("a table name"))
    return st.TableRef(None, first)


def _if_not_exists(cur: TokenCursor) -> bool:
    return cur.accept("IF", "NOT", "EXISTS")


def _if_exists(cur: TokenCursor) -> bool:
    return cur.accept("IF", "EXISTS")


def _literal_value(cur: TokenCursor, start: int, end: int) -> object:
    """A literal written in tokens[start:end] as a Python value (for options and defaults)."""
    toks = cur.tokens[start:end]
    text = cur.text_from(start, end)
    if len(toks) == 1 and toks[0].token_type is TokenType.STRING:
        return toks[0].text
    upper = text.upper()
    if upper == "NULL":
        return None
    if upper in ("TRUE", "FALSE"):
        return upper == "TRUE"
    compact = text.replace(" ", "")
    if _NUMBER.match(compact):
        return float(compact) if any(c in compact for c in ".eE") else int(compact)
    raise _NotLiteral(text)


class _NotLiteral(Exception):
    pass


def _default(cur: TokenCursor, start: int, end: int) -> ColumnDefault:
    text = cur.text_from(start, end)
    if start >= end:
        raise InvalidSqlError("DEFAULT needs a value", hint="e.g. DEFAULT 0 or DEFAULT NOW()")
    name = re.sub(r"\s*\(\s*\)\s*$", "", text).strip().upper()
    if name in DEFAULT_ALIASES:
        return ColumnDefault("function", DEFAULT_ALIASES[name])
    if name in DEFAULT_FUNCTIONS:
        return ColumnDefault("function", name)
    try:
        return ColumnDefault("literal", _literal_value(cur, start, end))
    except _NotLiteral:
        raise InvalidParameterError(
            f"Unsupported DEFAULT expression {text!r}",
            hint="use a literal or one of NOW(), CURRENT_TIMESTAMP, SNOWFLAKE_ID(), UUID_V7(), "
                 "ULID(), CURRENT_USER()") from None


def _column_spec(cur: TokenCursor) -> st.ColumnSpec:
    name = cur.word("a column name")
    type_start = cur.pos
    type_end = cur.balanced_until(COLUMN_STOP_WORDS, (TokenType.COMMA,))
    if type_end == type_start:
        raise InvalidSqlError(f"Column '{name}' needs a data type",
                              hint="e.g. id BIGINT PRIMARY KEY")
    type_text = cur.text_from(type_start, type_end)
    nullable: bool | None = None
    primary = auto = False
    default = None
    comment = None
    while not cur.at_end() and cur.peek().token_type not in (TokenType.COMMA, TokenType.R_PAREN):
        if cur.accept("NOT", "NULL"):
            nullable = False
        elif cur.accept("NULL"):
            nullable = True
        elif cur.accept("PRIMARY", "KEY"):
            primary = True
        elif cur.accept("AUTO_INCREMENT") or cur.accept("AUTO", "INCREMENT"):
            auto = True
        elif cur.accept("GENERATED"):
            cur.balanced_until({"IDENTITY"})
            cur.expect("IDENTITY")
            if cur.peek() is not None and cur.peek().token_type is TokenType.L_PAREN:
                cur.next()
                cur.balanced_until(set())
                cur.next()
            auto = True
        elif cur.accept("DEFAULT"):
            start = cur.pos
            end = cur.balanced_until(COLUMN_STOP_WORDS - {"NULL"}, (TokenType.COMMA,))
            default = _default(cur, start, end)
        elif cur.accept("COMMENT"):
            comment = cur.string_or_word("a comment")
        elif cur.accept("UNIQUE"):
            raise UnsupportedError("UNIQUE constraints are not supported",
                                   hint="only the PRIMARY KEY is unique")
        else:
            tok = cur.peek()
            raise InvalidSqlError(f"Unexpected {tok.text!r} in the definition of column "
                                  f"'{name}'", hint="column: name TYPE [NOT NULL] [DEFAULT v] "
                                                    "[PRIMARY KEY] [AUTO_INCREMENT]")
    return st.ColumnSpec(name, type_text, nullable, primary, default, auto, comment)


def _options(cur: TokenCursor) -> dict[str, str]:
    """``(K1='v', K2=3, ...)`` with keys upper-cased and quotes stripped."""
    out: dict[str, str] = {}
    if not cur.accept_type(TokenType.L_PAREN):
        raise InvalidSqlError("Expected '(' to start the options",
                              hint="WITH (TYPE='USER', FLUSH_POLICY='rows:100')")
    while not cur.accept_type(TokenType.R_PAREN):
        key = cur.string_or_word("an option name").upper()
        if not cur.accept_type(TokenType.EQ):
            raise InvalidSqlError(f"Option {key} needs '= value'")
        start = cur.pos
        end = cur.balanced_until(set(), (TokenType.COMMA,))
        try:
            value = _literal_value(cur, start, end)
        except _NotLiteral:
            value = cur.text_from(start, end)
        out[key] = "" if value is None else str(value).upper() if isinstance(value, bool) \
            else str(value)
        cur.accept_type(TokenType.COMMA)
        if cur.at_end():
            raise InvalidSqlError("Options are missing their closing ')'")
    return out


# --- CREATE / DROP / ALTER
def _parse_create(cur: TokenCursor) -> Statement:
    cur.expect("CREATE")
    if cur.accept("NAMESPACE"):
        ine = _if_not_exists(cur)
        name = cur.word("a namespace name")
        cur.expect_end()
        return st.CreateNamespace(name, ine)
    prefix = None
    for t in TABLE_TYPES:
        if cur.is_words(t, "TABLE"):
            prefix = t
            cur.next()
            break
    if cur.accept("TABLE"):
        return _parse_create_table(cur, prefix)
    if cur.is_words("USER"):
        return user_commands.parse_create_user(cur)
    if cur.is_words("STORAGE"):
        return storage_commands.parse_create_storage(cur)
    if cur.is_words("VIEW"):
        raise UnsupportedError(f"CREATE {cur.peek_word(0)} is not supported yet")
    raise InvalidSqlError(f"Unsupported statement type: {cur.sql[:60]!r}",
                          hint="CREATE NAMESPACE or CREATE [USER|SHARED|STREAM] TABLE")


def _parse_create_table(cur: TokenCursor, prefix: str | None) -> st.CreateTable:
    ine = _if_not_exists(cur)
    table = _table_ref(cur)
    if not cur.accept_type(TokenType.L_PAREN):
        raise InvalidSqlError(f"CREATE TABLE {table.name} needs a column list in parentheses")
    columns: list[st.ColumnSpec] = []
    table_pk: tuple[str, ...] = ()
    while True:
        if cur.accept("CONSTRAINT"):
            cur.word("a constraint name")
        if cur.accept("PRIMARY", "KEY"):
            if not cur.accept_type(TokenType.L_PAREN):
                raise InvalidSqlError("PRIMARY KEY needs a column list, e.g. PRIMARY KEY (id)")
            names = []
            while not cur.accept_type(TokenType.R_PAREN):
                names.append(cur.word("a column name"))
                cur.accept_type(TokenType.COMMA)
            table_pk = tuple(names)
        else:
            columns.append(_column_spec(cur))
        if cur.accept_type(TokenType.COMMA):
            continue
        if cur.accept_type(TokenType.R_PAREN):
            break
        raise InvalidSqlError("Expected ',' or ')' in the column list",
                              hint=f"near {cur.peek().text if cur.peek() else 'the end'!r}")
    options: dict[str, str] = {}
    if cur.accept("USING"):
        cur.word("an access method")
    if cur.accept("WITH"):
        options = _options(cur)
    cur.expect_end()
    return st.CreateTable(table, prefix, ine, tuple(columns), table_pk, options)


def _parse_drop(cur: TokenCursor) -> Statement:
    cur.expect("DROP")
    if cur.accept("NAMESPACE"):
        ie = _if_exists(cur)
        name = cur.word("a namespace name")
        cascade = cur.accept("CASCADE")
        cur.expect_end()
        return st.DropNamespace(name, ie, cascade)
    if cur.is_words("USER") and not cur.is_words("USER", "TABLE"):
        return user_commands.parse_drop_user(cur)
    if cur.is_words("STORAGE"):
        return storage_commands.parse_drop_storage(cur)
    prefix = None
    for t in TABLE_TYPES:
        if cur.is_words(t, "TABLE"):
            prefix = t
            cur.next()
            break
    if cur.accept("TABLE"):
        ie = _if_exists(cur)
        table = _table_ref(cur)
        cur.expect_end()
        return st.DropTable(table, ie, prefix)
    raise InvalidSqlError(f"Unsupported statement type: {cur.sql[:60]!r}",
                          hint="DROP NAMESPACE or DROP TABLE")


def _parse_alter(cur: TokenCursor) -> Statement:
    cur.expect("ALTER")
    if cur.accept("NAMESPACE"):
        name = cur.word("a namespace name")
        cur.expect("SET", "OPTIONS")
        opts = _options(cur)
        cur.expect_end()
        return st.AlterNamespace(name, dict(opts))
    if cur.is_words("USER"):
        return user_commands.parse_alter_user(cur)
    if cur.is_words("STORAGE"):
        raise UnsupportedError("ALTER STORAGE is not supported yet",
                               hint="DROP STORAGE and CREATE STORAGE again (no table may use it)")
    cur.expect("TABLE")
    table = _table_ref(cur)
    action = _alter_table_action(cur)
    if cur.is_words("FIRST") or cur.is_words("AFTER"):
        raise UnsupportedError("FIRST/AFTER column positions are not supported")
    if cur.is_words("CASCADE") or cur.is_words("RESTRICT"):
        raise UnsupportedError("CASCADE/RESTRICT are not supported in ALTER TABLE")
    cur.expect_end()
    return st.AlterTable(table, action)


def _alter_table_action(cur: TokenCursor) -> st.AlterAction:
    """What ``ALTER TABLE t ...`` does (the cursor is after the table's name)."""
    if cur.accept("ADD"):
        cur.accept("COLUMN")
        return st.AddColumn(_column_spec(cur))
    if cur.is_words("CREATE") or is_index_action(cur, after_drop=True):
        return parse_index_action(cur, create=cur.next().text.upper() == "CREATE")
    if cur.accept("DROP"):
        cur.accept("COLUMN")
        return st.DropColumn(cur.word("a column name"))
    if cur.accept("MODIFY"):
        cur.accept("COLUMN")
        return st.ModifyColumn(_column_spec(cur))
    if cur.accept("RENAME"):
        cur.accept("COLUMN")
        old = cur.word("a column name")
        cur.expect("TO")
        return st.RenameColumn(old, cur.word("a column name"))
    if cur.accept("ALTER"):
        cur.accept("COLUMN")
        return _alter_column(cur, cur.word("a column name"))
    if cur.accept("SET", "TBLPROPERTIES"):
        opts = _options(cur)
        if set(opts) != {"ACCESS_LEVEL"}:
            raise InvalidParameterError(
                f"Unknown table property {', '.join(sorted(set(opts) - {'ACCESS_LEVEL'}))}",
                hint="only ACCESS_LEVEL can be set")
        return st.SetAccessLevel(opts["ACCESS_LEVEL"])
    if cur.accept("SET", "ACCESS", "LEVEL"):
        return st.SetAccessLevel(cur.string_or_word("an access level"))
    raise InvalidSqlError(
        "ALTER TABLE needs one of ADD COLUMN, DROP COLUMN, MODIFY COLUMN, ALTER COLUMN, "
        "RENAME COLUMN, SET ACCESS LEVEL")


def _alter_column(cur: TokenCursor, name: str) -> st.AlterAction:
    """``ALTER COLUMN name SET/DROP NOT NULL`` or ``SET/DROP DEFAULT``."""
    if cur.accept("SET", "NOT", "NULL"):
        return st.SetNullability(name, False)
    if cur.accept("DROP", "NOT", "NULL"):
        return st.SetNullability(name, True)
    if cur.accept("SET", "DEFAULT"):
        start = cur.pos
        action = st.SetColumnDefault(name, _default(cur, start, len(cur.tokens)))
        cur.pos = len(cur.tokens)
        return action
    if cur.accept("DROP", "DEFAULT"):
        return st.SetColumnDefault(name, None)
    raise InvalidSqlError("ALTER COLUMN needs SET/DROP NOT NULL or SET/DROP DEFAULT")


# --- USE / SHOW / DESCRIBE / STORAGE
def _parse_use(cur: TokenCursor) -> Statement:
    if cur.accept("SET"):
        if not cur.accept("NAMESPACE"):
            raise UnsupportedError("SET is only supported as SET NAMESPACE <name>")
    else:
        cur.expect("USE")
        cur.accept("NAMESPACE")
    name = cur.word("a namespace name")
    cur.expect_end()
    return st.UseNamespace(name)


def _parse_show(cur: TokenCursor) -> Statement:
    cur.expect("SHOW")
    if cur.accept("NAMESPACES"):
        cur.expect_end()
        return st.ShowNamespaces()
    if cur.accept("TABLES"):
        ns = None
        if cur.accept("IN") or cur.accept("FROM"):
            cur.accept("NAMESPACE")
            ns = cur.word("a namespace name")
        cur.expect_end()
        return st.ShowTables(ns)
    if cur.accept("STATS", "FOR", "TABLE"):
        table = _table_ref(cur)
        cur.expect_end()
        return st.ShowStats(table)
    if cur.is_words("STORAGES"):
        return storage_commands.parse_show_storages(cur)
    if cur.is_words("EXPORT") or cur.is_words("EXPORTS"):
        return backup_commands.parse_show_export(cur)
    raise InvalidSqlError(f"Unsupported SHOW statement: {cur.sql[:60]!r}",
                          hint="SHOW NAMESPACES, SHOW TABLES [IN ns], SHOW STATS FOR TABLE t")


def _parse_describe(cur: TokenCursor) -> Statement:
    cur.next()
    cur.accept("TABLE")  # DESCRIBE [TABLE] t: open to every role (section 3)
    table = _table_ref(cur)
    history = cur.accept("HISTORY")
    cur.expect_end()
    return st.DescribeTable(table, history)


def _parse_storage(cur: TokenCursor) -> Statement:
    cur.expect("STORAGE")
    if cur.is_words("CHECK"):
        return storage_commands.parse_storage_check(cur)
    if cur.accept("FLUSH"):
        ctor = st.StorageFlush
    elif cur.accept("COMPACT"):
        ctor = st.StorageCompact
    else:
        raise UnsupportedError(f"Unsupported STORAGE command: {cur.sql[:60]!r}",
                               hint="STORAGE FLUSH|COMPACT TABLE ns.t or ... ALL [IN ns]")
    if cur.accept("TABLE"):
        table = _table_ref(cur)
        cur.expect_end()
        return ctor(table=table)
    cur.expect("ALL")
    ns = None
    if cur.accept("IN"):
        cur.accept("NAMESPACE")
        ns = cur.word("a namespace name")
    cur.expect_end()
    return ctor(namespace=ns)


# --- DML
def _parse_insert(cur: TokenCursor) -> st.InsertStatement:
    cur.expect("INSERT")
    cur.expect("INTO")
    table = _table_ref(cur)
    columns = None
    if cur.peek() is not None and cur.peek().token_type is TokenType.L_PAREN:
        cur.next()
        names = []
        while not cur.accept_type(TokenType.R_PAREN):
            names.append(cur.word("a column name"))
            if not cur.accept_type(TokenType.COMMA) and cur.peek() is not None \
                    and cur.peek().token_type is not TokenType.R_PAREN:
                raise InvalidSqlError("Expected ',' between the column names")
            if cur.at_end():
                raise InvalidSqlError("The column list is missing its closing ')'")
        columns = tuple(names)
    start = cur.pos
    depth = 0
    for i in range(start, len(cur.tokens)):
        tok = cur.tokens[i]
        if tok.token_type is TokenType.L_PAREN:
            depth += 1
        elif tok.token_type is TokenType.R_PAREN:
            depth -= 1
        elif depth == 0 and tok.text.upper() in ("RETURNING", "ON") and \
                tok.token_type is not TokenType.STRING:
            raise UnsupportedError(f"INSERT ... {tok.text.upper()} is not supported",
                                   hint="run a SELECT after the INSERT to read the rows back")
    if cur.at_end() or cur.peek_word() not in ("VALUES", "SELECT", "WITH", "("):
        raise InvalidSqlError("INSERT needs VALUES (...) or a SELECT",
                              hint="INSERT INTO ns.t (a, b) VALUES (1, 'x')")
    return st.InsertStatement(table, columns, cur.rest())


def _parse_update(cur: TokenCursor) -> st.UpdateStatement:
    cur.expect("UPDATE")
    table = _table_ref(cur)
    cur.expect("SET")
    assignments: list[tuple[str, str]] = []
    while True:
        col = cur.word("a column name")
        if not cur.accept_type(TokenType.EQ):
            raise InvalidSqlError(f"Expected '=' after column {col!r} in UPDATE ... SET")
        start = cur.pos
        end = cur.balanced_until({"WHERE"}, (TokenType.COMMA,))
        if end == start:
            raise InvalidSqlError(f"UPDATE ... SET {col} = needs a value")
        assignments.append((col, cur.text_from(start, end)))
        if not cur.accept_type(TokenType.COMMA):
            break
    if not cur.accept("WHERE"):
        if cur.at_end():
            raise InvalidSqlError("UPDATE requires a WHERE clause",
                                  hint="add WHERE ... (use WHERE true to update every row)")
        raise InvalidSqlError(f"Unexpected {cur.peek().text!r} in UPDATE")
    return st.UpdateStatement(table, tuple(assignments), _where_expression(cur, "UPDATE"))


def _parse_delete(cur: TokenCursor) -> st.DeleteStatement:
    cur.expect("DELETE")
    cur.expect("FROM")
    table = _table_ref(cur)
    if not cur.accept("WHERE"):
        if cur.at_end():
            raise InvalidSqlError("DELETE requires a WHERE clause",
                                  hint="add WHERE ... (use WHERE true to delete every row)")
        raise InvalidSqlError(f"Unexpected {cur.peek().text!r} in DELETE")
    return st.DeleteStatement(table, _where_expression(cur, "DELETE"))


def _where_expression(cur: TokenCursor, verb: str) -> str:
    """The rest of the statement as one parenthesised expression. Its brackets must balance,
    so the text cannot close the WHERE clause and go on as more query (``... WHERE false UNION
    SELECT <forged row>``): inside the parentheses a UNION is a syntax error."""
    start = cur.pos
    depth = 0
    for tok in cur.tokens[start:]:
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
            if depth < 0:
                break
    if depth != 0:
        raise InvalidSqlError(f"The brackets of the WHERE clause of {verb} do not balance",
                              hint="close every '(' you open, and no more")
    where = cur.rest()
    if not where:
        raise InvalidSqlError(f"{verb} requires a WHERE clause")
    return f"({where})"


_PARSERS: dict[str, Callable[[TokenCursor], Statement]] = {
    "INSERT": _parse_insert, "UPDATE": _parse_update, "DELETE": _parse_delete,
    "CREATE": _parse_create, "DROP": _parse_drop, "ALTER": _parse_alter, "USE": _parse_use,
    "SET": _parse_use, "DESCRIBE": _parse_describe, "DESC": _parse_describe,
    "STORAGE": _parse_storage, "EXECUTE": user_commands.parse_execute_as,
    "SUBSCRIBE": parse_subscribe, "BACKUP": backup_commands.parse_backup_command,
    "RESTORE": backup_commands.parse_backup_command,
    "EXPORT": backup_commands.parse_backup_command,
}
