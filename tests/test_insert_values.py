"""INSERT ... VALUES of literals and parameters, built without DataFusion, stores exactly what
DataFusion's evaluation stores, and fails with the same error codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kalam_engine
from kalam_engine import KalamError
from kalam_engine.sql.values import literal_rows, values_table

TABLE = ("id BIGINT PRIMARY KEY, i INT, big BIGINT, s SMALLINT, d DOUBLE, f FLOAT, "
         "amt DECIMAL(10,2), txt TEXT, ok BOOLEAN, bin BYTES, j JSON, ts TIMESTAMP, dt DATE, "
         "u UUID, e EMBEDDING(2)")


@pytest.mark.parametrize(("sql", "params", "built"), [
    ("VALUES (1, 'a', NULL, TRUE, -2, 1.5, .5, -0.25)", None,
     [1, "a", None, True, -2, 1.5, 0.5, -0.25]),
    ("VALUES ($1, $2), ($3, 'x')", [1, "it's", 2], None),
    ("values (1), (NULL), (3)", None, None),
])
def test_literal_lists_are_built(sql, params, built):
    rows = literal_rows(sql)
    assert rows is not None
    names = [f"c{i}" for i in range(len(rows[0]))]
    table = values_table(rows, names, params)
    assert table is not None
    if built is not None:
        assert list(table.to_pylist()[0].values()) == built


@pytest.mark.parametrize("sql", [
    "VALUES (1 + 1)", "VALUES (now())", "VALUES ('a' || 'b')", "VALUES (X'00ff')",
    "VALUES ('a\\nb')", "VALUES (1e3)", "VALUES (9223372036854775808)", "VALUES (1), (2, 3)",
    "SELECT 1", "VALUES (CAST('1' AS INT))", "VALUES (-'a')", "VALUES (DEFAULT)",
])
def test_other_sources_are_left_to_datafusion(sql):
    rows = literal_rows(sql)
    assert rows is None or values_table(rows, [f"c{i}" for i in range(len(rows[0]))],
                                        None) is None


@pytest.mark.parametrize("params", [
    [1, 2.5], [1, None], ["1", 2], [True, 1], [2**63, 1], [object(), 1], [1],
])
def test_columns_of_mixed_or_unknown_types_are_left_to_datafusion(params):
    rows = literal_rows("VALUES ($1), ($2)")
    assert rows is not None
    table = values_table(rows, ["c"], params)
    if params in ([1, None],):
        assert table is not None and table["c"].to_pylist() == [1, None]
    else:
        assert table is None


def _engine(path: Path, fast: bool) -> Any:
    db = kalam_engine.connect(path, durability="off", fast_paths=fast)
    db.execute("CREATE NAMESPACE app")
    db.execute(f"CREATE USER TABLE app.t ({TABLE})")
    return db


def _apply(db: Any, sql: str, params: Any) -> Any:
    try:
        db.execute(sql, user="alice", params=params)
    except KalamError as exc:
        return exc.code
    return "ok"


def _rows(db: Any) -> Any:
    rows = db.execute("SELECT * FROM app.t ORDER BY id", user="alice").to_arrow()
    return rows.drop_columns(["_seq"])


STATEMENTS: list[tuple[str, Any]] = [
    ("INSERT INTO app.t (id, i, txt, ok) VALUES (1, 5, 'five', TRUE), (2, -7, 'it''s', FALSE)",
     None),
    ("INSERT INTO app.t (id, d, f, amt) VALUES (3, 1.5, 2.25, 12.34), (4, 2, 3, 5)", None),
    ("INSERT INTO app.t (id, ts, dt, u) VALUES "
     "(5, '2024-05-01 12:34:56.123456', '2024-05-01', '0190a5c2-7c1e-7d6a-9a7b-123456789abc')",
     None),
    ("INSERT INTO app.t (id, j, e) VALUES (6, '{\"a\": [1, 2]}', '[1.0, -2.5]')", None),
    ("INSERT INTO app.t (id, bin, txt) VALUES ($1, $2, $3)", [7, b"\x00\xff", "x'); --"]),
    ("INSERT INTO app.t (id, i, d) VALUES ($1, $2, $3), ($4, NULL, NULL)", [8, 1, 0.5, 9]),
    ("INSERT INTO app.t (id, s) VALUES (10, 40000)", None),          # out of SMALLINT range
    ("INSERT INTO app.t (id, i) VALUES (11, 'seven')", None),        # not a number
    ("INSERT INTO app.t (id, i) VALUES (1, 2)", None),               # duplicate key
    ("INSERT INTO app.t (id, i) VALUES (12, 1), (12, 2)", None),     # duplicate in batch
    ("INSERT INTO app.t (id, i) VALUES (13)", None),                 # too few values
    ("INSERT INTO app.t (id, nope) VALUES (14, 1)", None),           # unknown column
    ("INSERT INTO app.t (id, i) VALUES ($1, $2)", [15]),             # missing parameter
    ("INSERT INTO app.t (id, ts) VALUES (16, 'not a time')", None),
    ("INSERT INTO app.t (id, amt) VALUES (17, 123456789.5)", None),  # too wide for (10,2)
    ("INSERT INTO app.t (id, ok) VALUES (18, 1)", None),
    ("INSERT INTO app.t (id, i) VALUES (19, 2147483648)", None),     # out of INT range
    ("INSERT INTO app.t (id, txt) VALUES (20, NULL), (21, 'b')", None),
]


def test_same_rows_and_errors_as_datafusion(tmp_path: Path) -> None:
    fast, slow = _engine(tmp_path / "fast", True), _engine(tmp_path / "slow", False)
    try:
        for sql, params in STATEMENTS:
            assert _apply(fast, sql, params) == _apply(slow, sql, params), sql
            assert _rows(fast).equals(_rows(slow)), sql
    finally:
        fast.close()
        slow.close()


_CELL = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet="ab'\" 1-:.", max_size=6),
)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 30), _CELL, _CELL, _CELL, st.booleans()),
                min_size=1, max_size=4))
def test_property_random_literal_inserts_match_datafusion(tmp_path_factory, rows) -> None:
    base = tmp_path_factory.mktemp("values")
    fast, slow = _engine(base / "fast", True), _engine(base / "slow", False)
    try:
        for key, a, b, c, as_params in rows:
            values = (key, a, b, c)
            if as_params:
                sql = "INSERT INTO app.t (id, big, d, txt) VALUES ($1, $2, $3, $4)"
                args: Any = list(values)
            else:
                sql = ("INSERT INTO app.t (id, big, d, txt) VALUES ("
                       + ", ".join(_literal(v) for v in values) + ")")
                args = None
            assert _apply(fast, sql, args) == _apply(slow, sql, args), (sql, args)
        assert _rows(fast).equals(_rows(slow))
    finally:
        fast.close()
        slow.close()
