"""df.kalam: bulk inserts through Arrow and tables from dtypes, on a real in-memory engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import kalam_engine
import kalam_jupyter  # noqa: F401  (importing it registers df.kalam)
from kalam_engine.model.errors import (
    EngineClosedError,
    InvalidParameterError,
    KalamError,
    TableNotFoundError,
)


@pytest.fixture
def db() -> Iterator[Any]:
    engine = kalam_engine.connect(":memory:")
    engine.execute("CREATE NAMESPACE app")
    engine.execute(
        "CREATE USER TABLE app.messages (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), "
        "body TEXT NOT NULL, n BIGINT, score DOUBLE)"
    )
    yield engine
    engine.close()


def rows(db: Any, user: str, table: str = "app.messages", key: str = "id") -> pd.DataFrame:
    return db.execute(f"SELECT * FROM {table} ORDER BY {key}", user=user).to_pandas()


def test_insert_as_one_user(db: Any) -> None:
    frame = pd.DataFrame({"body": ["a", "b", "c"], "n": [1, 2, 3]})
    assert frame.kalam.insert("app.messages", user="alice", db=db) == 3
    assert sorted(rows(db, "alice")["body"]) == ["a", "b", "c"]
    assert rows(db, "bob").empty


def test_insert_many_users_in_one_call(db: Any) -> None:
    users = [f"u{i}" for i in range(12)]
    frame = pd.DataFrame(
        {
            "user_id": [u for u in users for _ in range(3)],
            "body": [f"{u}-{j}" for u in users for j in range(3)],
            "n": np.arange(36, dtype="int64"),
        }
    )
    assert frame.kalam.insert("app.messages", user_column="user_id", db=db) == 36
    for u in users:
        got = rows(db, u)
        assert sorted(got["body"]) == [f"{u}-{j}" for j in range(3)]
        assert "user_id" not in got.columns  # the routing column is not a table column


def test_create_table_from_dtypes(db: Any) -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b"],
            "name": ["x", "y"],
            "count": np.array([1, 2], dtype="int64"),
            "small": np.array([1, 2], dtype="int32"),
            "ratio": [0.5, 1.5],
            "flag": [True, False],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        }
    )
    message = frame.kalam.create_table(
        "app.facts", table_type="user", primary_key="fact_id", user_column="user_id", db=db
    )
    assert "facts" in message
    described = db.execute("DESCRIBE TABLE app.facts").to_pandas()
    types = dict(zip(described["column_name"], described["data_type"].str.upper(), strict=True))
    assert "user_id" not in types
    assert types["fact_id"].startswith("BIGINT")
    assert types["count"].startswith("BIGINT")
    assert types["small"].startswith("INT")
    assert types["ratio"].startswith("DOUBLE")
    assert types["flag"].startswith("BOOL")
    assert types["at"].startswith("TIMESTAMP")
    assert types["name"] in {"TEXT", "STRING", "UTF8", "VARCHAR"}
    assert frame.kalam.insert("app.facts", user_column="user_id", db=db) == 2
    assert rows(db, "a", "app.facts", "fact_id")["name"].tolist() == ["x"]


def test_create_table_needs_a_primary_key(db: Any) -> None:
    with pytest.raises(KalamError, match="primary key"):
        pd.DataFrame({"a": [1]}).kalam.create_table("app.nopk", db=db)


def test_create_table_rejects_uninferable_column(db: Any) -> None:
    with pytest.raises(KalamError, match="only nulls"):
        pd.DataFrame({"a": [None, None]}).kalam.create_table("app.t", primary_key="id", db=db)


def _unchanged(db: Any, frame: pd.DataFrame, match: str, **kw: Any) -> None:
    before = len(rows(db, "alice"))
    with pytest.raises(KalamError, match=match):
        frame.kalam.insert("app.messages", db=db, **kw)
    assert len(rows(db, "alice")) == before


def test_bad_input_raises_and_writes_nothing(db: Any) -> None:
    pd.DataFrame({"body": ["keep"]}).kalam.insert("app.messages", user="alice", db=db)
    _unchanged(db, pd.DataFrame({"body": ["x"], "bogus": [1]}), "bogus", user="alice")
    _unchanged(db, pd.DataFrame({"n": [1]}), "NOT NULL.*body", user="alice")
    _unchanged(db, pd.DataFrame({"body": ["x", None, "z"]}), "body.*row", user="alice")
    _unchanged(db, pd.DataFrame({"body": ["x", np.nan]}), "body", user="alice")
    _unchanged(db, pd.DataFrame({"body": ["x"], "n": ["not a number"]}), "'n'", user="alice")
    _unchanged(db, pd.DataFrame({"body": [1, 2]}), "body", user="alice")
    _unchanged(
        db,
        pd.DataFrame({"body": ["x"], "who": ["alice"]}),
        "user_column",
        user_column="nobody",
    )
    _unchanged(
        db,
        pd.DataFrame({"body": ["x", "y"], "who": ["alice", None]}),
        "empty",
        user_column="who",
    )
    _unchanged(db, pd.DataFrame({"body": ["x"]}), "either", user="alice", user_column="body")
    assert rows(db, "alice")["body"].tolist() == ["keep"]


def test_unknown_table_suggests_close_names(db: Any) -> None:
    with pytest.raises(KalamError) as info:
        pd.DataFrame({"body": ["x"]}).kalam.insert("app.mesages", user="alice", db=db)
    assert info.value.code == "TABLE_NOT_FOUND"
    assert "app.messages" in (info.value.hint or "")


def test_bad_table_name(db: Any) -> None:
    with pytest.raises(KalamError, match=r"namespace\.table"):
        pd.DataFrame({"body": ["x"]}).kalam.insert("messages; DROP", db=db)


def test_accessor_is_stateless() -> None:
    frame = pd.DataFrame({"a": [1]})
    assert frame.kalam is not frame.kalam


def test_no_engine_without_magics_or_db() -> None:
    from kalam_jupyter import magics

    saved = magics._ACTIVE
    magics.activate(None)
    try:
        with pytest.raises(KalamError, match="no Kalam engine"):
            pd.DataFrame({"a": [1]}).kalam.insert("app.messages")
    finally:
        magics._ACTIVE = saved


def test_table_definition_is_the_engines_own() -> None:
    engine = kalam_engine.connect(":memory:")
    engine.execute("CREATE NAMESPACE app")
    engine.execute("CREATE SHARED TABLE app.t (id INT PRIMARY KEY, at DATETIME NOT NULL, "
                   "note TEXT DEFAULT 'x')")
    definition = engine.table_definition("App.T")
    assert [(c.name, c.kalam_type, c.nullable) for c in definition.columns] == \
        [("id", "Int", False), ("at", "DateTime", False), ("note", "Text", True)]
    assert definition.column("note").default.value == "x"
    with pytest.raises(TableNotFoundError):
        engine.table_definition("app.nope")
    engine.close()
    with pytest.raises(EngineClosedError):  # not a SQLite error about a closed database
        pd.DataFrame({"id": [1]}).kalam.insert("app.t", db=engine)


def test_classify_and_table_definition_refuse_what_is_not_text() -> None:
    """Wrong argument types get KalamErrors, an empty text is 'invalid' (it runs nothing)."""
    engine = kalam_engine.connect(":memory:")
    try:
        for bad in (None, 5):
            with pytest.raises(InvalidParameterError, match="string"):
                engine.classify(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError, match="string"):
            engine.table_definition(5)  # type: ignore[arg-type]
        assert engine.classify("").kind == "invalid"
        assert engine.classify("-- only a comment").kind == "invalid"
        assert engine.classify("SELECT $1,$2").kind == "read"
    finally:
        engine.close()
