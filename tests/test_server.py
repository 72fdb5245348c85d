"""`kalam serve`: KalamDB's HTTP and WebSocket API over a real engine, a real uvicorn server
on 127.0.0.1 and real clients (httpx, websockets)."""

from __future__ import annotations

import gzip
import json
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
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import kalam_engine
from kalam_engine.auth import passwords
from kalam_engine.model.errors import DataDirectoryLockedError
from kalam_engine.server import ServerConfig, create_app, tokens

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct-horse"


class Running:
    def __init__(self, db: kalam_engine.Engine, port: int) -> None:
        self.db = db
        self.base = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/v1/ws"
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def login(self, user: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.http.post("/v1/api/auth/login", json={"user": user, "password": password})
        assert response.status_code == 200, response.text
        return response.json()

    def sql(self, token: str | None, body: Any, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(body, str):
            body = {"sql": body}
        return self.http.post("/v1/api/sql", json=body, headers=headers, **kw)


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn does for its own
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=2 << 20,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    return server, thread, port


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    old_cost = passwords.BCRYPT_COST
    passwords.BCRYPT_COST = 4
    db = kalam_engine.connect(tmp_path_factory.mktemp("served"))
    for user, role in (("alice", "user"), ("bob", "user"), ("dora", "dba")):
        db.execute(f"CREATE USER {user} WITH PASSWORD '{PASSWORD}' ROLE {role}")
    db.execute("CREATE NAMESPACE app")
    db.execute("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, n INT)")
    # these tests log in more than KalamDB's 20 times a second per IP (tested on its own in
    # test_server_security.py)
    config = ServerConfig(jwt_secret=SECRET, auth_requests_per_ip_per_second=0)
    server, thread, port = _serve(create_app(db, config))
    running = Running(db, port)
    try:
        yield running
    finally:
        running.http.close()
        server.should_exit = True
        thread.join(30)
        db.close()
        passwords.BCRYPT_COST = old_cost


# --- health and login
def test_health_answers_on_localhost(srv: Running) -> None:
    for path in ("/health", "/v1/api/healthcheck"):
        body = srv.http.get(path).json()
        assert body["status"] == "healthy" and body["api_version"] == "v1"
    assert srv.http.get("/v1/api/cluster/health").json()["is_cluster_mode"] is False


def test_login_issues_hs256_tokens_for_the_stored_role(srv: Running) -> None:
    body = srv.login("dora")
    assert body["user"]["id"] == "dora" and body["user"]["role"] == "dba"
    assert body["admin_ui_access"] is True
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], issuer="kalamdb")
    assert claims["sub"] == "dora" and claims["role"] == "dba"
    assert claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    refresh = jwt.decode(body["refresh_token"], SECRET, algorithms=["HS256"])
    assert refresh["token_type"] == "refresh" and refresh["exp"] - refresh["iat"] == 7 * 86400
    alias = srv.http.post("/v1/api/auth/login",
                          json={"username": "alice", "password": PASSWORD})
    assert alias.status_code == 200 and alias.json()["admin_ui_access"] is False


@pytest.mark.parametrize("body, status", [
    ({"user": "alice", "password": "wrong-password"}, 401),
    ({"user": "nobody", "password": PASSWORD}, 401),
    ({"user": "alice", "password": PASSWORD, "extra": 1}, 400),
    ({"user": "alice"}, 400),
    ({"user": "root", "password": "anything-at-all"}, 428),  # root has no password yet
])
def test_login_failures(srv: Running, body: dict[str, Any], status: int) -> None:
    response = srv.http.post("/v1/api/auth/login", json=body)
    assert response.status_code == status
    assert set(response.json()) == {"error", "message"}
    assert "access_token" not in response.text


def test_refresh_gives_new_tokens_and_needs_a_refresh_token(srv: Running) -> None:
    body = srv.login("alice")
    fresh = srv.http.post("/v1/api/auth/refresh",
                          headers={"Authorization": f"Bearer {body['refresh_token']}"})
    assert fresh.status_code == 200
    again = srv.sql(fresh.json()["access_token"], "SELECT 1 AS one")
    assert again.status_code == 200, again.text
    wrong = srv.http.post("/v1/api/auth/refresh",
                          headers={"Authorization": f"Bearer {body['access_token']}"})
    assert wrong.status_code == 401


# --- authentication of /sql
def _token(**claims: Any) -> str:
    now = int(time.time())
    base = {"sub": "alice", "iss": "kalamdb", "iat": now, "exp": now + 600, "email": None,
            "role": "user", "token_type": "access"}
    base.update(claims)
    secret = base.pop("secret", SECRET)
    return jwt.encode(base, secret, algorithm="HS256")


@pytest.mark.parametrize("header, code", [
    (None, "MISSING_AUTHORIZATION"),
    ("Basic YWxpY2U6Y29ycmVjdC1ob3JzZQ==", "INVALID_CREDENTIALS"),
    ("Bearer not-a-jwt", "INVALID_CREDENTIALS"),
    (f"Bearer {_token(secret='another-secret-' + 'y' * 40)}", "INVALID_CREDENTIALS"),
    (f"Bearer {_token(exp=int(time.time()) - 3600)}", "TOKEN_EXPIRED"),
    (f"Bearer {_token(token_type='refresh')}", "INVALID_CREDENTIALS"),
    (f"Bearer {_token(role='dba')}", "INVALID_CREDENTIALS"),  # not alice's stored role
    (f"Bearer {_token(sub='ghost')}", "INVALID_CREDENTIALS"),  # no such user
    (f"Bearer {jwt.encode({'sub': 'alice'}, SECRET)}", "INVALID_CREDENTIALS"),  # no claims
])
def test_bad_tokens_get_401(srv: Running, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = srv.http.post("/v1/api/sql", json={"sql": "SELECT 1"}, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error" and body["error"]["code"] == code


def test_token_of_an_expired_login_within_leeway_still_works(srv: Running) -> None:
    token = _token(exp=int(time.time()) - 5)  # inside the 60 s leeway
    assert srv.sql(token, "SELECT 1 AS one").status_code == 200


def test_alg_none_token_is_refused(srv: Running) -> None:
    token = jwt.encode({"sub": "dora", "iss": "kalamdb", "iat": 0, "exp": 2**40,
                        "role": "dba", "token_type": "access"}, None, algorithm="none")
    assert srv.sql(token, "SELECT 1").status_code == 401


# --- POST /v1/api/sql
def test_rows_shapes_and_isolation_between_users(srv: Running) -> None:
    alice = srv.login("alice")["access_token"]
    bob = srv.login("bob")["access_token"]
    ok = srv.sql(alice, {"sql": "INSERT INTO app.notes (id, body, n) VALUES ($1, $2, $3)",
                         "params": [9007199254740993, "alice's secret", 7]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["results"] == [{"row_count": 1, "message": "Inserted 1 row(s)",
                                     "as_user": "alice"}]
    body = srv.sql(alice, "SELECT id, body, n FROM app.notes WHERE id = 9007199254740993").json()
    result = body["results"][0]
    assert body["status"] == "success" and isinstance(body["took"], float)
    assert result["rows"] == [["9007199254740993", "alice's secret", 7]]  # Int64 as a string
    assert [(c["name"], c["data_type"], c["index"]) for c in result["schema"]] == [
        ("id", "BigInt", 0), ("body", "Text", 1), ("n", "Int", 2)]
    assert result["as_user"] == "alice"
    theirs = srv.sql(bob, "SELECT * FROM app.notes").json()["results"][0]
    assert theirs["row_count"] == 0 and "alice's secret" not in json.dumps(theirs)


def test_namespace_id_applies_to_unqualified_names(srv: Running) -> None:
    alice = srv.login("alice")["access_token"]
    response = srv.sql(alice, {"sql": "SELECT COUNT(*) AS c FROM notes", "namespace_id": "app"})
    assert response.status_code == 200, response.text
    assert srv.sql(alice, "SELECT COUNT(*) FROM notes").status_code == 400


def test_batch_puts_dml_merged_at_the_end(srv: Running) -> None:
    bob = srv.login("bob")["access_token"]
    body = srv.sql(bob, "INSERT INTO app.notes (id, body) VALUES (1, 'a'); "
                        "SELECT 1 AS one; INSERT INTO app.notes (id, body) VALUES (2, 'b'), "
                        "(3, 'c'); UPDATE app.notes SET n = 1 WHERE id = 1").json()
    results = body["results"]
    assert results[0]["rows"] == [["1"]]
    assert [r.get("message") for r in results[1:]] == ["Inserted 3 row(s)", "Updated 1 row(s)"]


@pytest.mark.parametrize("body, code", [
    ({"sql": "SELEC nonsense"}, "INVALID_SQL"),
    ({"sql": "SELECT * FROM app.nothing_here"}, "TABLE_NOT_FOUND"),
    ({"sql": "   "}, "EMPTY_SQL"),
    ({"sql": "SELECT $1; SELECT $1", "params": [1]}, "PARAMS_WITH_BATCH"),
    ({"sql": "SELECT $1", "params": [[1, 2]]}, "INVALID_PARAMETER"),
    ({"sql": "SELECT $1", "params": [{"a": 1}]}, "INVALID_PARAMETER"),
    ({"sql": "SELECT 1", "params": [1] * 51}, "INVALID_PARAMETER"),
    ({"sql": "SELECT $1", "params": ["x" * (512 * 1024 + 1)]}, "INVALID_PARAMETER"),
    ({"sql": "SELECT 1", "bogus": True}, "INVALID_INPUT"),
    ({"query": "SELECT 1"}, "INVALID_INPUT"),
    ([1, 2], "INVALID_INPUT"),
])
def test_rejected_requests_get_400_and_the_error_shape(srv: Running, body: Any,
                                                         code: str) -> None:
    response = srv.sql(srv.login("alice")["access_token"], body)
    assert response.status_code == 400, response.text
    out = response.json()
    assert out["status"] == "error" and out["results"] == []
    assert out["error"]["code"] == code and out["error"]["details"] is None


def test_failed_statement_is_numbered_and_permission_is_403(srv: Running) -> None:
    alice = srv.login("alice")["access_token"]
    bad = srv.sql(alice, "SELECT 1; SELEC 2").json()
    assert bad["error"]["message"].startswith("Statement 2 failed:")
    denied = srv.sql(alice, "CREATE NAMESPACE sneaky")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "PERMISSION_DENIED"
    assert not srv.db.namespace_exists("sneaky")


def test_malformed_and_oversized_bodies(srv: Running) -> None:
    alice = srv.login("alice")["access_token"]
    headers = {"Authorization": f"Bearer {alice}", "Content-Type": "application/json"}
    for raw in (b"{not json", b"\xff\xfe", b""):
        response = srv.http.post("/v1/api/sql", content=raw, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_INPUT"
    huge = b'{"sql": "SELECT 1", "params": ["' + b"x" * (11 << 20) + b'"]}'
    response = srv.http.post("/v1/api/sql", content=huge, headers=headers)
    assert response.status_code == 400 and "larger" in response.json()["error"]["message"]


# --- WebSocket
def _recv(ws: Any, timeout: float = 20) -> dict[str, Any]:
    message = ws.recv(timeout=timeout)
    if isinstance(message, bytes):
        message = gzip.decompress(message).decode()
    return json.loads(message)


def _auth(ws: Any, token: str) -> dict[str, Any]:
    ws.send(json.dumps({"type": "authenticate", "method": "jwt", "token": token,
                        "protocol": {"serialization": "json", "compression": "gzip"}}))
    return _recv(ws)


def test_ws_requires_authentication(srv: Running) -> None:
    with ws_connect(srv.ws_url) as ws:
        ws.send(json.dumps({"type": "subscribe",
                            "subscription": {"id": "s", "sql": "SELECT * FROM app.notes"}}))
        assert _recv(ws)["code"] == "AUTH_REQUIRED"
        assert _auth(ws, "garbage")["type"] == "auth_error"
        ws.send(json.dumps({"type": "authenticate", "method": "jwt",
                            "token": srv.login("alice")["access_token"]}))
        assert _recv(ws)["type"] == "auth_error"  # protocol is required


def test_ws_subscribe_receives_the_users_own_inserts(srv: Running) -> None:
    alice = srv.login("alice")["access_token"]
    bob = srv.login("bob")["access_token"]
    srv.sql(alice, "INSERT INTO app.notes (id, body, n) VALUES (500, 'before', 1)")
    with ws_connect(srv.ws_url + "?compress=false") as ws:
        assert _auth(ws, alice) == {"type": "auth_success", "user": "alice", "role": "user",
                                    "protocol": {"serialization": "json",
                                                 "compression": "gzip"}}
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "s1", "sql": "SELECT id, body FROM app.notes WHERE id >= 500 AND id < 1000"}}))
        ack = _recv(ws)
        assert ack["type"] == "subscription_ack" and ack["total_rows"] == 1
        assert ack["batch_control"]["status"] == "ready"
        assert isinstance(ack["batch_control"]["last_seq_id"], int)
        batch = _recv(ws)
        assert batch["type"] == "initial_data_batch"
        assert [(r["id"], r["body"]) for r in batch["rows"]] == [("500", "before")]
        assert isinstance(batch["rows"][0]["_seq"], str)
        srv.sql(bob, "INSERT INTO app.notes (id, body) VALUES (600, 'bob only')")
        srv.sql(alice, "INSERT INTO app.notes (id, body) VALUES (601, 'alice new')")
        srv.sql(alice, "UPDATE app.notes SET body = 'changed' WHERE id = 601")
        srv.sql(alice, "DELETE FROM app.notes WHERE id = 500")
        change = _recv(ws)
        assert change["change_type"] == "insert" and change["subscription_id"] == "s1"
        assert [(r["id"], r["body"]) for r in change["rows"]] == [("601", "alice new")]
        update = _recv(ws)
        assert update["change_type"] == "update"
        assert update["rows"][0]["body"] == "changed"
        assert update["old_values"][0]["body"] == "alice new"
        delete = _recv(ws)
        assert delete["change_type"] == "delete" and delete["old_values"][0]["id"] == "500"
        assert "rows" not in delete


def test_ws_batches_on_next_batch_and_gzips_large_frames(srv: Running) -> None:
    dora = srv.login("dora")["access_token"]
    values = ", ".join(f"({i}, '{'z' * 40}')" for i in range(1000, 1025))
    srv.sql(dora, f"INSERT INTO app.notes (id, body) VALUES {values}")
    with ws_connect(srv.ws_url) as ws:
        _auth(ws, dora)
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "big", "sql": "SELECT id, body FROM app.notes WHERE id >= 1000",
            "options": {"batch_size": 10}}}))
        ack = _recv(ws)
        assert ack["total_rows"] == 25 and ack["batch_control"]["status"] == "loading"
        raw = ws.recv(timeout=20)
        assert isinstance(raw, bytes)  # >= 512 B: gzipped binary frame
        first = json.loads(gzip.decompress(raw))
        seen = [r["id"] for r in first["rows"]]
        statuses = []
        while first["batch_control"]["has_more"]:
            ws.send(json.dumps({"type": "next_batch", "subscription_id": "big"}))
            first = _recv(ws)
            seen += [r["id"] for r in first["rows"]]
            statuses.append(first["batch_control"]["status"])
        assert sorted(seen, key=int) == [str(i) for i in range(1000, 1025)]
        assert statuses == ["loading_batch", "ready"]


def test_ws_rejects_bad_messages_and_keeps_going(srv: Running) -> None:
    alice = srv.login("alice")["access_token"]
    with ws_connect(srv.ws_url, max_size=None) as ws:
        _auth(ws, alice)
        ws.send("x" * ((1 << 20) + 1))
        assert _recv(ws)["code"] == "MESSAGE_TOO_LARGE"
        ws.send(b"\x00\x01")
        assert _recv(ws)["code"] == "UNSUPPORTED_DATA"
        ws.send("{broken")
        assert _recv(ws)["code"] == "PROTOCOL"
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "t", "sql": "SELECT * FROM app.missing"}}))
        missing = _recv(ws)
        assert missing["code"] == "NOT_FOUND" and missing["subscription_id"] == "t"
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "u", "sql": "SELECT * FROM app.notes", "options": {"last_rows": 5,
                                                                     "batch_size": 2}}}))
        assert _recv(ws)["code"] == "UNSUPPORTED"
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "v", "sql": "SELECT * FROM system.users"}}))
        assert _recv(ws)["code"] == "UNAUTHORIZED"
        ws.send(json.dumps({"type": "next_batch", "subscription_id": "nope"}))
        assert _recv(ws)["code"] == "INVALID_SUBSCRIPTION_ID"


def test_ws_subscription_limit_per_user(srv: Running) -> None:
    bob = srv.login("bob")["access_token"]
    with ws_connect(srv.ws_url) as ws:
        _auth(ws, bob)
        for i in range(11):
            ws.send(json.dumps({"type": "subscribe", "subscription": {
                "id": f"s{i}", "sql": "SELECT id FROM app.notes WHERE id < 0"}}))
        frames = [_recv(ws) for _ in range(21)]  # 10 x (ack, batch) + 1 error
        errors = [f for f in frames if f["type"] == "error"]
        assert [e["code"] for e in errors] == ["SUBSCRIPTION_LIMIT_EXCEEDED"]
        ws.send(json.dumps({"type": "unsubscribe", "subscription_id": "s0"}))
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "again", "sql": "SELECT id FROM app.notes WHERE id < 0"}}))
        assert _recv(ws)["type"] == "subscription_ack"


# --- the console command
def test_kalam_serve_holds_the_directory_lock(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn does for its own
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "kalam_engine.server.cli", "serve",
                             str(tmp_path), "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        with pytest.raises(DataDirectoryLockedError):
            kalam_engine.connect(tmp_path)
    finally:
        proc.terminate()
        proc.wait(30)
    kalam_engine.connect(tmp_path).close()  # released on exit


def test_token_helpers_round_trip() -> None:
    user = tokens.UserRow("carol", kalam_engine.Role.SERVICE, None, 0.0, 0.0, None)
    token, exp = tokens.issue(SECRET, user, tokens.ACCESS)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="kalamdb")
    assert claims["exp"] == exp and claims["role"] == "service"


# --- WebSocket timeouts and pre-authentication (short timeouts on a server of their own)
@pytest.fixture()
def quick(srv: Running) -> Iterator[Running]:
    config = ServerConfig(jwt_secret=SECRET, auth_timeout=0.3, idle_timeout=0.6)
    server, thread, port = _serve(create_app(srv.db, config))
    running = Running(srv.db, port)
    try:
        yield running
    finally:
        running.http.close()
        server.should_exit = True
        thread.join(30)


def test_ws_closes_without_authentication_or_when_idle(quick: Running) -> None:
    with ws_connect(quick.ws_url) as ws, pytest.raises(ConnectionClosed):
        ws.recv(timeout=30)  # never authenticated: closed by the server
    token = quick.login("alice")["access_token"]
    with ws_connect(quick.ws_url) as ws:
        assert _auth(ws, token)["type"] == "auth_success"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)  # no client frame: closed by the server


def test_ws_bearer_header_pre_authenticates(srv: Running) -> None:
    token = srv.login("alice")["access_token"]
    with ws_connect(srv.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "h", "sql": "SELECT id FROM app.notes WHERE id < 0"}}))
        assert _recv(ws)["type"] == "subscription_ack"
    with ws_connect(srv.ws_url, additional_headers={"Authorization": "Bearer junk"}) as ws:
        assert _recv(ws)["type"] == "auth_error"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=30)
