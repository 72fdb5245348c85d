"""CREATE / ALTER / DROP USER (semantics 1.9): syntax, role aliases, bcrypt, soft delete."""

from __future__ import annotations

import pytest

import kalam_engine
from kalam_engine import AlreadyExistsError, InvalidParameterError, InvalidSqlError, Role
from kalam_engine import PermissionDeniedError as Denied
from kalam_engine.auth import passwords
from kalam_engine.auth.users import check_password
from kalam_engine.sql.parser import parse_statement


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


def user_row(db: kalam_engine.Engine, user_id: str) -> dict:
    rows = db.execute("SELECT * FROM system.users WHERE user_id = $1",
                      params=[user_id]).to_arrow().to_pylist()
    return rows[0]


@pytest.mark.parametrize(("written", "role"), [
    ("dba", Role.DBA), ("admin", Role.DBA), ("'ADMIN'", Role.DBA),
    ("service", Role.SERVICE), ("developer", Role.SERVICE), ("analyst", Role.SERVICE),
    ("user", Role.USER), ("viewer", Role.USER), ("'readonly'", Role.USER),
    ("system", Role.SYSTEM)])
def test_role_aliases(db, written: str, role: Role) -> None:
    db.execute(f"CREATE USER alice WITH PASSWORD 'password1' ROLE {written}")
    assert db.role_of("alice") is role
    assert user_row(db, "alice")["role"] == role.label


def test_password_is_stored_as_bcrypt_only(db) -> None:
    db.execute("CREATE USER 'alice' WITH PASSWORD 'correct horse' ROLE user EMAIL 'a@x.org'")
    row = user_row(db, "alice")
    assert row["password_hash"].startswith("$2b$04$")
    assert "correct horse" not in str(row)
    assert row["email"] == "a@x.org" and row["auth_type"] == "password"
    assert check_password(db._db, "alice", "correct horse")
    assert not check_password(db._db, "alice", "wrong horse")
    db.execute("ALTER USER alice SET PASSWORD 'battery staple'", user="alice")
    assert check_password(db._db, "alice", "battery staple")
    assert not check_password(db._db, "alice", "correct horse")


def test_default_cost_is_twelve() -> None:
    import importlib

    assert importlib.reload(passwords).BCRYPT_COST == 12


@pytest.mark.parametrize("password", ["short", "1234567", "x" * 73, "\u00e9" * 37])
def test_password_length_rules(db, password: str) -> None:
    with pytest.raises(InvalidParameterError, match="password"):
        db.execute(f"CREATE USER alice WITH PASSWORD '{password}' ROLE user")
    assert db.role_of("alice") is Role.USER
    assert db.execute("SELECT count(*) AS n FROM system.users").to_arrow()["n"][0].as_py() == 1


def test_eight_and_seventy_two_are_accepted(db) -> None:
    db.execute(f"CREATE USER a8 WITH PASSWORD '{'p' * 8}' ROLE user")
    db.execute(f"CREATE USER a72 WITH PASSWORD '{'p' * 72}' ROLE user")
    assert check_password(db._db, "a72", "p" * 72)


def test_internal_and_oauth_users(db) -> None:
    db.execute("CREATE USER job WITH INTERNAL ROLE service")
    db.execute("CREATE USER sso WITH OAUTH '{\"provider\":\"google\",\"subject\":\"42\"}' "
               "ROLE user")
    assert user_row(db, "job")["auth_type"] == "internal"
    assert user_row(db, "job")["password_hash"] is None
    assert user_row(db, "sso")["auth_type"] == "oauth"
    with pytest.raises(InvalidParameterError, match="OAUTH"):
        db.execute("CREATE USER bad WITH OAUTH '{\"provider\":\"x\"}' ROLE user")


def test_duplicates_and_if_not_exists(db) -> None:
    db.execute("CREATE USER alice WITH PASSWORD 'password1' ROLE user")
    with pytest.raises(AlreadyExistsError):
        db.execute("CREATE USER Alice WITH PASSWORD 'password1' ROLE dba")
    assert "already exists" in db.execute(
        "CREATE USER IF NOT EXISTS alice WITH PASSWORD 'password1' ROLE dba").message
    assert db.role_of("alice") is Role.USER
    with pytest.raises(AlreadyExistsError):
        db.execute("CREATE USER root WITH PASSWORD 'password1' ROLE user")


def test_drop_is_a_soft_delete_and_the_id_can_come_back(db) -> None:
    db.execute("CREATE USER alice WITH PASSWORD 'password1' ROLE dba")
    db.execute("DROP USER alice")
    row = user_row(db, "alice")
    assert row["deleted_at"] is not None
    assert db.role_of("alice") is Role.USER
    assert not check_password(db._db, "alice", "password1")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        db.execute("ALTER USER alice SET EMAIL 'a@b.c'")
    db.execute("CREATE USER alice WITH PASSWORD 'password2' ROLE service")
    assert db.role_of("alice") is Role.SERVICE
    assert user_row(db, "alice")["deleted_at"] is None


def test_guard_rails(db) -> None:
    db.execute("CREATE USER boss WITH PASSWORD 'password1' ROLE dba")
    db.execute("CREATE USER sys2 WITH PASSWORD 'password1' ROLE system")
    with pytest.raises(Denied, match="root"):
        db.execute("DROP USER root")
    with pytest.raises(Denied, match="root"):
        db.execute("ALTER USER root SET ROLE dba")
    with pytest.raises(Denied, match="themselves"):
        db.execute("DROP USER boss", user="boss")
    with pytest.raises(Denied, match="above"):  # a dba cannot grant system ...
        db.execute("CREATE USER x WITH PASSWORD 'password1' ROLE system", user="boss")
    with pytest.raises(Denied, match="above"):  # ... nor take over a system user
        db.execute("ALTER USER sys2 SET PASSWORD 'password9'", user="boss")
    with pytest.raises(Denied, match="above"):
        db.execute("DROP USER sys2", user="boss")
    db.execute("ALTER USER boss SET ROLE service", user="boss")  # demoting yourself is fine
    assert db.role_of("boss") is Role.SERVICE


def test_password_hash_is_masked_below_dba(db) -> None:
    from kalam_engine.handlers.users import users_table

    db.execute("CREATE USER alice WITH PASSWORD 'password1' ROLE user")
    for role, masked in ((Role.USER, True), (Role.SERVICE, True), (Role.DBA, False)):
        table = users_table(db.services, kalam_engine.ExecutionContext("x", role))
        hashes = dict(zip(table["user_id"].to_pylist(), table["password_hash"].to_pylist(),
                          strict=True))
        assert (hashes["alice"] == "***") is masked


@pytest.mark.parametrize("sql", [
    "CREATE USER alice",
    "CREATE USER alice WITH PASSWORD secret123 ROLE user",
    "CREATE USER alice WITH PASSWORD 'password1' ROLE user ROLE dba",
    "CREATE USER alice WITH PASSWORD 'password1' ROLE user FOO",
    "ALTER USER alice SET NICKNAME 'x'",
    "ALTER USER alice SET PASSWORD 'password1' extra",
    "DROP USER",
])
def test_syntax_errors(db, sql: str) -> None:
    with pytest.raises(InvalidSqlError):
        db.execute(sql)


def test_statements_never_show_the_password() -> None:
    create = parse_statement("CREATE USER a WITH PASSWORD 'hunter2hunter2' ROLE user")
    alter = parse_statement("ALTER USER a SET PASSWORD 'hunter2hunter2'")
    assert "hunter2" not in repr(create) and "hunter2" not in repr(alter)


def test_unknown_role(db) -> None:
    with pytest.raises(InvalidParameterError, match="Unknown role"):
        db.execute("CREATE USER alice WITH PASSWORD 'password1' ROLE superuser")
