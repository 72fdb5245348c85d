"""Q13: `kalam serve` over loopback, against KalamDB's published benchv2 figures.

A real uvicorn server (in a thread) serves a real engine on a temporary data directory; a real
httpx client and a real WebSocket client talk to it over 127.0.0.1. Each HTTP row is compared
with the same statement run in-process through ``db.execute`` in the same run (the API's own
cost), and KalamDB's published figure is given in the note (its server on an Apple M1 Pro: a
different machine, so context, not a ratio).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    Config,
    Row,
    Timing,
    compare_latency,
    fmt_ns,
    make_rows,
    percentile,
    temp_dir,
)

QUESTION = "kalam serve over loopback: HTTP SQL and WebSocket live queries"
ROWS = ("q13.http_single_insert", "q13.http_point_lookup", "q13.http_group_by_10k",
        "q13.http_1k_concurrent", "q13.ws_initial_load_1k", "q13.ws_change_latency")
KALAMDB = {"single_insert": 263e3, "point_lookup": 386e3, "group_by": 27.5e6,
           "sql_1k": 152e6, "initial_load": 6.3e6, "change": 51e6}  # ns, benchv2 means
SECRET = "bench-secret-" + "x" * 40
PASSWORD = "bench-password"


def _serve(app: Any) -> tuple[Any, threading.Thread, int]:
    import uvicorn

    sock = socket.socket()
    # as uvicorn does for the sockets it makes itself (`kalam serve`): without it, a response's
    # two writes wait for the client's delayed ACK (40 ms a request, measured)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, port


def _recv(ws: Any) -> dict[str, Any]:
    message = ws.recv(timeout=30)
    if isinstance(message, bytes):
        message = gzip.decompress(message).decode()
    return json.loads(message)


def _row(key: str, label: str, ours: Timing, base: Timing | None, kalamdb_ns: float,
         base_label: str = "db.execute") -> Row:
    note = f"ours {ours.summary()}; KalamDB benchv2 mean {fmt_ns(kalamdb_ns)} (M1 Pro)"
    if base is None:
        return Row(key, label, fmt_ns(ours.p50), f"KalamDB {fmt_ns(kalamdb_ns)}",
                   ours.p50 / kalamdb_ns, "", None, value=ours.p50, unit="ns",
                   baseline_value=kalamdb_ns, note=note)
    return Row(key, label, fmt_ns(ours.p50), f"{base_label} {fmt_ns(base.p50)}",
               ours.p50 / base.p50, "", None, value=ours.p50, unit="ns",
               baseline_value=base.p50, note=note + f"; {base_label} {base.summary()}")


def run(cfg: Config) -> list[Row]:
    import kalam_engine
    from kalam_engine.auth import passwords
    from kalam_engine.server import ServerConfig, create_app

    rows_n = cfg.size(10_000, 50)
    n = cfg.size(500, 3)
    old_cost, passwords.BCRYPT_COST = passwords.BCRYPT_COST, 4
    try:
        with temp_dir("q13") as d:
            db = kalam_engine.connect(d / "data")
            db.execute(f"CREATE USER alice WITH PASSWORD '{PASSWORD}' ROLE user")
            db.execute("CREATE NAMESPACE bench")
            db.execute("CREATE USER TABLE bench.t (id BIGINT PRIMARY KEY, cat TEXT, "
                       "amount DOUBLE, note TEXT)")
            db.execute("CREATE USER TABLE bench.w (id BIGINT PRIMARY KEY, note TEXT)")
            db.insert_arrow("bench.t", make_rows(rows_n), user="alice")
            # KalamDB's 100 queries per second per user would refuse most of the burst: off
            config = ServerConfig(jwt_secret=SECRET, queries_per_user_per_second=0)
            server, thread, port = _serve(create_app(db, config))
            base = f"http://127.0.0.1:{port}"
            http = httpx.Client(base_url=base, timeout=60)
            try:
                token = http.post("/v1/api/auth/login", json={
                    "user": "alice", "password": PASSWORD}).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}

                def post(sql: str, params: list[Any] | None = None) -> Any:
                    body: dict[str, Any] = {"sql": sql}
                    if params is not None:
                        body["params"] = params
                    response = http.post("/v1/api/sql", json=body, headers=headers)
                    assert response.status_code == 200, response.text
                    return response

                ids = iter(range(10**9))
                ins = "INSERT INTO bench.w (id, note) VALUES ($1, 'x')"
                a, b = compare_latency(
                    cfg, lambda: post(ins, [next(ids)]),
                    lambda: db.execute(ins, user="alice", params=[next(ids)]), n=n)
                out = [_row("q13.http_single_insert", "single-row INSERT over HTTP, p50", a, b,
                            KALAMDB["single_insert"])]
                look = "SELECT * FROM bench.t WHERE id = $1"
                a, b = compare_latency(
                    cfg, lambda: post(look, [rows_n // 2]),
                    lambda: db.execute(look, user="alice", params=[rows_n // 2]), n=n)
                out.append(_row("q13.http_point_lookup", f"PK lookup in {rows_n:,} rows over "
                                "HTTP, p50", a, b, KALAMDB["point_lookup"]))
                group = "SELECT cat, count(*) AS n, sum(amount) AS s FROM bench.t GROUP BY cat"
                a, b = compare_latency(cfg, lambda: post(group),
                                       lambda: db.execute(group, user="alice"),
                                       n=cfg.size(100, 2))
                out.append(_row("q13.http_group_by_10k", f"GROUP BY over {rows_n:,} rows over "
                                "HTTP, p50", a, b, KALAMDB["group_by"]))
                out.append(_burst(cfg, base, headers, look, rows_n))
                out.extend(_websocket(cfg, port, token, post))
            finally:
                http.close()
                server.should_exit = True
                thread.join(30)
                db.close()
    finally:
        passwords.BCRYPT_COST = old_cost
    return out


BURST_CONNECTIONS = 100


def _burst(cfg: Config, base: str, headers: dict[str, str], sql: str, rows_n: int) -> Row:
    """1,000 SELECTs sent at once over 100 connections (KalamDB's sql_1k_concurrent): wall
    time of the burst, against the same 1,000 SELECTs one after another on one connection.

    The client runs in a process of its own, as KalamDB's benchv2 client (Rust) does: in the
    server's process it would share the GIL with the server. It is a lean asyncio HTTP/1.1
    keep-alive client (real sockets, real requests and responses, each checked), one socket per
    connection sending its share in turn. httpx would measure itself: one AsyncClient with a
    pool of 100 connections and 1,000 waiting requests spends ~20 s of CPU in httpcore's pool
    bookkeeping (cProfile: ``_assign_requests_to_connections`` scans every waiting request on
    each event), which is what an earlier version of this row measured, and even one client per
    connection costs ~2.5 ms of client CPU per request, 2.5x the server's ~1 ms."""
    burst = cfg.size(1_000, 5)
    connections = min(BURST_CONNECTIONS, burst)
    args = [sys.executable, "-m", "bench.q13_serve", "burst", base, headers["Authorization"],
            sql, str(burst), str(rows_n), str(connections)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"the burst client failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    timing, sequential = Timing((figures["burst_ns"],)), Timing((figures["sequential_ns"],))
    row = _row("q13.http_1k_concurrent", f"burst of {burst:,} concurrent PK SELECTs "
               f"({connections} connections), wall time", timing, sequential,
               KALAMDB["sql_1k"], base_label=f"{burst:,} in turn on 1 connection")
    row.note += (f"; burst latency p50 {fmt_ns(figures['latency_p50_ns'])}, "
                 f"p99 {fmt_ns(figures['latency_p99_ns'])}")
    return row


async def _burst_client(base: str, auth: str, sql: str, burst: int, rows_n: int,
                        connections: int) -> dict[str, float]:
    host, port = base.removeprefix("http://").split(":")
    latencies: list[int] = []

    def request(i: int) -> bytes:
        body = json.dumps({"sql": sql, "params": [i % rows_n]}).encode()
        return (f"POST /v1/api/sql HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}"
                f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body

    async def worker(ids: range) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i in ids:
                started = time.perf_counter_ns()
                writer.write(request(i))
                status, body = await _read_response(reader)
                latencies.append(time.perf_counter_ns() - started)
                assert status == 200 and json.loads(body)["status"] == "success", body
        finally:
            writer.close()

    started = time.perf_counter_ns()
    await worker(range(burst))
    sequential = time.perf_counter_ns() - started
    latencies.clear()
    started = time.perf_counter_ns()
    await asyncio.gather(*(worker(range(k, burst, connections)) for k in range(connections)))
    took = time.perf_counter_ns() - started
    return {"burst_ns": took, "sequential_ns": sequential,
            "latency_p50_ns": percentile(latencies, 50),
            "latency_p99_ns": percentile(latencies, 99)}


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = next(int(line.split(":", 1)[1]) for line in head[1:]
                  if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


def _websocket(cfg: Config, port: int, token: str, post: Any) -> list[Row]:
    from websockets.sync.client import connect as ws_connect

    url = f"ws://127.0.0.1:{port}/v1/ws?compress=false"
    loads = []
    n_rows = cfg.size(1_000, 10)
    for i in range(cfg.size(20, 1)):
        with ws_connect(url, max_size=None) as ws:
            ws.send(json.dumps({"type": "authenticate", "method": "jwt", "token": token,
                                "protocol": {"serialization": "json", "compression": "none"}}))
            _recv(ws)
            started = time.perf_counter_ns()
            ws.send(json.dumps({"type": "subscribe", "subscription": {
                "id": f"load{i}", "sql": f"SELECT * FROM bench.t WHERE id < {n_rows}",
                "options": {"batch_size": 1000}}}))
            got = 0
            while True:
                message = _recv(ws)
                got += len(message.get("rows", []))
                control = message.get("batch_control", {})
                if message["type"] != "initial_data_batch":
                    continue
                if not control.get("has_more"):
                    break
                ws.send(json.dumps({"type": "next_batch", "subscription_id": f"load{i}"}))
            loads.append(time.perf_counter_ns() - started)
            assert got == n_rows
    out = [_row("q13.ws_initial_load_1k", f"subscribe + initial load of {n_rows:,} rows over "
                "WebSocket, p50", Timing(tuple(loads)), None, KALAMDB["initial_load"])]
    after, total = [], []
    with ws_connect(url, max_size=None) as ws:
        ws.send(json.dumps({"type": "authenticate", "method": "jwt", "token": token,
                                "protocol": {"serialization": "json", "compression": "none"}}))
        _recv(ws)
        ws.send(json.dumps({"type": "subscribe", "subscription": {
            "id": "chg", "sql": "SELECT id, note FROM bench.w WHERE id >= 2000000000"}}))
        while True:
            message = _recv(ws)
            if message["type"] == "initial_data_batch" and \
                    not message.get("batch_control", {}).get("has_more"):
                break
            if message["type"] == "subscription_ack" and message.get("total_rows") == 0 \
                    and message["batch_control"]["status"] == "ready":
                break
        for i in range(cfg.size(200, 2)):
            ws.send(json.dumps({"type": "ping"}))  # the server closes a silent socket at 10 s
            started = time.perf_counter_ns()
            post("INSERT INTO bench.w (id, note) VALUES ($1, 'live')", [2_000_000_000 + i])
            returned = time.perf_counter_ns()
            while True:
                message = _recv(ws)
                if message.get("change_type") == "insert":
                    break  # (the ping's answer, if any, is skipped)
            now = time.perf_counter_ns()
            after.append(now - returned)
            total.append(now - started)
    latency = Timing(tuple(total))
    row = _row("q13.ws_change_latency", "INSERT over HTTP -> change over WebSocket, p50",
               latency, None, KALAMDB["change"])
    row.note += f"; HTTP response -> change p50 {fmt_ns(Timing(tuple(after)).p50)}"
    out.append(row)
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["burst"]:
    base_url, auth_header, statement, count, rows, conns = sys.argv[2:8]
    print(json.dumps(asyncio.run(_burst_client(base_url, auth_header, statement, int(count),
                                               int(rows), int(conns)))))
