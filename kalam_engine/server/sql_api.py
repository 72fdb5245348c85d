"""POST /v1/api/sql: run a batch as one user and shape the answer as KalamDB does.

Non-DML results come back in order, then the batch's INSERTs, UPDATEs and DELETEs merged into
at most three results. A failing statement stops the batch (statements before it stay
committed, as in KalamDB) and answers ``Statement N failed: ...``."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from kalam_engine.model.errors import KalamError, PermissionDeniedError
from kalam_engine.result import Result
from kalam_engine.server.encode import rows_as_arrays, schema_json
from kalam_engine.server.http_body import RequestError
from kalam_engine.sql import statements as st
from kalam_engine.sql import user_commands as uc
from kalam_engine.sql.limits import check_statement_shape
from kalam_engine.sql.names import validate_namespace
from kalam_engine.sql.params import bind_params, check_text
from kalam_engine.sql.parser import parse_statement
from kalam_engine.sql.tokens import split_statements

if TYPE_CHECKING:
    from kalam_engine.engine import Engine

log = logging.getLogger(__name__)
DEFAULT_NAMESPACE = "default"
MAX_PARAMS = 50
MAX_PARAM_BYTES = 512 * 1024
_DML = {st.InsertStatement: "Inserted", st.UpdateStatement: "Updated",
        st.DeleteStatement: "Deleted"}
_USER_CHANGES = (uc.AlterUser, uc.DropUser)


def check_request(body: Any) -> tuple[str, list[Any] | None, str]:
    """(sql, params, namespace) of a request body, or RequestError."""
    if not isinstance(body, dict):
        raise RequestError("INVALID_INPUT", 'The body must be a JSON object like {"sql": "..."}')
    unknown = set(body) - {"sql", "params", "namespace_id"}
    if unknown:
        raise RequestError("INVALID_INPUT", f"Unknown field(s) {sorted(unknown)}; "
                                            "use sql, params and namespace_id")
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise RequestError("INVALID_INPUT", 'The body needs "sql": a string of statements')
    if not sql.strip():
        raise RequestError("EMPTY_SQL", "The SQL is empty; give at least one statement")
    params = body.get("params")
    if params is not None:
        if not isinstance(params, list):
            raise RequestError("INVALID_PARAMETER", '"params" must be an array of values')
        if len(params) > MAX_PARAMS:
            raise RequestError("INVALID_PARAMETER",
                               f"{len(params)} params given; at most {MAX_PARAMS} are allowed")
        for i, value in enumerate(params, start=1):
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise RequestError("INVALID_PARAMETER",
                                   f"Parameter ${i} is an array or object; params may be "
                                   "null, booleans, numbers or strings")
            if isinstance(value, str) and len(value.encode("utf-8")) > MAX_PARAM_BYTES:
                raise RequestError("INVALID_PARAMETER",
                                   f"Parameter ${i} is larger than {MAX_PARAM_BYTES} bytes")
    namespace = body.get("namespace_id", "default")
    if not isinstance(namespace, str):
        raise RequestError("INVALID_INPUT", '"namespace_id" must be a string')
    try:
        namespace = DEFAULT_NAMESPACE if namespace.lower() == DEFAULT_NAMESPACE \
            else validate_namespace(namespace)
    except KalamError as exc:
        raise RequestError("INVALID_INPUT", exc.message) from None
    return sql, params, namespace


class BatchAnswer(NamedTuple):
    status: int
    body: dict[str, Any]
    users_changed: bool  # an ALTER or DROP USER ran: open sockets may have lost access


def run_batch(db: Engine, user: str, sql: str, params: list[Any] | None,
              namespace: str) -> BatchAnswer:
    """(HTTP status, body, users changed) for a checked request run as ``user``."""
    started = time.perf_counter()
    try:
        statements = _split(sql, params)
    except RequestError as exc:
        return BatchAnswer(*error_response(400, exc.code, exc.message, _took(started)), False)
    results: list[dict[str, Any]] = []
    merged: dict[str, list[Any]] = {}  # verb -> [rows affected, as_user]
    users_changed = False
    for number, text in enumerate(statements, start=1):
        try:
            stmt, result = _run_one(db, user, text, params, namespace)
        except _StatementFailed as failed:
            status, body = error_response(failed.status, failed.code,
                                          f"Statement {number} failed: {failed.message}",
                                          _took(started))
            return BatchAnswer(status, body, users_changed)
        users_changed |= isinstance(stmt, _USER_CHANGES)
        if isinstance(stmt, st.UseNamespace):
            namespace = stmt.name.lower()
        verb = _DML.get(type(stmt))
        if verb is not None:
            entry = merged.setdefault(verb, [0, result.as_user])
            entry[0] += result.row_count
        else:
            results.append(result_json(result))
        if result.subscription is not None:  # SUBSCRIBE TO over HTTP: nobody reads it
            result.subscription.close()
    for verb in ("Inserted", "Updated", "Deleted"):
        if verb in merged:
            count, as_user = merged[verb]
            results.append({"row_count": count, "message": f"{verb} {count} row(s)",
                            "as_user": as_user})
    body = {"status": "success", "results": results, "took": _took(started)}
    return BatchAnswer(200, body, users_changed)


def _took(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _split(sql: str, params: list[Any] | None) -> list[str]:
    """The batch's statements, or RequestError (KalamDB's batch-level codes)."""
    try:
        check_text(sql)
        statements = split_statements(sql)
    except KalamError as exc:
        raise RequestError("BATCH_PARSE_ERROR", str(exc)) from None
    if not statements:
        raise RequestError("EMPTY_SQL", "The SQL holds no statement")
    if params and len(statements) > 1:
        raise RequestError("PARAMS_WITH_BATCH",
                           "params can only be used with a single statement")
    return statements


class _StatementFailed(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _run_one(db: Engine, user: str, text: str, params: list[Any] | None,
             namespace: str) -> tuple[Any, Result]:
    """(statement, result) of one statement, or _StatementFailed with its HTTP status."""
    try:
        param_list = bind_params([text], params)
        check_statement_shape(text)
        stmt = parse_statement(text)
        ctx = db.context(user).with_namespace(namespace)
        return stmt, db.run_statement(stmt, ctx, param_list)
    except KalamError as exc:
        status = 403 if isinstance(exc, PermissionDeniedError) \
            or exc.code == "PERMISSION_DENIED" else 400
        raise _StatementFailed(status, exc.code, str(exc)) from None
    except RecursionError:
        raise _StatementFailed(400, "INVALID_SQL", "nested too deeply") from None
    except Exception:  # a bug, not the user's doing: say so without internals
        log.exception("a statement of a /v1/api/sql batch failed")
        raise _StatementFailed(500, "INTERNAL_ERROR",
                               "internal error (see the server log)") from None


def result_json(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {}
    table = result.table
    if table is not None and table.num_columns:
        out["schema"] = schema_json(table.schema)
        out["rows"] = rows_as_arrays(table)
        out["row_count"] = table.num_rows
    else:
        out["row_count"] = result.row_count
    if result.message:
        out["message"] = result.message
    out["as_user"] = result.as_user
    return out


def error_response(status: int, code: str, message: str,
                   took: float = 0.0) -> tuple[int, dict[str, Any]]:
    return status, {"status": "error", "results": [], "took": took,
                    "error": {"code": code, "message": message, "details": None}}
