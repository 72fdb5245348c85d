"""A KalamDB server as the magics' engine: ``%kalam --connect http://host:8080 --user alice``.

:class:`RemoteClient` offers what the magics call on an embedded engine (``execute`` returning
a result with ``kind``/``row_count``/``message``/``to_arrow``/``to_pandas``, ``subscribe``,
``close``) over KalamDB's HTTP API (POST /v1/api/sql, /v1/api/auth/login, /refresh) and its
WebSocket live protocol (/v1/ws). Int64 cells, sent as strings, come back as integers using the
schema's type names. Reads (by the parser, not by text matching) are retried on connection
errors and on 503 NOT_LEADER (at the ``Leader:`` URL), FORWARD_FAILED, CLUSTER_UNAVAILABLE;
writes never are, because a write whose answer was lost may have been applied."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

import kalam_engine
from kalam_engine.model import errors as E
from kalam_engine.model.classification import StatementClass
from kalam_engine.model.context import TableId
from kalam_engine.model.definitions import TableDefinition
from kalam_jupyter import remote_catalog, remote_insert
from kalam_jupyter.remote_catalog import ReportedCacheStats

__all__ = ["TOKEN_ENV", "RemoteClient", "RemoteResult", "ServerError", "is_url"]

TOKEN_ENV = "KALAM_TOKEN"
RETRY_CODES = {"NOT_LEADER", "FORWARD_FAILED", "CLUSTER_UNAVAILABLE"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LEADER = re.compile(r"Leader:\s*(\S+)")
_CLASSES: dict[str, type[E.KalamError]] = {
    "INVALID_SQL": E.InvalidSqlError, "INVALID_PARAMETER": E.InvalidParameterError,
    "TABLE_NOT_FOUND": E.TableNotFoundError, "NAMESPACE_NOT_FOUND": E.NamespaceNotFoundError,
    "ALREADY_EXISTS": E.AlreadyExistsError, "PERMISSION_DENIED": E.PermissionDeniedError,
    "UNSUPPORTED": E.UnsupportedError, "SQL_EXECUTION_ERROR": E.ExecutionError,
}


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


class ServerError(E.KalamError):
    """An error the server answered with a code this engine has no class for (e.g.
    NOT_LEADER, RATE_LIMIT_EXCEEDED, TOKEN_EXPIRED); ``code`` is the server's."""

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


def server_error(code: str, message: str, hint: str | None = None) -> E.KalamError:
    cls = _CLASSES.get(code)
    if cls is not None and cls.code == code:
        return cls(message, hint=hint)
    return ServerError(code, message, hint=hint)


# --- JSON cells -> Arrow, by KalamDB type names -------------------------------------------
_ARROW: dict[str, pa.DataType] = {
    "Boolean": pa.bool_(), "SmallInt": pa.int16(), "Int": pa.int32(), "BigInt": pa.int64(),
    "Float": pa.float32(), "Double": pa.float64(), "Text": pa.string(),
    "Timestamp": pa.timestamp("us"), "DateTime": pa.timestamp("us", tz="UTC"),
    "Date": pa.date32(), "Uuid": pa.string(), "Json": pa.string(), "File": pa.string(),
}


def _arrow_type(data_type: Any) -> pa.DataType | None:
    if isinstance(data_type, str):
        return _ARROW.get(data_type)
    if isinstance(data_type, dict) and "Embedding" in data_type:
        return pa.list_(pa.float32(), int(data_type["Embedding"]))
    return None  # Decimal, Bytes, Time...: left as the JSON gave them


def _cell(value: Any, t: pa.DataType | None) -> Any:
    if value is None or t is None:
        return value
    if pa.types.is_integer(t) or pa.types.is_timestamp(t):
        return int(value)
    if pa.types.is_floating(t) and isinstance(value, str):
        return float(value)  # NaN / inf come as strings
    return value


def table_from_json(schema: list[dict[str, Any]], rows: list[Any]) -> pa.Table:
    """An Arrow table of the API's rows (arrays, or objects keyed by column name)."""
    fields = sorted(schema, key=lambda f: f.get("index", 0))
    names = [f["name"] for f in fields]
    types = [_arrow_type(f.get("data_type")) for f in fields]
    columns: list[pa.Array] = []
    for i, (name, t) in enumerate(zip(names, types, strict=True)):
        raw = [(r.get(name) if isinstance(r, dict) else r[i]) for r in rows]
        values = [_cell(v, t) for v in raw]
        try:
            columns.append(pa.array(values, type=t))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            columns.append(pa.array([None if v is None else str(v) for v in raw], pa.string()))
    return pa.Table.from_arrays(columns, names=names)


class RemoteResult:
    """One statement's answer, shaped like the engine's Result for the magics."""

    def __init__(self, body: dict[str, Any], took_ms: float | None) -> None:
        self.message: str | None = body.get("message")
        self.as_user: str | None = body.get("as_user")
        self.took_ms = took_ms
        schema = body.get("schema")
        if schema is not None:
            self.kind = "query"
            self.table: pa.Table | None = table_from_json(schema, body.get("rows") or [])
            self.row_count = self.table.num_rows
        else:
            self.kind = "command"
            self.table = None
            self.row_count = int(body.get("row_count") or 0)
        self.subscription = None

    def to_arrow(self) -> pa.Table:
        return self.table if self.table is not None else pa.table({})

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()


def _claim(token: str, name: str) -> Any:
    """A claim of a JWT, unverified (the server verifies): only to refresh ahead of time and
    to name the user of a $KALAM_TOKEN."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get(name)
    except (IndexError, ValueError, TypeError, AttributeError):
        return None


def _token_expiry(token: str) -> float | None:
    exp = _claim(token, "exp")
    return float(exp) if isinstance(exp, (int, float)) else None


class RemoteClient:
    """A KalamDB server reached over HTTP as one user."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 token: str | None = None, timeout: float = 30.0, retries: int = 3,
                 backoff: float = 0.1, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.user = user
        self._password = password
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self.access_token: str | None = token
        self.refresh_token: str | None = None
        self.closed = False
        self.namespace: str | None = None  # of the last USE: the server keeps none per user
        self._metrics: tuple[float, dict[str, int | None]] | None = None
        if token is not None and user is None:
            sub = _claim(token, "sub")
            self.user = sub if isinstance(sub, str) else None
        if token is None:
            if user is None or password is None:
                raise E.InvalidParameterError(
                    "A server needs a user and a password, or a token",
                    hint=f"give --user and --password, or set ${TOKEN_ENV}")
            self.login()

    # -- authentication ---------------------------------------------------------------------
    def login(self) -> None:
        body = self._auth_post("/v1/api/auth/login",
                               json={"user": self.user, "password": self._password})
        self._take_tokens(body)

    def refresh(self) -> bool:
        """New tokens from the refresh token (else a new login); False if neither works."""
        if self.refresh_token is not None:
            try:
                self._take_tokens(self._auth_post(
                    "/v1/api/auth/refresh",
                    headers={"Authorization": f"Bearer {self.refresh_token}"}))
                return True
            except E.KalamError:
                pass
        if self.user is not None and self._password is not None:
            self.login()
            return True
        return False

    def _take_tokens(self, body: dict[str, Any]) -> None:
        self.access_token = body["access_token"]
        self.refresh_token = body.get("refresh_token")
        self.user = body.get("user", {}).get("id", self.user)

    def _auth_post(self, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = self._http.post(self.url + path, **kw)
        except httpx.TransportError as exc:
            raise ServerError("CONNECTION_FAILED", f"Cannot reach {self.url}: {exc}",
                              hint="check the URL and that `kalam serve` runs there") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            message = body.get("message") or response.text[:200]
            raise E.PermissionDeniedError(
                f"Login to {self.url} failed ({response.status_code}): {message}",
                hint="check the user and password (or the token)")
        return body

    def _fresh_token(self) -> str:
        token = self.access_token
        assert token is not None
        exp = _token_expiry(token)
        if exp is not None and exp - 5 < time.time() and self.refresh():
            token = self.access_token
            assert token is not None
        return token

    # -- SQL --------------------------------------------------------------------------------
    def execute(self, sql: str, *, user: str | None = None, params: list[Any] | None = None,
                namespace: str | None = None) -> RemoteResult:
        """Run one statement (or a batch) as the connected user; the last result."""
        self._check_user(user)
        body: dict[str, Any] = {"sql": sql}
        if params:
            body["params"] = [_json_param(p) for p in params]
        namespace = namespace or self.namespace
        if namespace:
            body["namespace_id"] = namespace
        kind = self.classify(sql)
        answer = self._post_sql(body, retry=kind.read_only)  # a write is never sent twice
        if kind.namespace is not None:
            self.namespace = kind.namespace
        results = answer.get("results") or [{}]
        return RemoteResult(results[-1], answer.get("took"))

    @staticmethod
    def classify(sql: str) -> StatementClass:
        """What ``sql`` does, read by the engine's parser (nothing is sent)."""
        return kalam_engine.Engine.classify(sql)

    def _check_user(self, user: str | None) -> None:
        if user is not None and user != self.user:
            raise E.UnsupportedError(
                f"This notebook is connected to {self.url} as {self.user}; it cannot run "
                f"statements as {user}",
                hint=f"connect as that user: %kalam --connect {self.url} --user {user}")

    def _post_sql(self, body: dict[str, Any], *, retry: bool) -> dict[str, Any]:
        url = self.url
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            if self.closed:
                raise E.EngineClosedError("The remote connection is closed",
                                          hint="connect again with %kalam --connect URL")
            headers = {"Authorization": f"Bearer {self._fresh_token()}"}
            try:
                response = self._http.post(url + "/v1/api/sql", json=body, headers=headers)
            except httpx.TransportError as exc:
                if retry and attempt <= self.retries:
                    time.sleep(self.backoff * attempt)
                    continue
                what = "" if retry else (" The statement was not retried: it may or may not "
                                         "have been applied.")
                raise ServerError("CONNECTION_FAILED",
                                  f"Cannot reach {url}: {exc}.{what}",
                                  hint="check that the server runs, then run the cell again"
                                  ) from None
            try:
                answer = response.json()
            except ValueError:
                raise ServerError("INTERNAL_ERROR",
                                  f"{url} answered {response.status_code} without JSON",
                                  hint="is this URL a KalamDB server?") from None
            if response.status_code == 200 and answer.get("status") == "success":
                return answer
            error = answer.get("error") or {}
            code = error.get("code") or answer.get("error") or "INTERNAL_ERROR"
            if not isinstance(code, str):
                code = "INTERNAL_ERROR"
            message = error.get("message") or answer.get("message") or response.text[:200]
            if response.status_code == 401 and not refreshed:
                refreshed = True  # a 401 request ran nothing: safe to send again
                if self.refresh():
                    attempt -= 1
                    continue
            if response.status_code == 503 and code in RETRY_CODES and retry \
                    and attempt <= self.retries:
                leader = _LEADER.search(message or "")
                if code == "NOT_LEADER" and leader:
                    url = leader.group(1).rstrip("/")
                time.sleep(self.backoff * attempt)
                continue
            hint = None
            if response.status_code == 401:
                hint = "log in again: %kalam --connect URL --user NAME"
            raise server_error(code, message, hint)

    # -- the rest of the engine interface the magics use ------------------------------------
    def subscribe(self, sql: str, *, user: str | None = None) -> Any:
        """A live query over the WebSocket (``next_event(timeout=)``, ``close()``)."""
        from kalam_jupyter.remote_live import RemoteSubscription

        self._check_user(user)
        return RemoteSubscription(self, sql)

    def table_definition(self, table: str) -> TableDefinition:
        """The server's definition of ``namespace.table`` (DESCRIBE TABLE and SHOW TABLES in
        one request); TableNotFoundError from the server when there is none."""
        ns, _, name = table.rpartition(".")
        if not (_NAME.fullmatch(ns) and _NAME.fullmatch(name)):
            raise E.InvalidParameterError(f"table name {table!r} must be namespace.table",
                                          hint="e.g. 'app.messages'")
        answer = self._post_sql({"sql": f"DESCRIBE TABLE {ns}.{name}; SHOW TABLES IN {ns}"},
                                retry=True)
        described, listed = (RemoteResult(r, None).to_pandas() for r in answer["results"])
        kinds = dict(zip(listed["table_name"], listed["table_type"], strict=True))
        return remote_catalog.definition_from_describe(
            TableId(ns.lower(), name.lower()), described.to_dict("records"),
            kinds.get(name.lower()))

    def insert_arrow(self, table: str, data: pa.Table, *, user: str | None = None,
                     user_column: str | None = None) -> int:
        """Insert checked Arrow rows as parameterised INSERT batches (see remote_insert)."""
        self._check_user(user)
        if user_column is not None:
            raise E.UnsupportedError(
                f"user_column= writes into many users' partitions; this notebook writes to "
                f"{self.url} as {self.user} only",
                hint="insert each user's rows on a connection as that user, or load them "
                     "with an embedded engine")
        return remote_insert.insert_rows(self, table, data)

    def catalog_snapshot(self) -> dict[str, dict[str, list[str]]]:
        """namespace -> table -> columns, for completion (names only below role dba)."""
        return remote_catalog.snapshot(self)

    @property
    def cache(self) -> _RemoteCache:
        """The server's schema-cache counters (``cache.stats()``), from system.stats."""
        return _RemoteCache(self)

    def server_metrics(self) -> dict[str, int | None]:
        """system.stats as metric -> number (role dba or system), read at most once a second."""
        now = time.monotonic()
        if self._metrics is None or now - self._metrics[0] > 1.0:
            self._metrics = (now, remote_catalog.read_stats(self))
        return self._metrics[1]

    def table_stats(self) -> list[dict[str, Any]]:
        """Tables and their types; a server reports no per-table sizes or providers."""
        return remote_catalog.table_list(self)

    def user_count(self) -> int | None:
        return None  # a server does not say how many users have rows

    def data_sizes(self) -> dict[str, int | None]:
        """Hot and cold rows and bytes over all tables, as system.stats reports them."""
        metrics = self.server_metrics()
        return {k: metrics.get(k) for k in remote_catalog.SIZE_METRICS}

    def close(self) -> None:
        self.closed = True
        self._http.close()

    def __repr__(self) -> str:
        return f"RemoteClient({self.url!r}, user={self.user!r})"


class _RemoteCache:
    def __init__(self, client: RemoteClient) -> None:
        self._client = client

    def stats(self) -> ReportedCacheStats:
        return remote_catalog.cache_stats(self._client.server_metrics())


def _json_param(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None
