"""CREATE / ALTER / DROP USER and EXECUTE AS USER (semantics 1.9 and 1.10).

    CREATE USER [IF NOT EXISTS] alice WITH PASSWORD 'secret12' ROLE user [EMAIL 'a@x.org'];
    CREATE USER svc WITH OAUTH '{"provider":"..","subject":".."}' ROLE service;
    CREATE USER job WITH INTERNAL ROLE service;
    ALTER USER alice SET PASSWORD '...' | SET ROLE dba | SET EMAIL '...';
    DROP USER [IF EXISTS] alice;
    EXECUTE AS USER 'alice' ( <exactly one statement> );

User names and roles may be quoted or bare; passwords, OAuth data and emails are string literals.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.tokens import TokenType

from kalam_engine.model.errors import InvalidSqlError
from kalam_engine.sql.tokens import TokenCursor, split_statements


@dataclass(frozen=True, slots=True)
class CreateUser:
    user_id: str
    auth_type: str  # "password" | "oauth" | "internal"
    secret: str | None  # the password, or the OAuth JSON
    role: str | None  # as written; None: role user
    email: str | None = None
    if_not_exists: bool = False

    def __repr__(self) -> str:  # never show a password in a traceback or log
        return (f"CreateUser(user_id={self.user_id!r}, auth_type={self.auth_type!r}, "
                f"role={self.role!r}, email={self.email!r})")


@dataclass(frozen=True, slots=True)
class AlterUser:
    user_id: str
    field: str  # "password" | "role" | "email"
    value: str

    def __repr__(self) -> str:
        shown = "***" if self.field == "password" else repr(self.value)
        return f"AlterUser(user_id={self.user_id!r}, field={self.field!r}, value={shown})"


@dataclass(frozen=True, slots=True)
class DropUser:
    user_id: str
    if_exists: bool = False


@dataclass(frozen=True, slots=True)
class ExecuteAsUser:
    user_id: str
    inner_sql: str


UserCommand = CreateUser | AlterUser | DropUser | ExecuteAsUser


_USAGE_CREATE = "CREATE USER name WITH PASSWORD 'at-least-8' ROLE user [EMAIL 'a@b.c']"


def _string(cur: TokenCursor, what: str, usage: str) -> str:
    tok = cur.accept_type(TokenType.STRING)
    if tok is None:
        got = cur.peek()
        raise InvalidSqlError(
            f"Expected {what} as a quoted string but found "
            f"{repr(got.text) if got else 'the end of the statement'}", hint=usage)
    return tok.text


def _user_name(cur: TokenCursor) -> str:
    return cur.string_or_word("a user name")


def parse_create_user(cur: TokenCursor) -> CreateUser:
    """After ``CREATE``: ``USER ...``."""
    cur.expect("USER")
    ine = cur.accept("IF", "NOT", "EXISTS")
    name = _user_name(cur)
    if not cur.accept("WITH"):
        raise InvalidSqlError(f"CREATE USER {name} needs WITH PASSWORD, WITH OAUTH or WITH "
                              "INTERNAL", hint=_USAGE_CREATE)
    secret: str | None = None
    if cur.accept("PASSWORD"):
        auth_type = "password"
        secret = _string(cur, "the password", _USAGE_CREATE)
    elif cur.accept("OAUTH"):
        auth_type = "oauth"
        secret = _string(cur, "the OAuth JSON", _USAGE_CREATE)
    elif cur.accept("INTERNAL"):
        auth_type = "internal"
    else:
        raise InvalidSqlError("CREATE USER ... WITH needs PASSWORD, OAUTH or INTERNAL",
                              hint=_USAGE_CREATE)
    role = email = None
    while not cur.at_end():
        if cur.accept("ROLE"):
            if role is not None:
                raise InvalidSqlError("ROLE is given twice", hint=_USAGE_CREATE)
            role = cur.string_or_word("a role")
        elif cur.accept("EMAIL"):
            if email is not None:
                raise InvalidSqlError("EMAIL is given twice", hint=_USAGE_CREATE)
            email = _string(cur, "the email", _USAGE_CREATE)
        else:
            raise InvalidSqlError(f"Unexpected {cur.peek().text!r} in CREATE USER",
                                  hint=_USAGE_CREATE)
    return CreateUser(name, auth_type, secret, role, email, ine)


def parse_alter_user(cur: TokenCursor) -> AlterUser:
    """After ``ALTER``: ``USER name SET PASSWORD|ROLE|EMAIL value``."""
    usage = "ALTER USER name SET PASSWORD '...' | SET ROLE r | SET EMAIL '...'"
    cur.expect("USER")
    name = _user_name(cur)
    cur.expect("SET")
    if cur.accept("PASSWORD"):
        field, value = "password", _string(cur, "the new password", usage)
    elif cur.accept("ROLE"):
        field, value = "role", cur.string_or_word("a role")
    elif cur.accept("EMAIL"):
        field, value = "email", _string(cur, "the new email", usage)
    else:
        raise InvalidSqlError("ALTER USER ... SET needs PASSWORD, ROLE or EMAIL", hint=usage)
    cur.expect_end()
    return AlterUser(name, field, value)


def parse_drop_user(cur: TokenCursor) -> DropUser:
    """After ``DROP``: ``USER [IF EXISTS] name``."""
    cur.expect("USER")
    ie = cur.accept("IF", "EXISTS")
    name = _user_name(cur)
    cur.expect_end()
    return DropUser(name, ie)


def parse_execute_as(cur: TokenCursor) -> ExecuteAsUser:
    """``EXECUTE AS USER 'id' ( <one statement> )``."""
    usage = "EXECUTE AS USER 'alice' (SELECT * FROM app.messages)"
    cur.expect("EXECUTE")
    if not cur.accept("AS", "USER"):
        raise InvalidSqlError("Expected EXECUTE AS USER 'name' ( <statement> )", hint=usage)
    name = _user_name(cur)
    if not cur.accept_type(TokenType.L_PAREN):
        raise InvalidSqlError(
            f"EXECUTE AS USER '{name}' needs the statement in parentheses", hint=usage)
    start = cur.pos
    end = cur.balanced_until(set())
    if cur.accept_type(TokenType.R_PAREN) is None:
        raise InvalidSqlError(
            "EXECUTE AS USER is missing its closing ')'",
            hint="it wraps exactly one statement; a ';' inside the parentheses ends the "
                 "statement, so give one statement only")
    cur.expect_end()
    inner = cur.text_from(start, end).strip()
    statements = split_statements(inner) if inner else []
    if len(statements) != 1:
        raise InvalidSqlError(
            f"EXECUTE AS USER takes exactly one inner statement, not {len(statements)}",
            hint=usage)
    return ExecuteAsUser(name, statements[0])
