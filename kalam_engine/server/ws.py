"""GET /v1/ws: KalamDB's live-query protocol over WebSocket.

One :class:`Connection` per socket: it authenticates (a JWT in an ``authenticate`` frame or a
Bearer header on the upgrade), then relays engine subscriptions as ``subscription_ack``,
``initial_data_batch`` (more on ``next_batch``) and ``change`` frames. Each subscription is
read on its engine callback thread and handed to the event loop; a client that stops reading
ends its subscription with an error once ``MAX_PENDING`` events wait, so memory stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from kalam_engine.live import LiveEvent, Subscription
from kalam_engine.live.events import DELETE, ERROR, INITIAL_BATCH, INSERT, UPDATE
from kalam_engine.model.errors import (
    InvalidSqlError,
    KalamError,
    NamespaceNotFoundError,
    PermissionDeniedError,
    ResourceLimitError,
    TableNotFoundError,
    UnsupportedError,
)
from kalam_engine.server import tokens
from kalam_engine.server.encode import rows_as_objects, schema_json
from kalam_engine.server.limits import KeyedBuckets

if TYPE_CHECKING:
    from kalam_engine.engine import Engine
    from kalam_engine.server.config import ServerConfig

GZIP_MIN_BYTES = 512
MAX_BATCH_SIZE = 1000
MAX_ID_LENGTH = 128
MAX_PENDING = 10_000  # events waiting for a slow client, per subscription
PROTOCOL = {"serialization": "json", "compression": "gzip"}
TOO_MANY_ATTEMPTS = "Too many authentication attempts. Please retry shortly."


def error_code(exc: KalamError) -> str:
    if isinstance(exc, TableNotFoundError | NamespaceNotFoundError):
        return "NOT_FOUND"
    if isinstance(exc, PermissionDeniedError) or exc.code == "PERMISSION_DENIED":
        return "UNAUTHORIZED"
    if isinstance(exc, InvalidSqlError):
        return "INVALID_SQL"
    if isinstance(exc, UnsupportedError):
        return "UNSUPPORTED"
    return "SUBSCRIPTION_FAILED"


class LiveSockets:
    """The WebSocket endpoint and what all connections share: subscriptions per user, the
    authentication attempts per client IP, and the watch that closes the sockets of users
    who were dropped, re-roled or given a new password (checked every
    ``revocation_check_seconds``, and at once after an ALTER or DROP USER over HTTP)."""

    def __init__(self, db: Engine, config: ServerConfig,
                 attempts: KeyedBuckets | None = None) -> None:
        self.db = db
        self.config = config
        self.per_user: dict[str, int] = defaultdict(int)  # touched on the event loop only
        self.attempts = attempts or KeyedBuckets(config.auth_requests_per_ip_per_second)
        self.authenticated: set[Connection] = set()
        self.wake = asyncio.Event()
        self.watch: asyncio.Task[None] | None = None

    async def endpoint(self, websocket: WebSocket) -> None:
        await Connection(self, websocket).run()

    def track(self, connection: Connection) -> None:
        self.authenticated.add(connection)
        if self.watch is None or self.watch.done():
            self.watch = asyncio.create_task(self.watch_credentials())

    def check_soon(self) -> None:
        if self.authenticated:
            self.wake.set()

    async def watch_credentials(self) -> None:
        while self.authenticated:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.config.revocation_check_seconds)
            self.wake.clear()
            held = {c: c.user for c in self.authenticated if c.user is not None}
            stale = await run_in_threadpool(self.revoked, set(held.values()))
            for connection, user in held.items():
                if user in stale and connection.user is user:
                    await connection.revoke()

    def revoked(self, users: set[tokens.UserRow]) -> set[tokens.UserRow]:
        """Those of ``users`` (as authenticated) that system.users no longer backs."""
        out = set()
        for user in users:
            now = tokens.load_live_user(self.db, user.user_id)
            if now is None or now.role != user.role or now.password_hash != user.password_hash:
                out.add(user)
        return out


class _LiveSub:
    """One client subscription: the engine's Subscription and the task relaying it."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.sub: Subscription | None = None
        self.events: asyncio.Queue[LiveEvent] = asyncio.Queue()
        self.want_batch = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.overflowed = False


class Connection:
    def __init__(self, hub: LiveSockets, websocket: WebSocket) -> None:
        self.hub = hub
        self.db = hub.db
        self.config = hub.config
        self.ws = websocket
        self.host = websocket.client.host if websocket.client else ""
        self.id = uuid.uuid4().hex[:16]
        self.compress = websocket.query_params.get("compress", "true").lower() != "false"
        self.user: tokens.UserRow | None = None
        self.subs: dict[str, _LiveSub] = {}
        self.send_lock = asyncio.Lock()
        self.loop = asyncio.get_running_loop()
        self.window_start = time.monotonic()
        self.window_count = 0

    # --- sending
    async def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode("utf-8")
        async with self.send_lock:
            if self.ws.application_state != WebSocketState.CONNECTED:
                return
            if self.compress and len(data) >= GZIP_MIN_BYTES:
                packed = gzip.compress(data)
                if len(packed) < len(data):
                    await self.ws.send_bytes(packed)
                    return
            await self.ws.send_text(data.decode("utf-8"))

    async def error(self, code: str, message: str, subscription_id: str | None = None) -> None:
        frame: dict[str, Any] = {"type": "error"}
        if subscription_id is not None:
            frame["subscription_id"] = subscription_id
        frame.update(code=code, message=message)
        await self.send(frame)

    # --- the connection's life
    async def run(self) -> None:
        await self.ws.accept()
        header = self.ws.headers.get("authorization")
        if header:
            try:
                if not self.hub.attempts.allow(self.host):
                    raise tokens.AuthFailure("RATE_LIMIT_EXCEEDED", TOO_MANY_ATTEMPTS)
                token = tokens.bearer(header)
                self.set_user(await run_in_threadpool(tokens.verify, self.db,
                                                      self.config.jwt_secret, token))
            except tokens.AuthFailure as failure:
                await self.send({"type": "auth_error", "message": failure.message})
                await self.ws.close(code=1008)
                return
        auth_deadline = self.loop.time() + self.config.auth_timeout
        try:
            while True:
                timeout = self.config.idle_timeout
                if self.user is None:
                    timeout = min(timeout, auth_deadline - self.loop.time())
                try:
                    message = await asyncio.wait_for(self.ws.receive(), max(timeout, 0.0))
                except TimeoutError:
                    reason = "authentication timeout" if self.user is None else "idle timeout"
                    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                        await self.ws.close(code=1008 if self.user is None else 1000,
                                            reason=reason)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                await self.handle_frame(message)
        except WebSocketDisconnect:
            return
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for client_id in list(self.subs):
            self.drop(client_id)
        self.hub.authenticated.discard(self)

    def set_user(self, user: tokens.UserRow) -> None:
        self.user = user
        self.hub.track(self)

    async def revoke(self) -> None:
        """The user was dropped or re-roled, or its password changed: end the connection."""
        self.cleanup()
        self.user = None  # frames still in flight get AUTH_REQUIRED
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send({"type": "auth_error", "message": "Invalid credentials: the "
                             "user was dropped or its password or role changed; log in again"})
            await self.ws.close(code=1008, reason="Credentials revoked")

    def rate_limited(self) -> bool:
        now = time.monotonic()
        if now - self.window_start >= 1.0:
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        return self.window_count > self.config.messages_per_second

    async def handle_frame(self, message: dict[str, Any]) -> None:
        if self.rate_limited():
            await self.error("RATE_LIMIT_EXCEEDED", f"More than "
                             f"{self.config.messages_per_second} messages per second; slow down")
            return
        if message.get("bytes") is not None:
            await self.error("UNSUPPORTED_DATA",
                             "Binary frames are not accepted with JSON serialization; "
                             "send JSON text frames")
            return
        text = message.get("text") or ""
        if len(text.encode("utf-8")) > self.config.max_message_bytes:
            await self.error("MESSAGE_TOO_LARGE", f"A message may be at most "
                             f"{self.config.max_message_bytes} bytes")
            return
        try:
            frame = json.loads(text)
        except ValueError as exc:
            await self.error("PROTOCOL", f"The message is not valid JSON: {exc}")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "authenticate":
            await self.authenticate(frame)
        elif kind == "ping":
            return
        elif kind not in ("subscribe", "next_batch", "unsubscribe"):
            await self.error("PROTOCOL", f"Unknown message type {str(kind)[:40]!r}; use "
                             "authenticate, subscribe, next_batch, unsubscribe or ping")
        elif self.user is None:
            await self.error("AUTH_REQUIRED", "Authenticate first: "
                             '{"type":"authenticate","method":"jwt","token":"...",'
                             '"protocol":{"serialization":"json","compression":"gzip"}}')
        elif kind == "subscribe":
            await self.subscribe(frame)
        elif kind == "next_batch":
            await self.next_batch(frame)
        else:
            client_id = frame.get("subscription_id")
            if isinstance(client_id, str) and client_id in self.subs:
                self.drop(client_id)  # KalamDB sends no reply

    # --- messages
    async def authenticate(self, frame: dict[str, Any]) -> None:
        protocol = frame.get("protocol")
        if frame.get("method", "jwt") != "jwt" or not isinstance(frame.get("token"), str):
            await self.send({"type": "auth_error",
                             "message": 'Use {"method":"jwt","token":"<access token>"}'})
            return
        if not isinstance(protocol, dict) or protocol.get("serialization") != "json":
            await self.send({"type": "auth_error", "message":
                             'protocol is required: {"serialization":"json",'
                             '"compression":"gzip"} (only JSON is supported)'})
            return
        if not self.hub.attempts.allow(self.host):
            await self.send({"type": "auth_error", "message": TOO_MANY_ATTEMPTS})
            await self.ws.close(code=1008, reason="Auth rate limit exceeded")
            return
        try:
            user = await run_in_threadpool(tokens.verify, self.db, self.config.jwt_secret,
                                           frame["token"])
        except tokens.AuthFailure as failure:
            await self.send({"type": "auth_error", "message": failure.message})
            return
        if self.user is not None and self.user.user_id != user.user_id and self.subs:
            await self.send({"type": "auth_error", "message":
                             "This connection has subscriptions of another user"})
            return
        self.set_user(user)
        await self.send({"type": "auth_success", "user": user.user_id,
                         "role": user.role.label, "protocol": PROTOCOL})

    async def subscribe(self, frame: dict[str, Any]) -> None:
        assert self.user is not None
        spec = frame.get("subscription")
        if not isinstance(spec, dict):
            await self.error("PROTOCOL", 'subscribe needs "subscription": {"id","sql"}')
            return
        client_id = spec.get("id")
        if not isinstance(client_id, str) or not client_id or len(client_id) > MAX_ID_LENGTH \
                or client_id in self.subs:
            await self.error("INVALID_SUBSCRIPTION_ID",
                             f"The subscription id must be a new, non-empty string of at most "
                             f"{MAX_ID_LENGTH} characters", None)
            return
        sql = spec.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            await self.error("INVALID_SQL", "subscription.sql must be a SELECT", client_id)
            return
        options = self.options(spec.get("options"))
        if isinstance(options, str):
            await self.error("UNSUPPORTED", options, client_id)
            return
        user_id = self.user.user_id
        if self.hub.per_user[user_id] >= self.config.subscriptions_per_user:
            await self.error("SUBSCRIPTION_LIMIT_EXCEEDED", f"A user may hold at most "
                             f"{self.config.subscriptions_per_user} subscriptions; "
                             "unsubscribe from one first", client_id)
            return
        live = _LiveSub(client_id)
        self.subs[client_id] = live
        self.hub.per_user[user_id] += 1

        def deliver(event: LiveEvent) -> None:  # on the subscription's thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: the server stopped
                self.loop.call_soon_threadsafe(self.enqueue, live, event)

        try:
            live.sub = await run_in_threadpool(
                lambda: self.db.subscribe(sql, user_id, callback=deliver,
                                          subscription_id=f"{self.id}-{client_id}",
                                          connection_id=self.id, **options))
        except KalamError as exc:
            self.drop(client_id)
            await self.error(error_code(exc), str(exc), client_id)
            return
        if client_id not in self.subs:  # the connection ended meanwhile
            live.sub.close()
            return
        live.task = asyncio.create_task(self.relay(live))

    def options(self, raw: Any) -> dict[str, Any] | str:
        """Engine options from the client's, or the message of an UNSUPPORTED error."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            return "subscription.options must be an object"

        def number(name: str) -> int | str | None:
            value = raw.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return f"options.{name} must be a non-negative integer"
            return value

        batch_size, last_rows = number("batch_size"), number("last_rows")
        from_seq = number("from") if raw.get("from") is not None else number("from_seq_id")
        for value in (batch_size, last_rows, from_seq):
            if isinstance(value, str):
                return value
        assert not isinstance(batch_size, str) and not isinstance(last_rows, str)
        size = MAX_BATCH_SIZE if not batch_size else min(batch_size, MAX_BATCH_SIZE)
        out: dict[str, Any] = {"batch_size": size}
        if from_seq is not None:
            out["from_seq"] = from_seq
        elif last_rows is not None:
            if last_rows > size:
                return f"last_rows ({last_rows}) may not exceed batch_size ({size})"
            out["last_rows"] = last_rows
        return out

    def enqueue(self, live: _LiveSub, event: LiveEvent) -> None:
        if live.overflowed or self.subs.get(live.client_id) is not live:
            return
        if live.events.qsize() >= MAX_PENDING:
            live.overflowed = True
            live.events.put_nowait(LiveEvent(ERROR, error=ResourceLimitError(
                f"The client fell behind: {MAX_PENDING} events waited to be sent",
                hint="read frames faster, then subscribe again with options.from=<last _seq>")))
            return
        live.events.put_nowait(event)

    async def next_batch(self, frame: dict[str, Any]) -> None:
        client_id = frame.get("subscription_id")
        live = self.subs.get(client_id) if isinstance(client_id, str) else None
        if live is None:
            await self.error("INVALID_SUBSCRIPTION_ID", f"No subscription {client_id!r} on "
                             "this connection", client_id if isinstance(client_id, str) else None)
            return
        live.want_batch.set()

    def drop(self, client_id: str) -> None:
        live = self.subs.pop(client_id, None)
        if live is None:
            return
        if self.user is not None:
            self.hub.per_user[self.user.user_id] -= 1
        if live.sub is not None:
            live.sub.close()
        if live.task is not None and live.task is not asyncio.current_task():
            live.task.cancel()

    # --- relaying one subscription
    async def relay(self, live: _LiveSub) -> None:
        assert live.sub is not None
        sub, cid = live.sub, live.client_id
        try:
            while True:
                event = await live.events.get()
                if event.type == INITIAL_BATCH:
                    await self.send_batch(live, sub, event)
                    if event.has_more:
                        await live.want_batch.wait()
                        live.want_batch.clear()
                elif event.type == ERROR:
                    exc = event.error
                    code = "BATCH_FETCH_FAILED" if exc is None else error_code(exc)
                    await self.error(code, str(exc), cid)
                    self.drop(cid)
                    return
                else:
                    await self.send(change_frame(cid, event))
        except Exception as exc:  # a frame that cannot be sent or converted ends it
            if not isinstance(exc, WebSocketDisconnect | RuntimeError):
                with contextlib.suppress(Exception):
                    await self.error("CONVERSION_ERROR", f"Cannot send an event: {exc}", cid)
            self.drop(cid)

    async def send_batch(self, live: _LiveSub, sub: Subscription, event: LiveEvent) -> None:
        status = "ready" if not event.has_more else \
            ("loading" if event.batch_num == 0 else "loading_batch")
        control = {"batch_num": event.batch_num, "has_more": event.has_more,
                   "status": status, "last_seq_id": event.seq}
        if event.batch_num == 0:
            await self.send({"type": "subscription_ack", "subscription_id": live.client_id,
                             "total_rows": sub.total_rows, "batch_control": control,
                             "schema": schema_json(sub.schema)})
        rows = rows_as_objects(event.rows) if event.rows is not None else []
        await self.send({"type": "initial_data_batch", "subscription_id": live.client_id,
                         "rows": rows, "batch_control": control})


def change_frame(client_id: str, event: LiveEvent) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "change", "subscription_id": client_id,
                             "change_type": event.type}
    if event.type in (INSERT, UPDATE) and event.rows is not None:
        frame["rows"] = rows_as_objects(event.rows)
    if event.type in (UPDATE, DELETE) and event.old_values is not None:
        frame["old_values"] = rows_as_objects(event.old_values)
    return frame
