"""Issue 11 item 6: every error a user can cause through ``execute``, ``insert_arrow`` and
``df.kalam`` is a coded KalamError with a hint, and a rejected statement changes nothing.

The named cases are the ones found raw (or silently accepted); the hypothesis tests fuzz the
same entry points with odd types and values (KALAM_FUZZ_EXAMPLES raises their example count,
e.g. to 3000 for a long run)."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import os
import uuid
import zoneinfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kalam_engine
import kalam_jupyter.accessor  # noqa: F401 - registers df.kalam
from kalam_engine import (
    ExecutionError,
    InvalidParameterError,
    InvalidSqlError,
    KalamError,
)

EXAMPLES = int(os.environ.get("KALAM_FUZZ_EXAMPLES", "80"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def make_engine() -> kalam_engine.Engine:
    db = kalam_engine.connect(":memory:")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, body TEXT, f DOUBLE, "
               "ts TIMESTAMP, d DECIMAL(10, 2), b BYTES, e EMBEDDING(2), u UUID, j JSON, "
               "day DATE, tm TIME, s SMALLINT)")
    db.execute("CREATE SHARED TABLE app.s (id INT PRIMARY KEY, body TEXT) "
               "WITH (ACCESS_LEVEL='PUBLIC')")
    db.execute("CREATE STREAM TABLE app.ev (id INT PRIMARY KEY, body TEXT) "
               "WITH (TTL_SECONDS=3600)")
    db.execute("INSERT INTO app.t (id, body) VALUES (1, 'one')", user="alice")
    return db


@pytest.fixture(scope="module")
def db():
    engine = make_engine()
    yield engine
    engine.close()


def rows(db: kalam_engine.Engine) -> pa.Table:
    return db.execute("SELECT * FROM app.t ORDER BY id", user="alice").to_arrow()


def refused(db: kalam_engine.Engine, cls: type[KalamError], sql: object, *,
            user: object = "alice", params: object = None) -> KalamError:
    """Run a statement that must be refused with ``cls`` and a hint, changing nothing."""
    before = rows(db)
    with pytest.raises(cls) as info:
        db.execute(sql, user=user, params=params)  # type: ignore[arg-type]
    assert info.value.hint, info.value
    assert rows(db).equals(before)
    assert db.execute("SELECT $1 AS ok", params=[1]).to_arrow()["ok"].to_pylist() == [1]
    return info.value


# --- params: shape and count
@pytest.mark.parametrize("params", [5, "ab", b"ab", {"a": 1}, {1, 2}, 1.5])
def test_params_must_be_a_list(db: kalam_engine.Engine, params: object) -> None:
    sql = "SELECT $1, $2" if isinstance(params, (str, bytes, dict, set)) else "SELECT $1"
    error = refused(db, InvalidParameterError, sql, params=params)
    assert "list or tuple" in error.message


@pytest.mark.parametrize(("sql", "params", "used"), [
    ("SELECT $1", [1, 2], 1),
    ("SELECT 1", [1], 0),
    ("INSERT INTO app.t (id, body) VALUES ($1, 'x')", [2, "extra"], 1),
    ("SELECT $1, $2", [1], 2),
    ("SELECT $2", [1], 2),
    ("SELECT $1, $2", None, 2),
    ("INSERT INTO app.t (id, body) VALUES ($1, $2)", [3], 2),
])
def test_params_must_match_the_placeholders(db: kalam_engine.Engine, sql: str, params: object,
                                            used: int) -> None:
    error = refused(db, InvalidParameterError, sql, params=params)
    assert f"uses {used} parameter" in error.message if used else "uses no parameters" in \
        error.message


def test_placeholders_in_strings_and_comments_do_not_count(db: kalam_engine.Engine) -> None:
    out = db.execute("SELECT '$2' AS a, $1 AS b -- $3\n", params=["x"]).to_arrow()
    assert out.to_pylist() == [{"a": "$2", "b": "x"}]
    assert db.execute('SELECT 1 AS "$4"', params=[]).row_count == 1


# --- params: values DataFusion cannot bind
@pytest.mark.parametrize("value", [
    2 ** 63, -(2 ** 63) - 1, 2 ** 70,  # beyond 64 bits
    "\ud800", "ok\udfff",  # lone surrogates
    [1, [2]], object(), {1: "a"}, {"k": "\ud800"}, complex(1, 2),
])
@pytest.mark.parametrize("sql", [
    "SELECT $1",
    "INSERT INTO app.t (id, body) VALUES (10, $1)",
    "SELECT * FROM app.t WHERE id = $1",
    "EXECUTE AS USER 'alice' (SELECT * FROM app.t WHERE body = $1)",
])
def test_unbindable_values_are_refused(db: kalam_engine.Engine, sql: str,
                                       value: object) -> None:
    if value == 2 ** 63 and sql == "SELECT $1":
        return  # fits UInt64: DataFusion binds it
    error = refused(db, InvalidParameterError, sql, params=[value])
    assert "Parameter $1" in error.message


def test_a_time_zone_datafusion_does_not_know_is_bound_in_utc(db: kalam_engine.Engine) -> None:
    zone = zoneinfo.ZoneInfo("right/Europe/Vienna")  # known to Python, not to DataFusion
    when = dt.datetime(2024, 1, 1, 12, 0, tzinfo=zone)
    out = db.execute("SELECT $1 AS a, $2 AS b", params=[when, [when]]).to_arrow().to_pylist()
    assert out[0]["a"] == when and out[0]["b"] == [when]
    db.execute("INSERT INTO app.t (id, ts) VALUES (20, $1)", user="bob", params=[when])
    stored = db.execute("SELECT ts FROM app.t", user="bob").to_arrow()["ts"][0].as_py()
    assert stored == when.astimezone(dt.UTC).replace(tzinfo=None)


def test_a_datafusion_panic_is_an_execution_error(db: kalam_engine.Engine) -> None:
    bad = pa.scalar([dt.datetime(2020, 1, 1)],
                    type=pa.list_(pa.timestamp("us", tz="right/Europe/Vienna")))
    refused(db, ExecutionError, "SELECT $1 AS x", params=[bad])


@pytest.mark.parametrize("value", [
    None, True, 7, 2.5, float("nan"), float("inf"), "text", "é😀", b"\x00\xff",
    decimal.Decimal("1.25"), dt.date(2024, 1, 2), dt.time(3, 4, 5),
    dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
    [1.5, 2.5], {"a": 1}, np.int64(3), uuid.UUID(int=5),
])
def test_ordinary_values_still_bind(db: kalam_engine.Engine, value: object) -> None:
    db.execute("SELECT $1 AS v", params=[value])
    db.execute("SELECT $1 AS v", params=(value,))


# --- SQL text and user ids
@pytest.mark.parametrize("sql", ["SELECT '\ud800'", "SELECT 1 -- \udc00",
                                 "INSERT INTO app.t (id, body) VALUES (5, '\ud83d')"])
def test_sql_text_must_be_valid_unicode(db: kalam_engine.Engine, sql: str) -> None:
    refused(db, InvalidSqlError, sql)


@pytest.mark.parametrize("user", ["\ud800", "al\udfffice", 5, b"alice", ["alice"], ""])
def test_bad_user_ids(db: kalam_engine.Engine, user: object) -> None:
    refused(db, InvalidParameterError, "INSERT INTO app.t (id, body) VALUES (6, 'x')", user=user)


@pytest.mark.parametrize("sql", [b"SELECT 1", 5, None, ["SELECT 1"]])
def test_sql_must_be_a_string(db: kalam_engine.Engine, sql: object) -> None:
    refused(db, InvalidParameterError, sql)


# --- insert_arrow and df.kalam
@pytest.mark.parametrize("data", [None, {"id": [1]}, [(1, "a")],
                                  pd.DataFrame({"id": [1]})])
def test_insert_arrow_needs_arrow_data(db: kalam_engine.Engine, data: object) -> None:
    with pytest.raises(InvalidParameterError, match="pyarrow Table"):
        db.insert_arrow("app.t", data, user="alice")  # type: ignore[arg-type]


@pytest.mark.parametrize("user_column", [None, "id"])
def test_insert_arrow_refuses_a_column_given_twice(db: kalam_engine.Engine,
                                                   user_column: str | None) -> None:
    before = rows(db)
    data = pa.Table.from_arrays([pa.array([7]), pa.array(["a"]), pa.array(["b"])],
                                names=["id", "body", "BODY"])
    with pytest.raises(InvalidParameterError, match="given twice"):
        db.insert_arrow("app.t", data, user="alice" if user_column is None else None,
                        user_column=user_column)
    data = pa.Table.from_arrays([pa.array(["bob"]), pa.array(["carol"]), pa.array([8])],
                                names=["owner", "owner", "id"])
    with pytest.raises(InvalidParameterError, match="given twice"):
        db.insert_arrow("app.t", data, user_column="owner")
    assert rows(db).equals(before)


@pytest.mark.parametrize("owners", [pa.array([[1.5], []]), pa.array([b"\xff", b"a"]),
                                    pa.array([{"a": 1}, {"a": 2}])])
def test_insert_arrow_user_column_must_hold_user_ids(db: kalam_engine.Engine,
                                                     owners: pa.Array) -> None:
    before = rows(db)
    data = pa.table({"id": [30, 31], "owner": owners})
    with pytest.raises(InvalidParameterError, match="owner"):
        db.insert_arrow("app.t", data, user_column="owner")
    assert rows(db).equals(before)


def test_accessor_frame_with_an_int_beyond_64_bits(db: kalam_engine.Engine) -> None:
    frame = pd.DataFrame({"id": [1, 2], "big": pd.Series([2 ** 70, 1], dtype=object)})
    with pytest.raises(InvalidParameterError):
        frame.kalam.create_table("app.big", primary_key="id", db=db)
    with pytest.raises(InvalidParameterError):
        frame.rename(columns={"big": "body"}).kalam.insert("app.t", user="alice", db=db)


def test_insert_arrow_needs_a_table_name(db: kalam_engine.Engine) -> None:
    with pytest.raises(InvalidParameterError):
        db.insert_arrow(5, pa.table({"id": [9]}), user="alice")  # type: ignore[arg-type]


@pytest.mark.parametrize("call", [
    lambda df, db: df.kalam.insert(5, db=db),
    lambda df, db: df.kalam.insert(None, db=db),
    lambda df, db: df.kalam.create_table(5, primary_key="id", db=db),
    lambda df, db: df.kalam.create_table("app.n1", table_type=5, primary_key="id", db=db),
    lambda df, db: df.kalam.create_table("app.n2", primary_key=5, db=db),
    lambda df, db: df.kalam.create_table("app.n3", table_type="stream", ttl_seconds="abc",
                                         db=db),
    lambda df, db: df.kalam.create_table("app.n4", table_type="shared", primary_key="id",
                                         access_level=5, db=db),
])
def test_accessor_argument_types(db: kalam_engine.Engine, call) -> None:
    with pytest.raises(InvalidParameterError):
        call(pd.DataFrame({"id": [1], "body": ["x"]}), db)


def test_accessor_duplicate_frame_columns(db: kalam_engine.Engine) -> None:
    frame = pd.DataFrame([[1, "a", "b"]], columns=["id", 0, 0])
    with pytest.raises(InvalidParameterError):
        frame.kalam.create_table("app.dup", primary_key="id", db=db)
    assert "dup" not in db.catalog_snapshot()["app"]


# --- fuzzing
_ODD = st.sampled_from([
    np.int64(3), np.float32(1.5), np.nan, pd.NaT, pd.Timestamp("2020-01-01", tz="UTC"),
    np.array([1, 2]), float("inf"), 2 ** 64, -(2 ** 63) - 1, complex(1, 2), {1, 2},
    frozenset(), range(3), Ellipsis, object(), "\ud800", "a\udfffb", "\x00",
    dt.datetime(2024, 5, 6, tzinfo=zoneinfo.ZoneInfo("right/Europe/Vienna")),
])
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
            | st.binary(max_size=6) | st.decimals() | st.datetimes(timezones=st.timezones())
            | st.dates() | st.times() | st.timedeltas() | st.uuids() | _ODD)
VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=3) | st.integers(), inner,
                                        max_size=2), max_leaves=5)
TEMPLATES = [
    "SELECT $1", "SELECT $1, $2", "SELECT * FROM app.t WHERE id = $1",
    "SELECT * FROM app.t WHERE body = $1 AND f > $2",
    "INSERT INTO app.t (id, body) VALUES ($1, $2)",
    "INSERT INTO app.t (id, f, ts) VALUES ($1, $2, $3)",
    "INSERT INTO app.t (id, d, b) VALUES ($1, $2, $3)",
    "INSERT INTO app.t (id, e, u) VALUES ($1, $2, $3)",
    "INSERT INTO app.t (id, j, day, tm) VALUES ($1, $2, $3, $4)",
    "INSERT INTO app.t (id, s) VALUES ($1, $2)", "UPDATE app.t SET body = $1 WHERE id = $2",
    "UPDATE app.t SET f = $1 WHERE id >= $2", "DELETE FROM app.t WHERE id = $1",
    "INSERT INTO app.s (id, body) VALUES ($1, $2)", "INSERT INTO app.ev (id, body) VALUES ($1, $2)",
    "SELECT count(*) FROM app.t WHERE ts < $1",
    "EXECUTE AS USER 'bob' (SELECT * FROM app.t WHERE id = $1)",
]
USERS = st.none() | st.sampled_from(["alice", "bob", "root", "ALICE", " alice", "a" * 200]) \
    | st.text(max_size=4) | st.integers() | st.binary(max_size=4)


@pytest.fixture(scope="module")
def fuzz_db():
    engine = make_engine()
    yield engine
    engine.close()


def _placeholders(sql: str) -> int:
    return sum(f"${i}" in sql for i in range(1, 5))


@FUZZ
@given(st.sampled_from(TEMPLATES), st.data(), st.sampled_from(["alice", "bob", None]))
def test_fuzz_execute_values(fuzz_db: kalam_engine.Engine, sql: str, data: st.DataObject,
                             user: str | None) -> None:
    params = data.draw(st.lists(VALUES, min_size=_placeholders(sql),
                                max_size=_placeholders(sql)))
    before = rows(fuzz_db)
    try:
        fuzz_db.execute(sql, user=user, params=params)
    except KalamError:
        assert rows(fuzz_db).equals(before)  # a refused statement changes nothing


@FUZZ
@given(st.sampled_from([*TEMPLATES, "SELECT 1"]) | st.text(max_size=30)
       | st.sampled_from([b"SELECT 1", 5, None, "", ";", "SELECT 1;;SELECT 2"]),
       USERS, st.none() | st.lists(VALUES, max_size=4) | VALUES)
def test_fuzz_execute_arguments(fuzz_db: kalam_engine.Engine, sql: object, user: object,
                                params: object) -> None:
    with contextlib.suppress(KalamError):
        fuzz_db.execute(sql, user=user, params=params)  # type: ignore[arg-type]


_ARROW_TYPES = [pa.int8(), pa.int64(), pa.uint64(), pa.float32(), pa.float64(), pa.string(),
                pa.large_string(), pa.binary(), pa.bool_(), pa.timestamp("ns", tz="Asia/Tokyo"),
                pa.timestamp("s"), pa.date32(), pa.time64("us"), pa.decimal128(20, 4),
                pa.duration("s"), pa.list_(pa.float64()), pa.struct([("a", pa.int32())]),
                pa.null()]
_COLUMNS = ["id", "body", "f", "ts", "d", "b", "e", "u", "j", "day", "tm", "s", "extra", "ID",
            "_seq", "owner", ""]


@st.composite
def arrow_tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 3))
    arrays, names = [], []
    for name, kind in draw(st.lists(st.tuples(st.sampled_from(_COLUMNS),
                                              st.sampled_from(_ARROW_TYPES)), max_size=5)):
        try:
            array = pa.array(draw(st.lists(VALUES, min_size=n, max_size=n)), kind)
        except Exception:  # values that do not fit the type: a column of ints instead
            array = pa.array(draw(st.lists(st.integers(-5, 2 ** 63 - 1), min_size=n,
                                           max_size=n)), pa.int64())
        arrays.append(array)
        names.append(name)
    if not arrays:
        return pa.table({"id": pa.array([], pa.int64())})
    return pa.Table.from_arrays(arrays, names=names)


@FUZZ
@given(arrow_tables(), st.sampled_from(["app.t", "app.s", "app.ev", "t", "app.nope", "x.y.z",
                                        "", "system.users", "APP.T"]),
       USERS, st.sampled_from([None, "owner", "id", "body", "nope"]), st.booleans())
def test_fuzz_insert_arrow(fuzz_db: kalam_engine.Engine, data: pa.Table, table: str,
                           user: object, user_column: str | None, as_batch: bool) -> None:
    if as_batch and data.num_rows:
        data = data.combine_chunks().to_batches()[0]
    with contextlib.suppress(KalamError):
        fuzz_db.insert_arrow(table, data, user=user, user_column=user_column)  # type: ignore


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 3))
    frame = pd.DataFrame(index=range(n))
    for name in draw(st.lists(st.sampled_from(["id", "body", "f", "ts", "owner", 0, 1.5,
                                               "a b", "_seq", "ID"]), max_size=4)):
        kind = draw(st.sampled_from(["int", "float", "object", "string", "category", "tz",
                                     "bool", "Int64"]))
        if kind == "int":
            col = pd.Series(draw(st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), min_size=n,
                                          max_size=n)), dtype="int64")
        elif kind == "float":
            col = pd.Series(draw(st.lists(st.floats(), min_size=n, max_size=n)), dtype=float)
        elif kind == "object":
            col = pd.Series(draw(st.lists(VALUES, min_size=n, max_size=n)), dtype=object)
        elif kind == "string":
            col = pd.Series(draw(st.lists(st.text(max_size=4), min_size=n, max_size=n)),
                            dtype="string")
        elif kind == "category":
            col = pd.Series(draw(st.lists(st.sampled_from("ab"), min_size=n, max_size=n)),
                            dtype="category")
        elif kind == "tz":
            col = pd.Series(pd.date_range("2020", periods=n, tz="Europe/Paris"))
        elif kind == "bool":
            col = pd.Series([True] * n)
        else:
            col = pd.Series([1, None, 3][:n], dtype="Int64")
        frame.insert(len(frame.columns), name, col.array, allow_duplicates=True)
    return frame


@FUZZ
@given(frames(), st.sampled_from(["app.t", "app.s", "app.ev", "app.fresh", "t", "app.nope"]),
       USERS, st.sampled_from([None, "owner", "id", 0]), st.booleans(),
       st.sampled_from([None, "id", "newid", "a b"]),
       st.sampled_from(["user", "shared", "stream", "bad"]), st.sampled_from([None, 60, -1]))
def test_fuzz_accessor(fuzz_db: kalam_engine.Engine, frame: pd.DataFrame, table: str,
                       user: object, user_column: object, insert: bool, pk: str | None,
                       table_type: str, ttl: int | None) -> None:
    try:
        if insert and user_column is not None:
            frame.kalam.insert(table, user_column=user_column, db=fuzz_db)
        elif insert:
            frame.kalam.insert(table, user=user, db=fuzz_db)
        else:
            frame.kalam.create_table(table, table_type=table_type, primary_key=pk,
                                     user_column=user_column, ttl_seconds=ttl,
                                     if_not_exists=True, db=fuzz_db)
            if table == "app.fresh":
                fuzz_db.execute("DROP TABLE IF EXISTS app.fresh")
    except KalamError:
        pass
