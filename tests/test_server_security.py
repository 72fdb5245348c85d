"""`kalam serve` protection as KalamDB does it: login lockout, per-IP and per-user rate limits,
the setup/status/me/logout routes, and tokens and open WebSockets that end when a user is
dropped or changes password. Real uvicorn servers on 127.0.0.1, real httpx and websockets
clients; other client IPs come through uvicorn's X-Forwarded-For handling (trusted from
127.0.0.1), the way a reverse proxy on the same host reports them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_server import PASSWORD, SECRET, Running, _auth, _recv, _serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

import kalam_engine
from kalam_engine.auth import passwords
from kalam_engine.server import ServerConfig, create_app
from kalam_engine.server.limits import IpGuard, KeyedBuckets


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kalam_engine.Engine]:
    old_cost = passwords.BCRYPT_COST
    passwords.BCRYPT_COST = 4
    engine = kalam_engine.connect(tmp_path_factory.mktemp("guarded"))
    engine.execute("CREATE NAMESPACE app")
    engine.execute("CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT)")
    try:
        yield engine
    finally:
        engine.close()
        passwords.BCRYPT_COST = old_cost


class Served(Running):
    def __init__(self, db: kalam_engine.Engine, **config: Any) -> None:
        self.server, self.thread, port = _serve(create_app(
            db, ServerConfig(**{"jwt_secret": SECRET, **config})))
        super().__init__(db, port)

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(30)

    def attempt(self, user: str, password: str, ip: str | None = None) -> httpx.Response:
        headers = {"X-Forwarded-For": ip} if ip else {}
        return self.http.post("/v1/api/auth/login", json={"user": user, "password": password},
                              headers=headers)


@pytest.fixture()
def serve(db: kalam_engine.Engine) -> Iterator[Any]:
    started: list[Served] = []

    def start(**config: Any) -> Served:
        started.append(Served(db, **config))
        return started[-1]

    yield start
    for served in started:
        served.stop()


def _user(db: kalam_engine.Engine, name: str, role: str = "user") -> None:
    db.execute(f"DROP USER IF EXISTS {name}")
    db.execute(f"CREATE USER {name} WITH PASSWORD '{PASSWORD}' ROLE {role}")


def _tracking(db: kalam_engine.Engine, name: str) -> tuple[int, Any]:
    row = db.execute("SELECT failed_login_attempts, locked_until FROM system.users "
                     f"WHERE user_id = '{name}'").table.to_pylist()[0]
    return row["failed_login_attempts"], row["locked_until"]


# --- login lockout
def test_five_wrong_passwords_lock_the_account(db: kalam_engine.Engine, serve: Any) -> None:
    _user(db, "mallory")
    _user(db, "bystander")
    srv = serve(lockout_seconds=1.5)
    for i in range(5):
        wrong = srv.attempt("mallory", f"wrong-password-{i}")
        assert wrong.status_code == 401
        assert wrong.json() == {"error": "unauthorized", "message": "Invalid credentials"}
    failed, locked_until = _tracking(db, "mallory")
    assert failed == 5 and locked_until is not None
    locked = srv.attempt("mallory", PASSWORD)  # the right password does not help now
    assert locked.status_code == 401 and locked.json()["error"] == "account_locked"
    assert "minute" in locked.json()["message"]
    assert srv.attempt("bystander", PASSWORD).status_code == 200
    time.sleep(1.6)
    assert srv.attempt("mallory", PASSWORD).status_code == 200
    assert _tracking(db, "mallory") == (0, None)


def test_a_good_login_clears_earlier_failures(db: kalam_engine.Engine, serve: Any) -> None:
    _user(db, "forgetful")
    srv = serve()
    for _ in range(3):
        assert srv.attempt("forgetful", "not-the-password").status_code == 401
    assert _tracking(db, "forgetful")[0] == 3
    assert srv.attempt("forgetful", PASSWORD).status_code == 200
    assert _tracking(db, "forgetful") == (0, None)
    assert srv.attempt("nobody_at_all", PASSWORD).json()["error"] == "unauthorized"


# --- rate limits
def test_authentication_attempts_are_limited_per_ip(db: kalam_engine.Engine,
                                                    serve: Any) -> None:
    _user(db, "carol")
    srv = serve(auth_requests_per_ip_per_second=3)
    codes = [srv.attempt("carol", PASSWORD, ip="198.51.100.7").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = srv.attempt("carol", PASSWORD, ip="198.51.100.7")
    assert refused.json() == {"error": "rate_limited", "message":
                              "Too many authentication attempts. Please retry shortly."}
    assert srv.attempt("carol", PASSWORD, ip="198.51.100.8").status_code == 200  # another IP
    token = srv.login("carol")["access_token"]  # loopback has a bucket of its own
    for _ in range(3):
        srv.http.post("/v1/api/auth/login", json={"user": "carol", "password": "x" * 9})
    with ws_connect(srv.ws_url) as ws:  # the WebSocket shares the per-IP budget
        reply = _auth(ws, token)
        assert reply == {"type": "auth_error", "message":
                         "Too many authentication attempts. Please retry shortly."}
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)


def test_requests_per_ip_are_limited_then_the_ip_is_banned(serve: Any) -> None:
    srv = serve(requests_per_ip_per_second=5, ban_seconds=60)
    ip = {"X-Forwarded-For": "203.0.113.9"}
    statuses = [srv.http.get("/v1/api/auth/me", headers=ip).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    limited = srv.http.get("/v1/api/auth/me", headers=ip)
    assert limited.headers["retry-after"] == "1"
    assert limited.json()["error"] == "RATE_LIMIT_EXCEEDED"
    for _ in range(10):
        last = srv.http.get("/v1/api/auth/me", headers=ip)
    assert last.status_code == 429 and last.json()["error"] == "IP_BANNED"
    assert int(last.headers["retry-after"]) > 1
    other = srv.http.get("/v1/api/auth/me", headers={"X-Forwarded-For": "203.0.113.10"})
    assert other.status_code == 401
    assert all(srv.http.get("/health").status_code == 200 for _ in range(20))  # loopback


def test_queries_per_user_are_limited(db: kalam_engine.Engine, serve: Any) -> None:
    _user(db, "busy")
    _user(db, "calm")
    srv = serve(queries_per_user_per_second=5)
    busy = srv.login("busy")["access_token"]
    statuses = [srv.sql(busy, "SELECT 1 AS one").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    body = srv.sql(busy, "SELECT 1 AS one").json()
    assert body["status"] == "error" and body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert srv.sql(srv.login("calm")["access_token"], "SELECT 1").status_code == 200


def test_a_token_checked_by_one_server_is_not_trusted_by_another(db: kalam_engine.Engine,
                                                                  serve: Any) -> None:
    _user(db, "fay")
    first, other = serve(), serve(jwt_secret="another-secret-" + "z" * 40)
    token = first.login("fay")["access_token"]
    assert first.sql(token, "SELECT 1").status_code == 200  # remembered as verified
    refused = other.sql(token, "SELECT 1")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "INVALID_CREDENTIALS"


def test_buckets_refill_and_guards_skip_loopback() -> None:
    buckets = KeyedBuckets(2)
    assert [buckets.allow("a") for _ in range(3)] == [True, True, False]
    assert buckets.allow("b")
    time.sleep(0.6)
    assert buckets.allow("a")
    assert all(KeyedBuckets(0).allow("a") for _ in range(100))
    guard = IpGuard(1, ban_seconds=60)
    assert all(guard.check(host) is None for host in ("127.0.0.1", "::1") for _ in range(50))
    assert guard.check("192.0.2.1") is None and guard.check("192.0.2.1") is not None


# --- setup, status, me, logout
def test_setup_configures_root_and_a_dba_once(tmp_path: Any) -> None:
    old_cost = passwords.BCRYPT_COST
    passwords.BCRYPT_COST = 4
    fresh = kalam_engine.connect(tmp_path)
    srv = Served(fresh)
    try:
        assert srv.http.get("/v1/api/auth/status").json()["needs_setup"] is True
        remote = {"X-Forwarded-For": "192.0.2.44"}
        assert srv.http.get("/v1/api/auth/status", headers=remote).status_code == 403
        good = {"user": "admin", "password": "admin-password", "root_password": "root-pass-1"}
        assert srv.http.post("/v1/api/auth/setup", json=good, headers=remote).status_code == 403
        for bad, code in (({**good, "password": "short"}, "weak_password"),
                          ({**good, "user": "root"}, "invalid_user"),
                          ({**good, "user": "bad name!"}, "invalid_user"),
                          ({**good, "extra": 1}, "bad_request")):
            refused = srv.http.post("/v1/api/auth/setup", json=bad)
            assert refused.status_code == 400 and refused.json()["error"] == code
        done = srv.http.post("/v1/api/auth/setup", json={**good, "email": "a@example.com"})
        assert done.status_code == 200, done.text
        assert done.json()["user"]["id"] == "admin" and done.json()["user"]["role"] == "dba"
        assert srv.http.get("/v1/api/auth/status").json()["needs_setup"] is False
        again = srv.http.post("/v1/api/auth/setup", json={**good, "user": "admin2"})
        assert again.status_code == 409 and again.json()["error"] == "already_configured"
        assert srv.attempt("root", "root-pass-1").status_code == 200
        token = srv.login("admin", "admin-password")["access_token"]
        me = srv.http.get("/v1/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["id"] == "admin" and me.json()["email"] == "a@example.com"
        assert srv.http.get("/v1/api/auth/me").json()["error"] == "unauthorized"
        bye = srv.http.post("/v1/api/auth/logout")
        assert bye.status_code == 200 and bye.json() == {"message": "Logged out successfully"}
    finally:
        srv.stop()
        fresh.close()
        passwords.BCRYPT_COST = old_cost


# --- revocation
def _closed_with_auth_error(ws: Any) -> None:
    frame = _recv(ws, timeout=15)
    assert frame["type"] == "auth_error" and "log in again" in frame["message"]
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_a_new_password_ends_old_tokens_and_open_sockets(db: kalam_engine.Engine,
                                                         serve: Any) -> None:
    _user(db, "dave")
    srv = serve(revocation_check_seconds=30)  # only the ALTER over HTTP can wake the check
    login = srv.login("dave")
    token = login["access_token"]
    with ws_connect(srv.ws_url) as ws:
        assert _auth(ws, token)["type"] == "auth_success"
        changed = srv.sql(token, "ALTER USER dave SET PASSWORD 'a-new-password'")
        assert changed.status_code == 200, changed.text
        _closed_with_auth_error(ws)
    refused = srv.sql(token, "SELECT 1")
    assert refused.status_code == 401 and "password changed" in refused.json()["error"]["message"]
    old_refresh = srv.http.post("/v1/api/auth/refresh",
                                headers={"Authorization": f"Bearer {login['refresh_token']}"})
    assert old_refresh.status_code == 401
    assert srv.attempt("dave", PASSWORD).status_code == 401
    fresh = srv.login("dave", "a-new-password")["access_token"]
    assert srv.sql(fresh, "SELECT 1").status_code == 200


def test_a_dropped_user_loses_http_and_websocket_access(db: kalam_engine.Engine,
                                                        serve: Any) -> None:
    _user(db, "erin")
    srv = serve(revocation_check_seconds=0.2)
    token = srv.login("erin")["access_token"]
    with ws_connect(srv.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send('{"type": "subscribe", "subscription": {"id": "s", '
                '"sql": "SELECT id FROM app.notes WHERE id < 0"}}')
        assert _recv(ws)["type"] == "subscription_ack"
        _recv(ws)  # the (empty) initial batch
        db.execute("DROP USER erin")  # in-process: found by the periodic check
        _closed_with_auth_error(ws)
    refused = srv.sql(token, "SELECT 1")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "INVALID_CREDENTIALS"
