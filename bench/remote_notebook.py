"""Part of Q10: the notebook layer against a server (``%kalam --connect http://...``).

A real uvicorn server in a thread serves a real engine over 127.0.0.1 (``kalam serve``'s app);
a :class:`~kalam_jupyter.remote.RemoteClient` logs in as a dba. Each figure is compared with
the same call on an embedded engine in the same run.

- ``q10.remote_df_insert``: ``df.kalam.insert`` of a frame (id, cat, amount, note) over the
  HTTP API, i.e. parameterised INSERT batches of at most 50 parameters (12 rows of 4 columns),
  against ``df.kalam.insert`` into the embedded engine (one Arrow bulk load).
- ``q10.remote_inspector``: one ``Inspector.refresh()`` (system.stats and system.tables over
  the API) against a refresh on the embedded engine.
"""

from __future__ import annotations

import time

from bench.common import Config, Row, fmt_ns, fmt_rate, make_rows, sample, temp_dir

ROWS = ("q10.remote_df_insert", "q10.remote_inspector")
SECRET = "bench-secret-" + "r" * 40
PASSWORD = "bench-password"


def _timed_insert(frame: object, table: str, db: object) -> int:
    started = time.perf_counter_ns()
    frame.kalam.insert(table, db=db)  # type: ignore[attr-defined]
    return time.perf_counter_ns() - started


def run(cfg: Config) -> list[Row]:
    import kalam_engine
    import kalam_jupyter  # noqa: F401  (registers df.kalam)
    from bench.q13_serve import _serve
    from kalam_engine.auth import passwords
    from kalam_engine.server import ServerConfig, create_app
    from kalam_jupyter.inspector import Inspector
    from kalam_jupyter.remote import RemoteClient

    n = cfg.size(3_000, 30)
    ddl = "CREATE SHARED TABLE bench.{} (id BIGINT PRIMARY KEY, cat TEXT, amount DOUBLE, " \
          "note TEXT)"
    old_cost, passwords.BCRYPT_COST = passwords.BCRYPT_COST, 4
    try:
        with temp_dir("q10r") as d:
            served = kalam_engine.connect(d / "served")
            local = kalam_engine.connect(d / "local")
            served.execute(f"CREATE USER dora WITH PASSWORD '{PASSWORD}' ROLE dba")
            for db in (served, local):
                db.execute("CREATE NAMESPACE bench")
            server, thread, port = _serve(create_app(served, ServerConfig(jwt_secret=SECRET)))
            client = RemoteClient(f"http://127.0.0.1:{port}", user="dora", password=PASSWORD)
            try:
                remote_ns, local_ns = [], []
                for i in range(cfg.size(3, 1)):
                    frame = make_rows(n).to_pandas()
                    served.execute(ddl.format(f"r{i}"))
                    local.execute(ddl.format(f"r{i}"))
                    remote_ns.append(_timed_insert(frame, f"bench.r{i}", client))
                    local_ns.append(_timed_insert(frame, f"bench.r{i}", local))
                    assert served.execute(f"SELECT count(*) AS c FROM bench.r{i}") \
                        .to_pandas()["c"][0] == n
                remote, embedded = min(remote_ns), min(local_ns)
                shown = Inspector(client)
                mine = Inspector(local)
                assert shown.error is None and shown.figures["hot_rows"] is not None
                a = sample(shown.refresh, n=cfg.size(200, 2), warmup=cfg.warmup, max_seconds=10)
                b = sample(mine.refresh, n=cfg.size(200, 2), warmup=cfg.warmup, max_seconds=10)
            finally:
                client.close()
                server.should_exit = True
                thread.join(30)
                served.close()
                local.close()
    finally:
        passwords.BCRYPT_COST = old_cost
    requests = -(-n // 12)
    return [
        Row("q10.remote_df_insert", f"df.kalam.insert of {n:,} rows over HTTP (best of runs)",
            fmt_rate(n / remote * 1e9, "rows/s"),
            "embedded " + fmt_rate(n / embedded * 1e9, "rows/s"),
            embedded / remote, "(reported, no target)", None, value=n / remote * 1e9,
            unit="rows/s", baseline_value=n / embedded * 1e9,
            note=f"{requests:,} requests of 12 rows (50 parameters at most); remote "
                 f"{fmt_ns(remote)}, embedded {fmt_ns(embedded)}"),
        Row("q10.remote_inspector", "inspector refresh over HTTP, p50", fmt_ns(a.p50),
            f"embedded {fmt_ns(b.p50)}", a.p50 / b.p50, "(reported, no target)", None,
            value=a.p50, unit="ns", baseline_value=b.p50,
            note=f"remote {a.summary()}; embedded {b.summary()}"),
    ]
