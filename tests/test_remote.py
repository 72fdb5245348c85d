"""The magics against a real `kalam serve` subprocess: SQL over HTTP, live tables over the
WebSocket, token refresh, and which requests are retried (a real little HTTP server plays a
cluster node that answers 503)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pandas as pd
import pytest
import uvicorn
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import kalam_engine
from kalam_engine.model.errors import KalamError
from kalam_jupyter.live_view import LiveView
from kalam_jupyter.magics import KalamMagics
from kalam_jupyter.remote import RemoteClient

ROOT = Path(__file__).resolve().parents[1]
SECRET = "remote-test-secret-" + "y" * 40
PASSWORD = "correct-horse"


def _free_port() -> int:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn does for its own
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("served")
    db = kalam_engine.connect(data)
    db.execute(f"ALTER USER root SET PASSWORD '{PASSWORD}'")
    for user in ("alice", "bob"):
        db.execute(f"CREATE USER {user} WITH PASSWORD '{PASSWORD}' ROLE user")
    db.execute("CREATE NAMESPACE chat")
    db.execute("CREATE USER TABLE chat.messages (id BIGINT PRIMARY KEY, body TEXT, n BIGINT)")
    db.close()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KALAM_JWT_SECRET": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "kalam_engine.server.cli", "serve",
                             str(data), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "kalam serve exited"
            assert time.monotonic() < deadline, "kalam serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def magics(shell: InteractiveShell, server: str) -> Iterator[KalamMagics]:
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


def test_sql_params_and_int64_through_the_magics(shell: InteractiveShell,
                                                   magics: KalamMagics, server: str) -> None:
    _, out, err = run(shell, f"%kalam --connect {server} --user alice --password {PASSWORD}")
    assert err is None and f"Connected to {server} as alice" in out
    big = 2**62 + 7
    shell.user_ns.update(big=big, body="hi from alice")
    _, out, err = run(shell, "%kalam INSERT INTO chat.messages (id, body, n) "
                             "VALUES (1, :body, :big)")
    assert err is None, out
    frame, out, err = run(shell, "%kalam SELECT id, body, n FROM chat.messages")
    assert err is None, out
    assert frame["n"].tolist() == [big] and frame["n"].dtype == "int64"
    assert frame["body"].tolist() == ["hi from alice"]
    frame, out, err = run(shell, "%%kalam\nUSE chat;\nSELECT body FROM messages")
    assert err is None and frame["body"].tolist() == ["hi from alice"], out
    _, out, err = run(shell, "%kalam -o mine SELECT count(*) AS c FROM chat.messages")
    assert err is None and isinstance(shell.user_ns["mine"], pd.DataFrame)
    assert shell.user_ns["mine"]["c"].tolist() == [1]
    # bob, on his own connection, sees none of alice's rows (USER table isolation)
    bob = RemoteClient(server, user="bob", password=PASSWORD)
    try:
        assert bob.execute("SELECT * FROM chat.messages").row_count == 0
    finally:
        bob.close()


def test_errors_are_one_line_with_the_servers_code(shell: InteractiveShell,
                                                    magics: KalamMagics, server: str) -> None:
    run(shell, f"%kalam --connect {server} --user alice --password {PASSWORD}")
    _, out, err = run(shell, "%kalam SELECT * FROM chat.nope")
    assert err is not None and "TABLE_NOT_FOUND" in out and "Traceback" not in out
    _, out, err = run(shell, "%kalam --user bob SELECT 1")
    assert err is not None and "UNSUPPORTED" in out and "--connect" in out
    _, out, err = run(shell, f"%kalam --connect {server} --user alice --password wrong-one")
    assert err is not None and "PERMISSION_DENIED" in out


def test_token_from_environment(shell: InteractiveShell, magics: KalamMagics, server: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    token = RemoteClient(server, user="bob", password=PASSWORD).access_token
    monkeypatch.setenv("KALAM_TOKEN", token)
    _, out, err = run(shell, f"%kalam --connect {server}")
    assert err is None and "as bob" in out, out
    frame, out, err = run(shell, "%kalam SELECT current_user() AS who")
    assert err is None and frame["who"].tolist() == ["bob"], out


def test_expired_access_token_is_refreshed(server: str) -> None:
    client = RemoteClient(server, user="alice", password=PASSWORD)
    try:
        now = int(time.time())
        client.access_token = jwt.encode(
            {"sub": "alice", "iss": "kalamdb", "iat": now - 100, "exp": now - 50,
             "role": "user", "token_type": "access"}, SECRET, algorithm="HS256")
        stale = client.access_token
        assert client.execute("SELECT 1 AS one").to_pandas()["one"].tolist() == [1]
        assert client.access_token != stale
        client.access_token = "not-a-token"  # rejected with 401: refresh, then run it
        assert client.execute("SELECT 2 AS two").row_count == 1
    finally:
        client.close()


def wait_for(condition: Any, limit: float = 30) -> None:
    """Poll until ``condition()`` (the frame is replaced after each applied change)."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_live_table_follows_remote_writes(server: str) -> None:
    alice = RemoteClient(server, user="alice", password=PASSWORD)
    bob = RemoteClient(server, user="bob", password=PASSWORD)
    try:
        alice.execute("INSERT INTO chat.messages (id, body, n) VALUES (10, 'before', 1)")
        view = LiveView(alice, "SELECT id, body FROM chat.messages WHERE id >= 10",
                        use_widgets=False)
        try:
            assert view.key == "id"
            assert view.frame["body"].tolist() == ["before"]
            bob.execute("INSERT INTO chat.messages (id, body, n) VALUES (11, 'bob only', 1)")
            alice.execute("INSERT INTO chat.messages (id, body, n) VALUES (12, 'new', 2)")
            alice.execute("UPDATE chat.messages SET body = 'edited' WHERE id = 10")
            wait_for(lambda: view.changes >= 2 and len(view.frame) == 2
                     and "new" in view.frame["body"].tolist()
                     and "before" not in view.frame["body"].tolist())
            frame = view.frame.sort_values("id")
            assert frame["id"].tolist() == [10, 12]  # bob's row never reaches alice
            assert frame["body"].tolist() == ["edited", "new"]
            alice.execute("DELETE FROM chat.messages WHERE id = 12")
            wait_for(lambda: view.changes >= 3 and len(view.frame) == 1)
            assert view.frame["id"].tolist() == [10]
        finally:
            view.stop()
        assert view.status == "stopped"
    finally:
        alice.close()
        bob.close()


def test_live_subscription_outlives_the_idle_timeout(server: str) -> None:
    """The server closes a WebSocket quiet for 10 s; the subscription pings it."""
    alice = RemoteClient(server, user="alice", password=PASSWORD)
    try:
        sub = alice.subscribe("SELECT id, body FROM chat.messages WHERE id = 99")
        try:
            while sub.next_event(timeout=0) is not None:
                pass
            assert sub.next_event(timeout=11) is None  # nothing, and no error
            alice.execute("INSERT INTO chat.messages (id, body, n) VALUES (99, 'late', 1)")
            event = sub.next_event(timeout=30)
            assert event is not None and event.type == "insert"
            assert event.rows.to_pylist()[0]["id"] == 99
        finally:
            sub.close()
        assert sub.next_event(timeout=0) is None
    finally:
        alice.close()


def test_live_query_errors_are_kalam_errors(server: str) -> None:
    alice = RemoteClient(server, user="alice", password=PASSWORD)
    try:
        with pytest.raises(KalamError) as info:
            alice.subscribe("SELECT * FROM chat.nope")
        assert info.value.code == "NOT_FOUND"  # the WebSocket protocol's code
    finally:
        alice.close()


# --- retries: a real HTTP node that answers 503 and counts requests ---------------------------
class Node:
    def __init__(self, code: str, leader: str | None = None) -> None:
        self.requests = 0
        self.code = code
        self.leader = leader

        async def sql(request: Request) -> JSONResponse:
            self.requests += 1
            message = "Cluster busy" if leader is None else \
                f"Not leader for shard. Leader: {leader}"
            return JSONResponse({"status": "error", "results": [], "took": 0.0,
                                 "error": {"code": code, "message": message}}, status_code=503)

        async def login(request: Request) -> JSONResponse:
            return JSONResponse({"access_token": "x.e30.x", "refresh_token": "r",
                                 "user": {"id": "alice"}})

        app = Starlette(routes=[Route("/v1/api/sql", sql, methods=["POST"]),
                                Route("/v1/api/auth/login", login, methods=["POST"])])
        sock = socket.socket()
        # as uvicorn does for its own: else each response waits for a 40 ms delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.mark.parametrize("code", ["FORWARD_FAILED", "CLUSTER_UNAVAILABLE"])
def test_reads_are_retried_and_writes_are_not(code: str) -> None:
    node = Node(code)
    try:
        client = RemoteClient(node.url, user="alice", password="pw", retries=3, backoff=0)
        with pytest.raises(KalamError) as info:
            client.execute("SELECT 1")
        assert info.value.code == code and node.requests == 4
        node.requests = 0
        with pytest.raises(KalamError):
            client.execute("INSERT INTO chat.messages (id) VALUES (1)")
        assert node.requests == 1
    finally:
        node.stop()


def test_not_leader_read_follows_the_leader_hint(server: str) -> None:
    node = Node("NOT_LEADER", leader=server)
    try:
        client = RemoteClient(server, user="alice", password=PASSWORD, backoff=0)
        client.url = node.url  # a follower that points at the real server
        assert client.execute("SELECT 41 + 1 AS x").to_pandas()["x"].tolist() == [42]
        assert node.requests == 1
        with pytest.raises(KalamError) as info:
            client.execute("INSERT INTO chat.messages (id) VALUES (5)")
        assert info.value.code == "NOT_LEADER" and node.requests == 2
    finally:
        node.stop()


def test_reads_are_retried_on_connection_errors() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    client = RemoteClient(url, token="x.e30.x", retries=2, backoff=0)
    with pytest.raises(KalamError) as info:
        client.execute("SELECT 1")
    assert info.value.code == "CONNECTION_FAILED"
    with pytest.raises(KalamError, match="not retried"):
        client.execute("DELETE FROM chat.messages WHERE id = 1")
