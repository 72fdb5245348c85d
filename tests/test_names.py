"""Bad names never reach a path or the catalog: namespaces, tables, columns and user ids are
checked first (INVALID_PARAMETER, with a message that says the rule), and a rejected statement
leaves the data directory exactly as it was. SQL longer than 1 MiB is rejected too."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

import kalam_engine
from kalam_engine import InvalidParameterError, InvalidSqlError
from kalam_engine.auth import passwords
from kalam_engine.sql.names import validate_name, validate_user_id
from kalam_engine.sql.tokens import MAX_SQL_LENGTH

# Bad for every kind of name (namespaces, tables, columns, user ids).
ALWAYS_BAD = [
    "a/b", "a\\b", "../x", "..", ".", "x/../../etc", "/abs", "C:x",  # path separators
    "a\x00b", "nul\x00",  # NUL
    "\u0430dmin",  # Cyrillic small a: looks like "admin"
    "\uff46\uff55\uff4c\uff4c",  # full-width "full"
    "caf\u00e9", "a\u200bb", "\ufb01le", "\u212a",  # accent, zero-width space, ligature, Kelvin
    "abc\n", "\nabc", "a b", "a\tb", "",  # whitespace and empty
    "a.b", "a;b", "a'b", 'a"b', "a-b", "%2e%2e", "~root", "$HOME", "a*b", "a:b",
]
# Bad for namespaces, tables and columns (SQL identifiers, at most 64 characters).
IDENT_BAD = [*ALWAYS_BAD, "1abc", "_x", "x" * 65, "select", "from", "table"]
NAMESPACE_BAD = [*IDENT_BAD, "system", "default", "information_schema", "con", "lpt1"]
COLUMN_BAD = [*IDENT_BAD, "_seq", "_deleted", "_id"]
USER_BAD = [*ALWAYS_BAD, "u" * 129, "con", "Aux"]
USER_RESERVED = ["anonymous", "system", "public"]


def q(name: str) -> str:
    """A quoted SQL identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def listing(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("names") / "data"
    db = kalam_engine.connect(path)
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id INT PRIMARY KEY, body TEXT)")
    db.execute("CREATE SHARED TABLE app.s (id INT PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO app.t VALUES (1, 'x')", user="alice")
    db.execute("STORAGE FLUSH TABLE app.t")
    yield db, path
    db.close()


def assert_rejected_without_trace(disk, run) -> InvalidParameterError:
    db, path = disk
    catalog = [db.execute(f"SELECT * FROM system.{t}").to_arrow()
               for t in ("namespaces", "schemas", "users")]
    before = listing(path)
    with pytest.raises(InvalidParameterError) as info:
        run(db)
    assert info.value.code == "INVALID_PARAMETER"
    assert info.value.hint or "reserved" in info.value.message  # says what to do
    assert listing(path) == before, "a rejected name touched the data directory"
    assert [db.execute(f"SELECT * FROM system.{t}").to_arrow()
            for t in ("namespaces", "schemas", "users")] == catalog
    return info.value


@pytest.mark.parametrize("name", NAMESPACE_BAD, ids=repr)
def test_bad_namespace_names(disk, name: str) -> None:
    assert_rejected_without_trace(disk, lambda db: db.execute(f"CREATE NAMESPACE {q(name)}"))


@pytest.mark.parametrize("name", [*IDENT_BAD, "con"], ids=repr)
def test_bad_namespace_in_a_table_name(disk, name: str) -> None:
    assert_rejected_without_trace(
        disk, lambda db: db.execute(f"CREATE USER TABLE {q(name)}.t2 (id INT PRIMARY KEY)"))


@pytest.mark.parametrize("name", [*IDENT_BAD, "con", "prn"], ids=repr)
def test_bad_table_names(disk, name: str) -> None:
    for kind in ("USER", "SHARED", "STREAM"):
        ttl = " WITH (TTL_SECONDS=60)" if kind == "STREAM" else ""
        assert_rejected_without_trace(
            disk, lambda db, kind=kind, ttl=ttl: db.execute(
                f"CREATE {kind} TABLE app.{q(name)} (id INT PRIMARY KEY){ttl}"))


@pytest.mark.parametrize("name", IDENT_BAD, ids=repr)
def test_bad_table_names_in_dml(disk, name: str) -> None:
    for sql in (f"INSERT INTO app.{q(name)} VALUES (1)", f"DROP TABLE app.{q(name)}",
                f"DELETE FROM app.{q(name)} WHERE true", f"STORAGE FLUSH TABLE app.{q(name)}"):
        assert_rejected_without_trace(disk, lambda db, sql=sql: db.execute(sql))


@pytest.mark.parametrize("name", COLUMN_BAD, ids=repr)
def test_bad_column_names(disk, name: str) -> None:
    assert_rejected_without_trace(
        disk, lambda db: db.execute(f"CREATE USER TABLE app.t2 ({q(name)} INT PRIMARY KEY)"))
    assert_rejected_without_trace(
        disk, lambda db: db.execute(f"ALTER TABLE app.t ADD COLUMN {q(name)} TEXT"))
    assert_rejected_without_trace(
        disk, lambda db: db.execute(f"ALTER TABLE app.t RENAME COLUMN body TO {q(name)}"))


@pytest.mark.parametrize("name", USER_BAD, ids=repr)
def test_bad_user_ids(disk, name: str) -> None:
    for run in (
        lambda db: db.execute("INSERT INTO app.t VALUES (2, 'y')", user=name),
        lambda db: db.execute("SELECT * FROM app.t", user=name),
        lambda db: db.execute(f"CREATE USER {q(name)} WITH PASSWORD 'password0' ROLE user"),
        lambda db: db.execute(f"EXECUTE AS USER {q(name)} (INSERT INTO app.t VALUES (3, 'z'))"),
        lambda db: db.execute(f"DROP USER {q(name)}"),
        lambda db: db.execute(f"ALTER USER {q(name)} SET EMAIL 'a@b.c'"),
        lambda db: db.insert_arrow("app.t", pa.table({"id": [4], "body": ["w"], "who": [name]}),
                                   user_column="who"),
    ):
        assert_rejected_without_trace(disk, run)


@pytest.mark.parametrize("name", USER_RESERVED)
def test_reserved_user_ids_cannot_be_created(disk, name: str) -> None:
    error = assert_rejected_without_trace(
        disk, lambda db: db.execute(f"CREATE USER {name} WITH PASSWORD 'password0' ROLE user"))
    assert "reserved" in error.message


def test_user_ids_fold_to_lower_case_so_partitions_cannot_collide(disk) -> None:
    db, _ = disk
    db.execute("INSERT INTO app.t VALUES (10, 'from Bob')", user="Bob")
    assert db.execute("SELECT body FROM app.t WHERE id = 10", user="bob").row_count == 1
    assert db.execute("SELECT body FROM app.t WHERE id = 10", user="BOB").as_user == "bob"


@pytest.mark.parametrize("good", ["a", "A1", "x" * 64, "snake_case_9"])
def test_good_names_pass(good: str) -> None:
    assert validate_name(good, "table") == good.lower()
    assert validate_user_id(good) == good.lower()
    assert validate_user_id("u" * 128) == "u" * 128


def test_user_id_must_be_a_string() -> None:
    db = kalam_engine.connect(":memory:")
    try:
        with pytest.raises(InvalidParameterError):
            db.execute("SELECT 1", user=42)  # type: ignore[arg-type]
    finally:
        db.close()


def test_sql_longer_than_one_mib_is_rejected(disk) -> None:
    db, path = disk
    before = listing(path)
    padding = " " * (MAX_SQL_LENGTH - len("SELECT 1"))
    assert db.execute("SELECT 1" + padding).row_count == 1  # exactly 1 MiB is fine
    too_long = "INSERT INTO app.t VALUES (99, 'x')" + " " * MAX_SQL_LENGTH
    with pytest.raises(InvalidSqlError, match="1 MiB"):
        db.execute(too_long, user="alice")
    with pytest.raises(InvalidSqlError, match="1 MiB"):
        db.execute("SELECT 1; " * (MAX_SQL_LENGTH // 10 + 1))
    assert db.execute("SELECT * FROM app.t WHERE id = 99", user="alice").row_count == 0
    assert listing(path) == before
