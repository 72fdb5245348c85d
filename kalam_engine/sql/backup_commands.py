"""BACKUP / RESTORE DATABASE and EXPORT USER DATA / SHOW EXPORT (semantics 1.8).

    BACKUP DATABASE TO '<dir>';      RESTORE DATABASE FROM '<dir>';      -- dba, system
    EXPORT USER DATA;                SHOW EXPORT;                         -- everyone, own data
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.tokens import TokenType

from kalam_engine.model.errors import InvalidSqlError
from kalam_engine.sql.tokens import TokenCursor


@dataclass(frozen=True, slots=True)
class BackupDatabase:
    path: str


@dataclass(frozen=True, slots=True)
class RestoreDatabase:
    path: str


@dataclass(frozen=True, slots=True)
class ExportUserData:
    pass


@dataclass(frozen=True, slots=True)
class ShowExport:
    pass


BackupCommand = BackupDatabase | RestoreDatabase | ExportUserData | ShowExport


def _path(cur: TokenCursor, usage: str) -> str:
    tok = cur.accept_type(TokenType.STRING)
    if tok is None:
        raise InvalidSqlError("The path must be a quoted string", hint=f"e.g. {usage}")
    cur.expect_end()
    return tok.text


def parse_backup_command(cur: TokenCursor) -> BackupDatabase | RestoreDatabase | ExportUserData:
    """BACKUP DATABASE TO '..' | RESTORE DATABASE FROM '..' | EXPORT USER DATA."""
    word = cur.peek_word()
    if word == "BACKUP":
        usage = "BACKUP DATABASE TO '/backups/kalam-2026-05-01'"
        _expect(cur, ("BACKUP", "DATABASE", "TO"), usage)
        return BackupDatabase(_path(cur, usage))
    if word == "RESTORE":
        usage = "RESTORE DATABASE FROM '/backups/kalam-2026-05-01'"
        _expect(cur, ("RESTORE", "DATABASE", "FROM"), usage)
        return RestoreDatabase(_path(cur, usage))
    _expect(cur, ("EXPORT", "USER", "DATA"), "EXPORT USER DATA")
    cur.expect_end()
    return ExportUserData()


def parse_show_export(cur: TokenCursor) -> ShowExport:
    """SHOW EXPORT (the SHOW already read); SHOW EXPORTS is accepted too."""
    if not (cur.accept("EXPORT") or cur.accept("EXPORTS")):
        raise InvalidSqlError("Expected SHOW EXPORT", hint="SHOW EXPORT")
    cur.expect_end()
    return ShowExport()


def _expect(cur: TokenCursor, words: tuple[str, ...], usage: str) -> None:
    if not cur.accept(*words):
        raise InvalidSqlError(f"Expected {' '.join(words)}: {cur.sql[:60]!r}",
                              hint=f"the form is {usage}")
