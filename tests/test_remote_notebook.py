"""df.kalam and the inspector against a real KalamDB-API server (kalam serve's app on a
pre-bound 127.0.0.1 socket), in a real IPython shell, compared with the embedded engine."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as hs
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import kalam_engine
from kalam_engine.auth import passwords
from kalam_engine.model.errors import (
    ConstraintError,
    InvalidParameterError,
    KalamError,
    TableNotFoundError,
    UnsupportedError,
)
from kalam_engine.server.app import ServerConfig, create_app
from kalam_jupyter.backend import KalamBackend
from kalam_jupyter.inspector import NOT_REPORTED, Inspector
from kalam_jupyter.magics import KalamMagics
from kalam_jupyter.remote import RemoteClient
from kalam_jupyter.remote_insert import MAX_PARAMS, batches, insert_sql

SECRET = "notebook-remote-secret-" + "z" * 40
PASSWORD = "correct-horse"
TYPES_DDL = ("CREATE SHARED TABLE app.kinds (id BIGINT PRIMARY KEY, n INT NOT NULL, "
             "small SMALLINT, big BIGINT, r REAL, d DOUBLE, ok BOOLEAN, label TEXT, "
             "ts TIMESTAMP, at DATETIME, day DATE, price DECIMAL(10, 2), doc JSON, "
             "uid UUID, vec EMBEDDING(3), note TEXT NOT NULL DEFAULT 'none', "
             "auto BIGINT DEFAULT SNOWFLAKE_ID()) WITH (ACCESS_LEVEL='PUBLIC')")


class Served:
    def __init__(self, db: kalam_engine.Engine, url: str) -> None:
        self.db = db
        self.url = url

    def client(self, user: str) -> RemoteClient:
        return RemoteClient(self.url, user=user, password=PASSWORD)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    old_cost = passwords.BCRYPT_COST
    passwords.BCRYPT_COST = 4
    db = kalam_engine.connect(tmp_path_factory.mktemp("served"))
    for user, role in (("alice", "user"), ("dora", "dba")):
        db.execute(f"CREATE USER {user} WITH PASSWORD '{PASSWORD}' ROLE {role}")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, "
               "n BIGINT, at TIMESTAMP, score DOUBLE)")
    db.execute(TYPES_DDL)
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn does for its own
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db, ServerConfig(jwt_secret=SECRET)),
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield Served(db, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(30)
        db.close()
        passwords.BCRYPT_COST = old_cost


@pytest.fixture
def magics(shell: InteractiveShell) -> Iterator[KalamMagics]:
    m: KalamMagics = shell.magics_manager.registry["KalamMagics"]
    m.settings.default_user = None
    yield m
    m.close()
    m.connect(":memory:")


def run(shell: InteractiveShell, code: str) -> tuple[Any, str, BaseException | None]:
    with capture_output() as cap:
        result = shell.run_cell(code, store_history=False)
    shown = "\n".join(o.data.get("text/plain", "") for o in cap.outputs)
    return result.result, "\n".join([cap.stdout, cap.stderr, shown]), \
        result.error_in_exec or result.error_before_exec


def count(served: Served, table: str, user: str | None = None) -> int:
    return int(served.db.execute(f"SELECT count(*) AS c FROM {table}", user=user)
               .to_pandas()["c"][0])


# --- one surface for both backends ------------------------------------------------------
def test_engine_and_server_client_both_satisfy_the_backend_protocol(served: Served) -> None:
    client = served.client("alice")
    try:
        assert isinstance(served.db, KalamBackend) and isinstance(client, KalamBackend)
        for sql in ("SELECT 1", "USE app; SELECT 1", "INSERT INTO app.notes (id) VALUES (1)",
                    "SHOW TABLES; DESCRIBE TABLE app.notes", "SELEC nothing"):
            assert client.classify(sql) == served.db.classify(sql)
        assert served.db.classify("USE App; SELECT 1").namespace == "app"
        assert not served.db.classify("USE app").read_only
        assert served.db.classify("SELECT 1").read_only
    finally:
        client.close()


def test_table_definition_over_the_api_matches_the_engines(served: Served) -> None:
    client = served.client("alice")
    try:
        for table in ("app.kinds", "app.notes"):
            local, remote = served.db.table_definition(table), client.table_definition(table)
            assert remote.table_id == local.table_id and remote.table_type == local.table_type
            assert [(c.name, c.kalam_type, c.nullable, c.primary_key, c.default)
                    for c in remote.columns] == \
                [(c.name, c.kalam_type, c.nullable, c.primary_key, c.default)
                 for c in local.columns]
            assert [c.arrow_field().type for c in remote.columns] == \
                [c.arrow_field().type for c in local.columns]
        with pytest.raises(TableNotFoundError):
            client.table_definition("app.nope")
        with pytest.raises(InvalidParameterError):
            client.table_definition("app.notes; DROP TABLE app.notes")
    finally:
        client.close()


# --- df.kalam over the API ----------------------------------------------------------------
def test_batches_respect_the_servers_parameter_limit() -> None:
    rows = [[i, f"r{i}", None] for i in range(100)]
    sizes = [len(b) for b in batches(rows, 3)]
    assert sizes == [16] * 6 + [4] and sum(sizes) == 100
    assert all(n * 3 <= MAX_PARAMS for n in sizes)
    assert insert_sql("app.t", ["a", "b"], 2) == \
        "INSERT INTO app.t (a, b) VALUES ($1, $2), ($3, $4)"


@settings(max_examples=200, deadline=None)
@given(hs.integers(1, MAX_PARAMS), hs.lists(hs.text(max_size=40), max_size=300))
def test_batches_keep_every_row_in_order_within_the_limits(width: int,
                                                            cells: list[str]) -> None:
    rows = [[cell] * width for cell in cells]
    got = list(batches(rows, width))
    assert [row for batch in got for row in batch] == rows
    assert all(1 <= len(batch) * width <= MAX_PARAMS for batch in got)
    for batch in got:
        sql = insert_sql("app.t", [f"c{i}" for i in range(width)], len(batch))
        assert sql.count("$") == len(batch) * width
        assert f"${len(batch) * width})" in sql and kalam_engine.Engine.classify(sql).kind \
            == "write"


def test_df_kalam_insert_loads_a_frame_over_the_api(shell: InteractiveShell,
                                                     magics: KalamMagics,
                                                     served: Served) -> None:
    _, out, err = run(shell, f"%kalam --connect {served.url} --user alice --password {PASSWORD}")
    assert err is None, out
    big = 2**62 + 5
    frame = pd.DataFrame({
        "id": np.arange(1, 61, dtype="int64"),
        "body": [f"note {i} ' ; -- $1" for i in range(60)],  # never pasted into the SQL
        "n": [big - i for i in range(60)],
        "at": pd.date_range("2024-01-01 10:00:00.123456", periods=60, freq="h"),
        "score": [float(i) / 4 if i % 7 else np.nan for i in range(60)],
    })
    shell.user_ns["frame"] = frame
    inserted, out, err = run(shell, "frame.kalam.insert('app.notes')")
    assert err is None, out
    assert inserted == 60  # 60 rows x 5 columns: 6 requests of at most 50 parameters
    back = served.db.execute("SELECT id, body, n, at, score FROM app.notes ORDER BY id",
                             user="alice").to_pandas()
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["body"].tolist() == frame["body"].tolist()
    assert back["n"].tolist() == frame["n"].tolist()
    assert back["at"].tolist() == frame["at"].tolist()
    assert back["score"].isna().tolist() == frame["score"].isna().tolist()
    assert back["score"].dropna().tolist() == frame["score"].dropna().tolist()
    assert count(served, "app.notes", "dora") == 0  # alice's partition only


def test_remote_insert_checks_the_frame_as_the_embedded_engine_does(
        served: Served) -> None:
    client = served.client("alice")
    local = kalam_engine.connect(":memory:")
    local.execute("CREATE NAMESPACE app")
    local.execute(TYPES_DDL)
    bad = [
        pd.DataFrame({"id": [1], "small": [1]}),  # n is NOT NULL without a default
        pd.DataFrame({"id": [1, 2], "n": [1, None]}),  # NULL in a NOT NULL column
        pd.DataFrame({"id": [1], "n": [1], "small": [70000]}),  # out of SMALLINT's range
        pd.DataFrame({"id": [1], "n": [1], "label": [5]}),  # a number for TEXT
        pd.DataFrame({"id": [1], "n": [1], "lable": ["x"]}),  # a misspelt column
    ]
    try:
        before = count(served, "app.kinds")
        for frame in bad:
            with pytest.raises(InvalidParameterError) as embedded:
                frame.kalam.insert("app.kinds", db=local)
            with pytest.raises(InvalidParameterError) as remote:
                frame.kalam.insert("app.kinds", db=client)
            assert str(remote.value) == str(embedded.value)
        with pytest.raises(TableNotFoundError, match=r"did you mean app\.kinds"):
            pd.DataFrame({"id": [1]}).kalam.insert("app.kind", db=client)
        assert count(served, "app.kinds") == before  # nothing was sent
    finally:
        client.close()
        local.close()


def test_remote_insert_writes_every_type_the_api_carries(served: Served) -> None:
    client = served.client("dora")
    frame = pd.DataFrame({
        "id": [101, 102], "n": [1, 2], "small": [3, None], "big": [2**40, -1],
        "r": [1.5, None], "d": [2.25, -0.5], "ok": [True, False], "label": ["a", None],
        "ts": pd.to_datetime(["2024-05-01 01:02:03.000004", "2024-05-02 00:00:00.000000"]),
        "at": pd.to_datetime(["2024-05-01 01:02:03", "2024-05-02 00:00:00"], utc=True),
        "day": [dt.date(2024, 5, 1), dt.date(2024, 5, 2)],
        "price": ["12.34", "0.5"], "doc": ['{"a": 1}', "[]"],
        "uid": ["0190a0b0-0000-7000-8000-000000000001", None],
    })
    try:
        assert frame.kalam.insert("app.kinds", db=client) == 2
        local = kalam_engine.connect(":memory:")
        local.execute("CREATE NAMESPACE app")
        local.execute(TYPES_DDL)
        assert frame.kalam.insert("app.kinds", db=local) == 2
        columns = [c for c in frame.columns] + ["note"]
        query = f"SELECT {', '.join(columns)} FROM app.kinds WHERE id > 100 ORDER BY id"
        assert served.db.execute(query).to_pandas().equals(local.execute(query).to_pandas())
        local.close()
    finally:
        client.close()


def test_a_failing_later_batch_says_how_many_rows_landed(served: Served) -> None:
    client = served.client("alice")
    try:
        client.execute("INSERT INTO app.notes (id, body) VALUES (5030, 'already here')")
        frame = pd.DataFrame({"id": range(5000, 5040), "body": ["x"] * 40})  # 25 rows a batch
        with pytest.raises(KalamError) as failed:
            frame.kalam.insert("app.notes", db=client)
        assert failed.value.code == ConstraintError.code
        assert "25 of 40 rows" in str(failed.value) and "df.iloc[25:]" in str(failed.value)
        ids = served.db.execute("SELECT id FROM app.notes WHERE id >= 5000 AND id < 5040 "
                                "ORDER BY id", user="alice").to_pandas()["id"].tolist()
        assert ids == [*range(5000, 5025), 5030]  # the first batch, the second not at all
    finally:
        client.close()


def test_what_the_api_cannot_carry_is_refused_before_any_request(served: Served) -> None:
    client = served.client("dora")
    try:
        before = count(served, "app.kinds")
        vectors = pd.DataFrame({"id": [900], "n": [1], "vec": [[0.1, 0.2, 0.3]]})
        with pytest.raises(UnsupportedError, match="vec"):
            vectors.kalam.insert("app.kinds", db=client)
        huge = pd.DataFrame({"id": [901], "n": [1], "label": ["x" * (600 * 1024)]})
        with pytest.raises(InvalidParameterError, match="524288 bytes"):
            huge.kalam.insert("app.kinds", db=client)
        routed = pd.DataFrame({"id": [1], "body": ["b"], "owner": ["alice"]})
        with pytest.raises(UnsupportedError, match="user_column"):
            routed.kalam.insert("app.notes", user_column="owner", db=client)
        with pytest.raises(UnsupportedError, match="as dora"):
            routed[["id", "body"]].kalam.insert("app.notes", user="alice", db=client)
        assert count(served, "app.kinds") == before
    finally:
        client.close()


def test_create_table_from_a_frame_over_the_api(served: Served) -> None:
    client = served.client("dora")
    try:
        frame = pd.DataFrame({"city": ["Oslo", "Rome"], "temp": [3.5, 18.0]})
        frame.kalam.create_table("app.weather", table_type="shared", primary_key="id",
                                 db=client)
        assert frame.kalam.insert("app.weather", db=client) == 2
        back = served.db.execute("SELECT city, temp FROM app.weather ORDER BY city").to_pandas()
        assert back.to_dict("list") == {"city": ["Oslo", "Rome"], "temp": [3.5, 18.0]}
    finally:
        client.execute("DROP TABLE app.weather")
        client.close()


# --- the inspector over the API -----------------------------------------------------------
def test_inspector_shows_the_servers_figures_to_a_dba(shell: InteractiveShell,
                                                       magics: KalamMagics,
                                                       served: Served) -> None:
    _, out, err = run(shell, f"%kalam --connect {served.url} --user dora --password {PASSWORD}")
    assert err is None, out
    _, out, err = run(shell, "%kalam inspect")
    assert err is None, out
    inspector: Inspector = magics.inspectors[-1]
    figures = inspector.figures
    stats, sizes = served.db.cache.stats(), served.db.data_sizes()
    assert figures["cache_capacity"] == stats.capacity
    assert figures["providers_built"] is not None and figures["providers_built"] > 0
    assert figures["hot_rows"] == sizes["hot_rows"] and figures["hot_rows"] > 0
    assert figures["cold_bytes"] == sizes["cold_bytes"]
    assert figures["tables"] == len(served.db.table_stats())
    assert figures["users"] is None and figures["per_user_design"] is None
    text = inspector.text()
    assert f"Cache capacity: {stats.capacity:,}" in text
    assert f"Users: {NOT_REPORTED}" in text and "app.notes" in text
    assert "not reported by this server" in text.splitlines()[-1]
    names = {t["table"]: t["type"] for t in figures["per_table"]}
    assert names["app.notes"] == "USER" and names["app.kinds"] == "SHARED"
    # the magics' completion reads the server's catalog too
    snapshot = magics._snapshot(magics.engine())
    assert snapshot is not None and snapshot["app"]["notes"][:2] == ["id", "body"]


def test_inspector_says_what_a_plain_user_is_not_shown(served: Served) -> None:
    client = served.client("alice")
    try:
        inspector = Inspector(client)
        figures = inspector.figures
        assert inspector.error is None
        assert figures["cache_entries"] is None and figures["hot_rows"] is None
        assert "PERMISSION_DENIED" in figures["note"]
        assert "app.notes" in {t["table"] for t in figures["per_table"]}  # SHOW TABLES
        text = inspector.text()
        assert f"Cache entries: {NOT_REPORTED}" in text and "PERMISSION_DENIED" in text
        assert client.catalog_snapshot()["app"]["notes"] == []  # names only below dba
    finally:
        client.close()
