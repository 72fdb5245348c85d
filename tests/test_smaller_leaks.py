"""Issue 11 item 7, smaller leaks: SHOW STATS below dba shows only the caller's partition, the
EXECUTE AS denial says nothing about the target, user commands cannot run inside EXECUTE AS,
and every ALTER TABLE needs dba."""

from __future__ import annotations

import pytest

import kalam_engine
from kalam_engine import PermissionDeniedError
from kalam_engine.auth import passwords

ROLES = ("user", "service", "dba", "system")
STATS = ("logical_rows", "hot_rows", "flushed_segments", "memory_bytes")


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


@pytest.fixture
def db(tmp_path):
    engine = kalam_engine.connect(tmp_path / "data")
    engine.execute("CREATE NAMESPACE app")
    for role in ROLES:
        engine.execute(f"CREATE USER u_{role} WITH PASSWORD 'password0' ROLE {role}")
    engine.execute("CREATE USER alice WITH PASSWORD 'password0' ROLE user EMAIL 'a@x.org'")
    engine.execute("CREATE USER bob WITH PASSWORD 'password0' ROLE user")
    engine.execute("CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)")
    engine.execute("CREATE STREAM TABLE app.events (id INT PRIMARY KEY, body TEXT) "
                   "WITH (TTL_SECONDS=3600)")
    yield engine
    engine.close()


def stats(db: kalam_engine.Engine, table: str, user: str) -> dict:
    row = db.execute(f"SHOW STATS FOR TABLE {table}", user=user).to_arrow().to_pylist()[0]
    return {k: row[k] for k in STATS}


# --- SHOW STATS
@pytest.mark.parametrize("role", ["user", "service"])
@pytest.mark.parametrize("table", ["app.notes", "app.events"])
def test_show_stats_below_dba_does_not_move_with_other_users_writes(
        db: kalam_engine.Engine, role: str, table: str) -> None:
    me = f"u_{role}"
    db.execute(f"INSERT INTO {table} (id, body) VALUES (1, 'mine'), (2, 'mine')", user=me)
    before = stats(db, table, me)
    assert before["logical_rows"] == 2 and before["hot_rows"] == 2

    def others_write(first: int) -> None:  # another tenant inserts, deletes and flushes
        for i in range(first, first + 20):
            db.execute(f"INSERT INTO {table} (id, body) VALUES ($1, $2)", user="bob",
                       params=[i, "x" * 500])
        db.execute(f"DELETE FROM {table} WHERE id < {first + 5}", user="bob")

    others_write(0)
    assert stats(db, table, me) == before
    if table == "app.notes":  # with my rows in a segment, others' segments do not count
        db.execute(f"STORAGE FLUSH TABLE {table}")
        before = stats(db, table, me)
        assert before["flushed_segments"] == 1 and before["hot_rows"] == 0
        others_write(100)
        db.execute(f"STORAGE FLUSH TABLE {table}")
        others_write(200)
        assert stats(db, table, me) == before


def test_show_stats_counts_my_own_segments(db: kalam_engine.Engine) -> None:
    db.execute("INSERT INTO app.notes (id, body) VALUES (1, 'a')", user="alice")
    db.execute("STORAGE FLUSH TABLE app.notes")
    db.execute("INSERT INTO app.notes (id, body) VALUES (2, 'b')", user="alice")
    mine = stats(db, "app.notes", "alice")
    assert mine["logical_rows"] == 2 and mine["hot_rows"] == 1
    assert mine["flushed_segments"] == 1


@pytest.mark.parametrize("role", ["dba", "system"])
def test_show_stats_for_admins_covers_every_partition(db: kalam_engine.Engine,
                                                      role: str) -> None:
    for user in ("alice", "bob"):
        db.execute("INSERT INTO app.notes (id, body) VALUES (1, 'a'), (2, 'b')", user=user)
    db.execute("STORAGE FLUSH TABLE app.notes")
    db.execute("INSERT INTO app.notes (id, body) VALUES (3, 'c')", user="bob")
    whole = stats(db, "app.notes", f"u_{role}")
    assert whole["flushed_segments"] == 2 and whole["hot_rows"] == 1
    assert whole["logical_rows"] == 0  # the admin's own rows: none


# --- EXECUTE AS denial
@pytest.mark.parametrize("actor_role", ["user", "service", "dba"])
def test_execute_as_denial_reveals_nothing_about_the_target(db: kalam_engine.Engine,
                                                            actor_role: str) -> None:
    db.execute("CREATE USER gone WITH PASSWORD 'password0' ROLE system")
    db.execute("DROP USER gone")
    actor = f"u_{actor_role}"
    messages = {}
    for target in ("u_system", "u_dba", "alice", "gone", "never_created"):
        try:
            db.execute(f"EXECUTE AS USER '{target}' (SELECT 1)", user=actor)
        except PermissionDeniedError as exc:
            messages[target] = exc.message.replace(f"'{target}'", "'<target>'")
    assert "u_system" in messages  # nobody below system may act as a system user
    assert len(set(messages.values())) == 1, messages  # the same words for every target
    text = messages["u_system"]
    assert "System" not in text and "system" not in text
    if actor_role != "dba":
        assert "Dba" not in text and "dba" not in text


# --- user commands inside EXECUTE AS
@pytest.mark.parametrize("actor_role", ["service", "dba", "system"])
@pytest.mark.parametrize("inner", [
    "ALTER USER alice SET PASSWORD 'stolen-password'",
    "ALTER USER alice SET EMAIL 'evil@x.org'",
    "ALTER USER 'alice' SET PASSWORD 'stolen-password'",
    "CREATE USER newbie WITH PASSWORD 'password0' ROLE user",
    "DROP USER bob",
])
def test_user_commands_are_refused_inside_execute_as(db: kalam_engine.Engine, actor_role: str,
                                                     inner: str) -> None:
    def account(user_id: str) -> list:
        return db._db.query("SELECT password_hash, email, role, deleted_at FROM users "
                            "WHERE user_id = ?", (user_id,))

    before = {u: account(u) for u in ("alice", "bob", "newbie")}
    with pytest.raises(PermissionDeniedError, match="inside EXECUTE AS USER") as info:
        db.execute(f"EXECUTE AS USER 'alice' ({inner})", user=f"u_{actor_role}")
    assert info.value.hint
    assert {u: account(u) for u in before} == before
    assert passwords.verify_password("password0", before["alice"][0][0])


def test_user_commands_are_refused_inside_a_self_execute_as(db: kalam_engine.Engine) -> None:
    with pytest.raises(PermissionDeniedError, match="inside EXECUTE AS USER"):
        db.execute("EXECUTE AS USER 'alice' (ALTER USER alice SET EMAIL 'b@x.org')",
                   user="alice")
    assert db._db.query("SELECT email FROM users WHERE user_id = 'alice'") == [("a@x.org",)]


@pytest.mark.parametrize("inner", [
    "CREATE NAMESPACE other",
    "ALTER NAMESPACE app SET OPTIONS (owner='x')",
    "DROP NAMESPACE app",
    "CREATE SHARED TABLE app.t2 (id INT PRIMARY KEY)",
    "ALTER TABLE app.notes ADD COLUMN extra TEXT",
    "ALTER TABLE app.notes DROP COLUMN body",
    "ALTER TABLE app.events RENAME COLUMN body TO b",
    "DROP TABLE app.notes",
    "STORAGE FLUSH TABLE app.notes",
])
def test_ddl_inside_execute_as_runs_with_role_user(db: kalam_engine.Engine, inner: str) -> None:
    before = (db.all_namespaces(), [d.schema_version for d in db.catalog.latest_tables()])
    with pytest.raises(PermissionDeniedError):
        db.execute(f"EXECUTE AS USER 'alice' ({inner})", user="u_system")
    assert (db.all_namespaces(), [d.schema_version for d in db.catalog.latest_tables()]) \
        == before


# --- ALTER TABLE needs dba
@pytest.mark.parametrize("role", ["user", "service"])
@pytest.mark.parametrize("action", [
    "DROP COLUMN body",
    "RENAME COLUMN body TO text",
    "MODIFY COLUMN body INT",
    "ADD COLUMN extra TEXT",
    "ALTER COLUMN body SET NOT NULL",
    "ALTER COLUMN body SET DEFAULT 'x'",
])
def test_alter_table_below_dba_is_refused(db: kalam_engine.Engine, role: str,
                                          action: str) -> None:
    db.execute("INSERT INTO app.notes (id, body) VALUES (1, 'bob''s')", user="bob")
    version = db.catalog.load_table(kalam_engine.TableId("app", "notes")).schema_version
    with pytest.raises(PermissionDeniedError, match="ALTER TABLE needs role dba"):
        db.execute(f"ALTER TABLE app.notes {action}", user=f"u_{role}")
    assert db.catalog.load_table(kalam_engine.TableId("app", "notes")).schema_version == version
    assert db.execute("SELECT id, body FROM app.notes", user="bob").to_arrow().to_pylist() == \
        [{"id": 1, "body": "bob's"}]
