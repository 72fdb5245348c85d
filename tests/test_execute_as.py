"""EXECUTE AS USER (semantics 1.10): every actor/target role pair, the audit trail, and what the
inner statement may and may not do."""

from __future__ import annotations

import json

import pytest

import kalam_engine
from kalam_engine import InvalidSqlError, PermissionDeniedError
from kalam_engine.auth import passwords

ROLES = ("user", "service", "dba", "system")
# Written from the semantics document: actor role -> target roles it may impersonate.
MAY_TARGET = {
    "system": {"system", "dba", "service", "user"},
    "dba": {"dba", "service", "user"},
    "service": {"service", "user"},
    "user": set(),
}


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "BCRYPT_COST", 4)


@pytest.fixture
def db():
    engine = kalam_engine.connect(":memory:")
    engine.execute("CREATE NAMESPACE app")
    for role in ROLES:  # two users per role: actor_<role> and target_<role>
        for kind in ("actor", "target"):
            engine.execute(f"CREATE USER {kind}_{role} WITH PASSWORD 'password0' ROLE {role}")
    engine.execute("CREATE USER TABLE app.notes (id INT PRIMARY KEY, body TEXT)")
    engine.execute("CREATE STREAM TABLE app.events (id INT PRIMARY KEY, body TEXT) "
                   "WITH (TTL_SECONDS=3600)")
    for level in ("public", "private", "restricted", "dba"):
        engine.execute(f"CREATE SHARED TABLE app.s_{level} (id INT PRIMARY KEY, body TEXT) "
                       f"WITH (ACCESS_LEVEL='{level}')")
    yield engine
    engine.close()


def audit_rows(db: kalam_engine.Engine) -> list[dict]:
    return db.execute("SELECT * FROM system.audit_log ORDER BY audit_id").to_arrow().to_pylist()


def bodies(db: kalam_engine.Engine, user: str) -> list[str]:
    return db.execute("SELECT body FROM app.notes ORDER BY id", user=user) \
        .to_arrow()["body"].to_pylist()


TARGETS = [*ROLES, "unknown", "dropped"]


def target_role(target: str) -> str:
    return "user" if target in ("unknown", "dropped") else target


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("actor_role", ROLES)
def test_every_actor_target_pair(db: kalam_engine.Engine, actor_role: str, target: str) -> None:
    actor = f"actor_{actor_role}"
    target_id = {"unknown": "never_created", "dropped": "gone"}.get(target, f"target_{target}")
    if target == "dropped":
        db.execute("CREATE USER gone WITH PASSWORD 'password0' ROLE dba")
        db.execute("DROP USER gone")  # a dropped dba counts as role user again
    allowed = target_role(target) in MAY_TARGET[actor_role]
    insert = f"EXECUTE AS USER '{target_id}' (INSERT INTO app.notes (id, body) VALUES (1, 'x'))"
    if allowed:
        result = db.execute(insert, user=actor)
        assert result.as_user == target_id
        assert result.row_count == 1
        assert bodies(db, target_id) == ["x"]  # the row went to the target's partition
        assert bodies(db, actor) == []
        read = db.execute(f"EXECUTE AS USER {target_id} (SELECT body FROM app.notes)",
                          user=actor)
        assert read.as_user == target_id and read.to_arrow()["body"].to_pylist() == ["x"]
    else:
        with pytest.raises(PermissionDeniedError) as info:
            db.execute(insert, user=actor)
        message = info.value.message
        # the denial names the actor's own role but nothing about the target (issue 11)
        assert message == (
            f"EXECUTE AS USER is not authorized: actor '{actor}' with role "
            f"{actor_role.capitalize()} cannot act as '{target_id}'")
        assert bodies(db, target_id) == [] and bodies(db, actor) == []
    rows = audit_rows(db)
    assert len(rows) == (2 if allowed else 1)
    for row in rows:
        assert row["action"] == ("EXECUTE_AS_USER" if allowed else "EXECUTE_AS_USER_DENIED")
        assert row["actor_user_id"] == actor
        assert row["target"] == f"user:{target_id}"
        assert row["subject_user_id"] == target_id
        details = json.loads(row["details"])
        assert details["success"] is allowed
        assert details["actor_role"] == actor_role
        assert "INTO app.notes" in details["statement"] or "SELECT" in details["statement"]


@pytest.mark.parametrize("role", ROLES)
def test_self_target_is_an_audited_no_op(db: kalam_engine.Engine, role: str) -> None:
    actor = f"actor_{role}"
    result = db.execute(f"EXECUTE AS USER '{actor}' (INSERT INTO app.notes VALUES (1, 'me'))",
                        user=actor)
    assert result.as_user == actor
    assert bodies(db, actor) == ["me"]
    # the role is kept: admins still read system tables, users still cannot
    sql = f"EXECUTE AS USER {actor} (SELECT * FROM system.users)"
    if role in ("dba", "system"):
        assert db.execute(sql, user=actor).row_count >= 8
    else:
        with pytest.raises(PermissionDeniedError, match="system table"):
            db.execute(sql, user=actor)
    [row, *_] = audit_rows(db)
    assert row["action"] == "EXECUTE_AS_USER" and row["actor_user_id"] == actor
    assert json.loads(row["details"])["reason"] == "self"


@pytest.mark.parametrize("actor_role", ["service", "dba", "system"])
def test_inner_statement_runs_with_role_user(db: kalam_engine.Engine, actor_role: str) -> None:
    actor = f"actor_{actor_role}"
    target = "target_service" if actor_role == "service" else "target_dba"
    denied = [
        "SELECT * FROM system.users",
        "SELECT * FROM app.notes WHERE body IN (SELECT user_id FROM system.users)",
        "CREATE NAMESPACE other",
        "CREATE SHARED TABLE app.t2 (id INT PRIMARY KEY)",
        "DROP TABLE app.notes",
        "CREATE USER x WITH PASSWORD 'password0' ROLE dba",
        "ALTER USER target_user SET ROLE dba",
        "STORAGE FLUSH TABLE app.notes",
        "EXECUTE AS USER 'target_user' (SELECT * FROM app.notes)",  # user targets nobody
    ]
    for inner in denied:
        with pytest.raises(PermissionDeniedError):
            db.execute(f"EXECUTE AS USER '{target}' ({inner})", user=actor)
    assert db.role_of("target_user").label == "user"
    assert "other" not in [r[0] for r in db.all_namespaces()]
    # a USER table the target may create for themselves is fine
    db.execute(f"EXECUTE AS USER '{target}' (CREATE USER TABLE app.t3 (id INT PRIMARY KEY))",
               user=actor)


@pytest.mark.parametrize("level", ["public", "private", "restricted", "dba"])
@pytest.mark.parametrize("actor_role", ["service", "dba", "system"])
def test_shared_tables_are_refused(db: kalam_engine.Engine, actor_role: str,
                                   level: str) -> None:
    db.execute(f"INSERT INTO app.s_{level} VALUES (1, 'shared')")
    for inner in (f"SELECT * FROM app.s_{level}",
                  f"INSERT INTO app.s_{level} VALUES (2, 'x')",
                  f"UPDATE app.s_{level} SET body = 'y' WHERE id = 1",
                  f"DELETE FROM app.s_{level} WHERE id = 1",
                  f"INSERT INTO app.notes SELECT id, body FROM app.s_{level}"):
        with pytest.raises(PermissionDeniedError, match="not allowed on SHARED tables"):
            db.execute(f"EXECUTE AS USER target_user ({inner})", user=f"actor_{actor_role}")
    assert db.execute(f"SELECT id, body FROM app.s_{level}").to_arrow().to_pylist() == \
        [{"id": 1, "body": "shared"}]
    assert bodies(db, "target_user") == []


def test_stream_tables_work(db: kalam_engine.Engine) -> None:
    db.execute("EXECUTE AS USER target_user (INSERT INTO app.events VALUES (1, 'ev'))",
               user="actor_service")
    assert db.execute("SELECT body FROM app.events", user="target_user").row_count == 1
    assert db.execute("SELECT body FROM app.events", user="actor_service").row_count == 0


def test_update_and_delete_touch_only_the_target(db: kalam_engine.Engine) -> None:
    for user in ("target_user", "actor_dba"):
        db.execute("INSERT INTO app.notes VALUES (1, $1)", user=user, params=[user])
    db.execute("EXECUTE AS USER target_user (UPDATE app.notes SET body = 'edited' WHERE true)",
               user="actor_dba")
    assert bodies(db, "target_user") == ["edited"] and bodies(db, "actor_dba") == ["actor_dba"]
    db.execute("EXECUTE AS USER target_user (DELETE FROM app.notes WHERE id = 1)",
               user="actor_dba")
    assert bodies(db, "target_user") == [] and bodies(db, "actor_dba") == ["actor_dba"]


def test_params_reach_the_inner_statement(db: kalam_engine.Engine) -> None:
    db.execute("EXECUTE AS USER target_user (INSERT INTO app.notes VALUES ($1, $2))",
               user="actor_system", params=[5, "p"])
    assert bodies(db, "target_user") == ["p"]


def test_batch_runs_per_statement(db: kalam_engine.Engine) -> None:
    result = db.execute("EXECUTE AS USER 'target_user' (INSERT INTO app.notes VALUES (1, 'b')); "
                        "SELECT count(*) AS n FROM app.notes", user="actor_dba")
    assert result.as_user == "actor_dba"  # the second statement runs as the actor again
    assert result.to_arrow()["n"][0].as_py() == 0
    assert bodies(db, "target_user") == ["b"]


@pytest.mark.parametrize("sql", [
    "EXECUTE AS USER 'target_user' (INSERT INTO app.notes VALUES (1, 'a'); SELECT 1)",
    "EXECUTE AS USER 'target_user' ()",
    "EXECUTE AS USER 'target_user' SELECT 1",
    "EXECUTE AS USER 'target_user' (SELECT 1) extra",
    "EXECUTE AS 'target_user' (SELECT 1)",
    "EXECUTE AS USER (SELECT 1)",
])
def test_exactly_one_wrapped_statement(db: kalam_engine.Engine, sql: str) -> None:
    with pytest.raises(InvalidSqlError):
        db.execute(sql, user="actor_dba")
    assert bodies(db, "target_user") == []
    assert audit_rows(db) == []


@pytest.mark.parametrize("target", ["'../etc'", "'a/b'", "'x\x00y'", "''", "'t\u0430rget'"])
def test_bad_target_ids_are_rejected(db: kalam_engine.Engine, target: str) -> None:
    with pytest.raises(kalam_engine.InvalidParameterError):
        db.execute(f"EXECUTE AS USER {target} (SELECT 1)", user="actor_system")


def test_target_ids_are_case_folded(db: kalam_engine.Engine) -> None:
    db.execute("EXECUTE AS USER \"Target_User\" (INSERT INTO app.notes VALUES (1, 'c'))",
               user="actor_system")
    assert bodies(db, "target_user") == ["c"]


def test_use_is_refused_inside(db: kalam_engine.Engine) -> None:
    with pytest.raises(kalam_engine.UnsupportedError):
        db.execute("EXECUTE AS USER target_user (USE app)", user="actor_dba")
