"""A live query on a KalamDB server, read from its WebSocket (/v1/ws) as engine LiveEvents.

:class:`RemoteSubscription` has what :class:`~kalam_jupyter.live_view.LiveView` uses of an
engine subscription: ``plan.key``, ``schema``, ``next_event(timeout=)`` and ``close()``. The
initial rows are read before the constructor returns; a background thread then reads change
frames into a queue and pings the server so the connection never looks idle."""

from __future__ import annotations

import contextlib
import gzip
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from kalam_engine import LiveEvent, parse_live_query
from kalam_engine.model import errors as E
from kalam_jupyter.remote import ServerError, server_error, table_from_json

if TYPE_CHECKING:
    from kalam_jupyter.remote import RemoteClient

__all__ = ["RemoteSubscription"]

PING_EVERY = 3.0  # seconds; the server closes a connection idle for 10 s
_CLOSED = object()


@dataclass(frozen=True)
class RemotePlan:
    key: str | None


def _ws_url(http_url: str) -> str:
    scheme, rest = http_url.split("://", 1)
    return ("wss://" if scheme == "https" else "ws://") + rest + "/v1/ws"


class RemoteSubscription:
    """One subscription on its own WebSocket connection."""

    def __init__(self, client: RemoteClient, sql: str, *, timeout: float = 30.0) -> None:
        query = parse_live_query(sql)
        self.sql = sql
        self.id = "nb-" + uuid.uuid4().hex[:12]
        self.plan = RemotePlan(self._primary_key(client, query.namespace, query.table))
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._failed = False
        self._stack = contextlib.ExitStack()  # closes the connection
        try:
            self._ws = self._stack.enter_context(
                connect(_ws_url(client.url), open_timeout=timeout, max_size=8 * 1024 * 1024))
        except (OSError, TimeoutError) as exc:
            raise ServerError("CONNECTION_FAILED", f"Cannot open {_ws_url(client.url)}: {exc}",
                              hint="check that the server runs") from None
        try:
            self._send({"type": "authenticate", "method": "jwt",
                        "token": client._fresh_token(),
                        "protocol": {"serialization": "json", "compression": "gzip"}})
            reply = self._recv(timeout)
            if reply.get("type") != "auth_success":
                raise E.PermissionDeniedError(
                    f"The server refused the live connection: {reply.get('message')}",
                    hint="connect again with %kalam --connect URL --user NAME")
            self._send({"type": "subscribe",
                        "subscription": {"id": self.id, "sql": sql, "options": {}}})
            self.schema = self._load_snapshot(timeout)
        except BaseException:
            self._stack.close()
            raise
        self._last_send = time.monotonic()
        self._thread = threading.Thread(target=self._follow, name="kalam-remote-live",
                                        daemon=True)
        self._thread.start()

    @staticmethod
    def _primary_key(client: RemoteClient, namespace: str | None, table: str) -> str | None:
        name = f"{namespace}.{table}" if namespace else table
        try:
            described = client.execute(f"DESCRIBE TABLE {name}").to_pandas()
        except E.KalamError:
            return None
        keys = described.loc[described["is_primary_key"], "column_name"].tolist()
        return keys[0] if keys else "_seq"

    # -- frames -----------------------------------------------------------------------------
    def _send(self, frame: dict[str, Any]) -> None:
        self._ws.send(json.dumps(frame))
        self._last_send = time.monotonic()

    def _recv(self, timeout: float | None) -> dict[str, Any]:
        data = self._ws.recv(timeout=timeout)
        if isinstance(data, bytes):
            data = gzip.decompress(data).decode("utf-8")
        frame = json.loads(data)
        return frame if isinstance(frame, dict) else {}

    def _raise_if_error(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "error":
            raise server_error(str(frame.get("code")), str(frame.get("message")))

    def _load_snapshot(self, timeout: float) -> pa.Schema:
        schema_json: list[dict[str, Any]] | None = None
        while True:
            frame = self._recv(timeout)
            self._raise_if_error(frame)
            kind = frame.get("type")
            if kind == "subscription_ack":
                schema_json = frame.get("schema") or []
            elif kind == "initial_data_batch" and schema_json is not None:
                control = frame.get("batch_control") or {}
                rows = table_from_json(schema_json, frame.get("rows") or [])
                has_more = bool(control.get("has_more"))
                self._events.put(LiveEvent("initial_data_batch", rows=rows,
                                           seq=int(control.get("last_seq_id") or 0),
                                           batch_num=int(control.get("batch_num") or 0),
                                           has_more=has_more))
                self._schema_json = schema_json
                if not has_more:
                    return table_from_json(schema_json, []).schema
                self._send({"type": "next_batch", "subscription_id": self.id})

    def _table(self, rows: list[dict[str, Any]] | None) -> pa.Table | None:
        if not rows:
            return None
        by_name = {f["name"]: f for f in self._schema_json}
        fields = [dict(by_name.get(n, {"name": n, "data_type": None}), index=i)
                  for i, n in enumerate(rows[0])]
        return table_from_json(fields, rows)

    def _change(self, frame: dict[str, Any]) -> LiveEvent:
        rows = self._table(frame.get("rows"))
        old = self._table(frame.get("old_values"))
        seq = 0
        for t in (rows, old):
            if t is not None and "_seq" in t.column_names:
                seq = max([seq, *(s for s in t.column("_seq").to_pylist() if s is not None)])
        return LiveEvent(str(frame.get("change_type")), rows=rows, old_values=old, seq=seq)

    def _follow(self) -> None:
        try:
            while not self._closed:
                wait = max(0.0, PING_EVERY - (time.monotonic() - self._last_send))
                try:
                    frame = self._recv(wait)
                except TimeoutError:
                    self._send({"type": "ping"})
                    continue
                if frame.get("type") == "error":
                    self._events.put(server_error(str(frame.get("code")),
                                                  str(frame.get("message"))))
                    return
                if frame.get("type") == "change":
                    self._events.put(self._change(frame))
        except ConnectionClosed:
            if not self._closed:
                self._events.put(ServerError("CONNECTION_FAILED",
                                             "The server closed the live connection",
                                             hint="run the live cell again"))
        except Exception as exc:  # a bad frame ends the subscription, visibly
            self._events.put(ServerError("CONVERSION_ERROR", f"Cannot read a frame: {exc}"))
        finally:
            self._events.put(_CLOSED)

    # -- the engine Subscription interface --------------------------------------------------
    def next_event(self, timeout: float | None = None) -> LiveEvent | None:
        """The next event (snapshot batches first), None on timeout or once closed; raises
        the subscription's error (as KalamError) once."""
        if self._closed or self._failed:
            return None
        try:
            item = self._events.get(timeout=timeout) if timeout != 0 \
                else self._events.get_nowait()
        except queue.Empty:
            return None
        if item is _CLOSED:
            self._failed = True
            return None
        if isinstance(item, E.KalamError):
            self._failed = True
            raise item
        return item  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._send({"type": "unsubscribe", "subscription_id": self.id})
        self._stack.close()
        self._events.put(_CLOSED)
