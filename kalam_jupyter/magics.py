"""The ``%kalam`` / ``%%kalam`` magics and the ``Kalam`` settings (``%config Kalam.x = ...``)."""

from __future__ import annotations

import atexit
import os
import queue
import re
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import Configurable

from kalam_jupyter.backend import BackendResult, KalamBackend
from kalam_jupyter.display import Message, Progress, ResultInfo, format_error, result_frame
from kalam_jupyter.remote import is_url
from kalam_jupyter.sqltext import (
    BoundStatement,
    UnboundVariableError,
    bind_parameters,
    split_statements,
)

if TYPE_CHECKING:
    from kalam_jupyter.remote import RemoteClient

__all__ = ["Kalam", "KalamMagics", "current_engine", "run_with_progress"]

MEMORY = ":memory:"


class Kalam(Configurable):
    """Settings of the Kalam notebook layer; change them with ``%config Kalam.<name> = value``."""

    data_dir = Unicode(
        help="Where the embedded engine keeps its data when no --connect was given. "
        "Defaults to $KALAM_DATA_DIR, else ./.kalam beside the notebook."
    ).tag(config=True)
    display_limit = Integer(10, help="Rows shown in a query result's table.").tag(config=True)
    default_user = Unicode(
        None, allow_none=True, help="User for statements without --user (None: root)."
    ).tag(config=True)
    progress_after = Float(
        1.0, help="Seconds after which a running statement shows its elapsed time."
    ).tag(config=True)
    run_in_thread = Bool(
        True,
        help="Run writes in a worker thread, so that an interrupt returns at once while the "
        "statement completes whole (or not at all) in the background. Reads run in the kernel's "
        "thread, where an interrupt stops the query itself.",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return os.environ.get("KALAM_DATA_DIR") or os.path.join(os.getcwd(), ".kalam")


class _Interrupted(Exception):
    def __init__(self, elapsed: float) -> None:
        super().__init__(f"interrupted after {elapsed:.1f} s")
        self.elapsed = elapsed


class _Worker:
    """One daemon thread that runs statements in order (so an abandoned one never blocks exit)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0  # submitted and not finished (an abandoned one included)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._lock:
            self._pending += 1
        self._jobs.put((fn, fut))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="kalam-statement", daemon=True
                )
                self._thread.start()
        return fut

    def _loop(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            try:
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    fut.set_result(fn())
                except BaseException as exc:  # handed to the waiting cell
                    fut.set_exception(exc)
            finally:
                with self._lock:
                    self._pending -= 1


def run_inline_with_progress(fn: Callable[[], Any], *, progress_after: float = 1.0) -> Any:
    """Run the read-only statement ``fn`` in this (the main) thread.

    Ctrl-C reaches DataFusion, which stops the query at once (a worker thread would only stop
    waiting for it); the statement changes nothing, so nothing is left half done. The
    elapsed-time line comes from a SIGALRM handler, which Python runs in this thread whenever
    DataFusion checks for signals, so it lands in the running cell's output.
    """
    start = time.monotonic()
    handle: Any = None

    def tick(signum: int, frame: Any) -> None:
        nonlocal handle
        elapsed = time.monotonic() - start
        if handle is None:
            handle = display(Progress(elapsed), display_id=True)
        else:
            handle.update(Progress(elapsed))

    previous = signal.signal(signal.SIGALRM, tick)
    signal.setitimer(signal.ITIMER_REAL, progress_after, 1.0)
    outcome = "done"
    try:
        return fn()
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise _Interrupted(time.monotonic() - start) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if handle is not None:
            handle.update(Progress(time.monotonic() - start, outcome))


def _can_run_inline() -> bool:
    """SIGALRM is ours to use: main thread, a POSIX system, and no timer already running."""
    return (hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
            and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0))


def run_with_progress(
    fn: Callable[[], Any],
    *,
    worker: _Worker | None = None,
    progress_after: float = 1.0,
    poll: float = 0.05,
) -> Any:
    """Run ``fn`` in ``worker``; after ``progress_after`` s show (and update) the elapsed time.

    A KeyboardInterrupt while waiting stops the wait and raises ``_Interrupted``; the statement
    itself is atomic in the engine, so it either lands whole or not at all.
    """
    worker = worker or _Worker()
    fut = worker.submit(fn)
    start = time.monotonic()
    handle = None
    shown_at = -1.0
    elapsed = 0.0
    try:
        while True:
            done, _ = wait([fut], timeout=poll)
            elapsed = time.monotonic() - start
            if done:
                break
            if elapsed >= progress_after and elapsed - shown_at >= 1.0:
                shown_at = elapsed
                if handle is None:
                    handle = display(Progress(elapsed), display_id=True)
                else:
                    handle.update(Progress(elapsed))
    except KeyboardInterrupt:
        fut.cancel()
        elapsed = time.monotonic() - start
        if handle is not None:
            handle.update(Progress(elapsed, "interrupted"))
        raise _Interrupted(elapsed) from None
    if handle is not None:
        handle.update(Progress(elapsed, "done"))
    return fut.result()


_ACTIVE: weakref.ref[KalamMagics] | None = None


def current_engine() -> KalamBackend | None:
    """The engine of the loaded ``%kalam`` magics (opened on first use), or None."""
    magics = _ACTIVE() if _ACTIVE is not None else None
    return magics.engine() if magics is not None else None


_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*<<\s*(.*)$", re.DOTALL)
_TOKEN = re.compile(r"""\s*('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|\S+)""")


def _kalam_error_type() -> type[Exception]:
    try:
        from kalam_engine.model.errors import KalamError
    except ImportError:  # pragma: no cover - the engine ships with this package
        return RuntimeError
    return KalamError


@magics_class
class KalamMagics(Magics):
    """``%kalam`` and ``%%kalam``: run KalamDB SQL against an embedded engine."""

    def __init__(self, shell: Any, settings: Kalam | None = None) -> None:
        super().__init__(shell)
        self.settings = settings or Kalam(parent=shell)
        self.settings.observe(self._data_dir_changed, names=["data_dir"])
        self._db: KalamBackend | None = None
        self._db_path: str | None = None
        self._explicit_path: str | None = None
        self._read_only = False  # open the directory read-only (another engine writes it)
        self._worker = _Worker()
        self.inspectors: list[Any] = []
        self.live_views: list[Any] = []  # LiveView objects of `%kalam live` / `--live`
        atexit.register(_close_quietly, weakref.ref(self))

    # -- the engine -------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The path the engine is (or will be) opened at."""
        return self._explicit_path or self.settings.data_dir

    def engine(self) -> KalamBackend:
        """The current engine, opened on first use."""
        if self._db is None:
            import kalam_engine

            path = self.path
            if is_url(path):
                raise UsageError(f"The connection to {path} was closed; connect again with "
                                 f"%kalam --connect {path} --user NAME")
            if path != MEMORY:
                path = os.path.abspath(os.path.expanduser(path))
                if not self._read_only:
                    os.makedirs(path, exist_ok=True)
            self._db = kalam_engine.connect(path, read_only=self._read_only)
            self._db_path = path
        return self._db

    def connect(self, path_or_engine: str | KalamBackend, *,
                read_only: bool = False) -> KalamBackend:
        """Switch to another data directory, ``:memory:``, or an already open engine; with
        ``read_only`` the directory is read while another engine (notebook) writes it."""
        self.close()
        if isinstance(path_or_engine, str):
            self._explicit_path = path_or_engine
            self._read_only = read_only
            try:
                return self.engine()
            except BaseException:
                self._read_only = False
                raise
        self._db = path_or_engine
        self._db_path = "<engine>"
        self._explicit_path = "<engine>"
        return self._db

    def close(self) -> None:
        """Close the engine if it is open; the next statement opens it again."""
        self.stop_live()
        db, self._db = self._db, None
        if db is not None and self._explicit_path != "<engine>":
            db.close()
        if self._explicit_path == "<engine>":
            self._explicit_path = None

    def connect_remote(self, url: str, *, user: str | None = None,
                       password: str | None = None) -> RemoteClient:
        """Use the KalamDB server at ``url`` as ``user`` (password asked for when not given;
        $KALAM_TOKEN, when set and no password is given, is used instead of a login)."""
        from kalam_jupyter.remote import RemoteClient, token_from_env

        token = None if password is not None else token_from_env()
        if token is None and password is None:
            if not user:
                raise UsageError(f"Connecting to {url} needs --user NAME (and --password, or "
                                 "it is asked for), or a token in $KALAM_TOKEN")
            import getpass

            password = getpass.getpass(f"Password for {user} at {url}: ")
        client = RemoteClient(url, user=user, password=password, token=token)
        self.close()
        self._db = client
        self._db_path = url
        self._explicit_path = url
        self._read_only = False
        return client

    @property
    def is_remote(self) -> bool:
        from kalam_jupyter.remote import RemoteClient

        return isinstance(self._db, RemoteClient)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def _data_dir_changed(self, change: dict[str, Any]) -> None:
        if self._explicit_path is None and self._db is not None and change["new"] != self._db_path:
            self.close()

    # -- the magic --------------------------------------------------------------------------

    @magic_arguments()
    @argument("-u", "--user", help="Run as this user (default: Kalam.default_user, else root).")
    @argument("-o", "--out", metavar="VAR", help="Store the last result in this variable.")
    @argument("-c", "--connect", metavar="PATH",
              help="Open PATH (a directory or :memory:), or a server's http(s):// URL.")
    @argument("--password", help="With --connect URL: the password (asked for if omitted).")
    @argument("--read-only", action="store_true",
              help="With --connect: read PATH while another notebook's engine writes it.")
    @argument("-l", "--limit", type=int, help="Rows to show (default: Kalam.display_limit).")
    @argument("--side", action="store_true", help="With `inspect`: open in the side panel.")
    @argument("--live", action="store_true",
              help="Subscribe: show the query's rows and keep them current as others write.")
    @no_var_expand
    @line_cell_magic
    def kalam(self, line: str = "", cell: str | None = None) -> Any:
        """Run KalamDB SQL.

        %kalam SELECT ...            one statement; returns a DataFrame
        %%kalam [--user U] [-o VAR]  a cell of statements; the last result is returned
        %kalam VAR << SELECT ...     store the result in VAR
        %kalam --connect PATH        switch engines (:memory: for a throw-away one)
        %kalam --connect PATH --read-only   read a directory another notebook writes
        %kalam inspect [--side]      the provider and cache inspector
        %%kalam --live [--user U] [-o VAR]  a live table of one SELECT (also %kalam live SELECT)
        %kalam live stop             stop every live table of this notebook

        `:name` binds the notebook variable `name` as a parameter.
        """
        args, rest = self._parse(line)
        if args is None:  # --help was shown
            return None
        connected = self._switch(args)
        if connected is not None and not rest.strip() and not (cell and cell.strip()):
            display(Message(connected, "command", None, None, None))
            return None
        words = rest.split()
        if words and words[0].lower() == "inspect" and all(w == "--side" for w in words[1:]):
            self.inspect(side=args.side or "--side" in words[1:])
            return None
        live = re.match(r"\s*live(?:\s+|$)", rest, re.IGNORECASE)
        if live:
            rest = rest[live.end():]
        sql = rest if cell is None else f"{rest}\n{cell}"
        if live or args.live:
            self._live_cell(sql, args)
            return None
        if not sql.strip() and not args.connect:
            state = "open" if self.is_open else "opens on first use"
            display(Message(f"Kalam engine at {self.path} ({state})", "command", None, None, None))
            return None
        target, sql = _target(sql, args.out)
        return self.run(sql, user=args.user, target=target, limit=args.limit)

    def _switch(self, args: Any) -> str | None:
        """Apply ``--connect``; the line saying what the magics now use (None: no switch)."""
        if not args.connect:
            return None
        try:
            if is_url(args.connect):
                client = self.connect_remote(args.connect, user=args.user,
                                             password=args.password)
                args.user = None  # the login user, not a user to run as
                return f"Connected to {args.connect} as {client.user}"
            self.connect(args.connect, read_only=args.read_only)  # e.g. the directory is held
        except _kalam_error_type() as exc:
            raise UsageError(format_error(exc)) from None
        except OSError as exc:
            raise UsageError(f"Cannot open the Kalam engine at {args.connect}: {exc}") from None
        where = "an in-memory engine" if args.connect == MEMORY else args.connect
        return f"Connected to {where}" + (" (read-only)" if args.read_only else "")

    def _live_cell(self, sql: str, args: Any) -> None:
        """``%%kalam --live`` / ``%kalam live ...``: show a live table, or ``stop`` them all."""
        if sql.strip().lower() == "stop":
            stopped = self.stop_live()
            display(Message(f"Stopped {stopped} live quer{'y' if stopped == 1 else 'ies'}",
                            "command", None, None, None))
            return
        target, sql = _target(sql, args.out)
        self.live(sql, user=args.user, target=target, limit=args.limit)

    def _parse(self, line: str) -> tuple[Any, str]:
        """Peel the leading options off ``line``; the rest is SQL (which may contain dashes)."""
        parser = self.kalam.parser
        takes_value: dict[str, bool] = {}
        for action in parser._actions:
            for opt in action.option_strings:
                takes_value[opt] = action.nargs != 0
        tokens: list[str] = []
        pos = 0
        while True:
            m = _TOKEN.match(line, pos)
            if not m:
                break
            tok = m.group(1)
            name = tok.split("=", 1)[0]
            if name in ("-h", "--help"):
                print(parser.format_help())
                return None, ""
            if name not in takes_value and re.fullmatch(r"--?[A-Za-z][\w-]*", name):
                raise UsageError(f"unknown option {name} (see %kalam --help)")
            if name not in takes_value:
                break
            tokens.append(tok)
            pos = m.end()
            if takes_value[name] and "=" not in tok:
                v = _TOKEN.match(line, pos)
                if not v:
                    raise UsageError(f"{name} needs a value")
                tokens.append(_unquote(v.group(1)))
                pos = v.end()
        args = parser.parse_args(tokens)
        return args, line[pos:]

    def run(
        self,
        sql: str,
        *,
        user: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> Any:
        """Run every statement of ``sql``; show DDL/DML lines; return the last query's frame."""
        statements = self._split(sql)
        if not statements:
            return None
        user = user or self.settings.default_user
        limit = self.settings.display_limit if limit is None else limit
        db = self._open_or_usage_error()
        result = frame = None
        for no, stmt in enumerate(statements, 1):
            bound = self._bind(stmt)
            result = self._execute(db, bound, stmt, user, (no, len(statements)))
            frame = self._render(result, limit, last=no == len(statements))
        return self._deliver(result, frame, target)

    @staticmethod
    def _split(sql: str) -> list[str]:
        try:
            return split_statements(sql)
        except _kalam_error_type() as exc:
            raise UsageError(format_error(exc, sql)) from None

    def _bind(self, stmt: str) -> BoundStatement:
        """``stmt`` with its ``:name`` references bound to notebook variables."""
        try:
            return bind_parameters(stmt, self.shell.user_ns)
        except UnboundVariableError as exc:
            raise UsageError(f"INVALID_PARAMETER: {exc}") from None

    def _execute(self, db: KalamBackend, bound: BoundStatement, text: str, user: str | None,
                 position: tuple[int, int]) -> BackendResult:
        """Run one bound statement: reads inline (an interrupt stops them), writes in the
        worker thread (an interrupt stops the wait; the statement lands whole or not at all)."""
        params = bound.params or None

        def call() -> BackendResult:
            return db.execute(bound.sql, user=user, params=params)

        inline = (db.classify(bound.sql).read_only and not self._worker.busy
                  and _can_run_inline())
        try:
            if inline:
                return run_inline_with_progress(call, progress_after=self.settings.progress_after)
            if self.settings.run_in_thread:
                return run_with_progress(call, worker=self._worker,
                                         progress_after=self.settings.progress_after)
            return call()
        except _Interrupted as exc:
            what = ("the query stopped and changed nothing" if inline else
                    "statements are atomic, so it either completes whole in the background "
                    "or leaves no trace")
            raise UsageError(f"Interrupted after {exc.elapsed:.1f} s (statement {position[0]} "
                             f"of {position[1]}); {what}.") from None
        except _kalam_error_type() as exc:
            raise UsageError(format_error(exc, text, self._snapshot(db), position)) from None

    def _render(self, result: BackendResult, limit: int, *, last: bool) -> Any:
        """The last query's frame; a line for every other statement (None returned)."""
        if result.kind == "query" and last:
            return self._frame(result, limit)
        text = f"{result.row_count} row(s) returned" if result.kind == "query" \
            else result.message
        display(self._message(result, text))
        return None

    def _deliver(self, result: BackendResult | None, frame: Any, target: str | None) -> Any:
        """Return the frame, or store it (or the last result's rows) in ``target``."""
        if frame is None:
            if target and result is not None:
                self.shell.user_ns[target] = result.to_pandas()
            return None
        if target:
            self.shell.user_ns[target] = frame
            rows, cols = frame.shape
            display(self._message(result, f"Stored {rows} row(s) x {cols} column(s) in {target}"))
            return None
        return frame

    def live(self, sql: str, *, user: str | None = None, target: str | None = None,
             limit: int | None = None) -> Any:
        """Show a live table of ``sql`` (one ``SELECT ... FROM ns.t [WHERE ...]``) as
        ``user``; with ``target`` keep its rows as a DataFrame in that variable. Returns the
        :class:`~kalam_jupyter.live_view.LiveView`."""
        from kalam_jupyter.live_view import LiveView

        kalam_error = _kalam_error_type()
        try:
            statements = split_statements(sql)
        except kalam_error as exc:
            raise UsageError(format_error(exc, sql)) from None
        if len(statements) != 1:
            raise UsageError("INVALID_SQL: a live query is exactly one statement, got "
                             f"{len(statements)}; write one SELECT ... FROM namespace.table "
                             "[WHERE ...] in the cell")
        db = self._open_or_usage_error()
        try:
            view = LiveView(db, statements[0], user=user or self.settings.default_user,
                            target=target, namespace=self.shell.user_ns,
                            limit=self.settings.display_limit if limit is None else limit)
        except kalam_error as exc:
            raise UsageError(format_error(exc, statements[0], self._snapshot(db))) from None
        self.live_views = [v for v in self.live_views if v.status == "active"]
        self.live_views.append(view)
        view.show()
        return view

    def stop_live(self) -> int:
        """Stop every live table; returns how many were still running."""
        views, self.live_views = self.live_views, []
        running = [v for v in views if v.status == "active"]
        for view in running:
            view.stop()
        return len(running)

    def _frame(self, result: BackendResult, limit: int) -> Any:
        table = result.to_arrow()
        df = result.to_pandas()
        types = tuple((f.name, str(f.type)) for f in table.schema)
        info = ResultInfo(
            total_rows=len(df),
            column_types=types,
            took_ms=getattr(result, "took_ms", None),
            as_user=getattr(result, "as_user", None),
            display_limit=limit,
        )
        return result_frame(df, info)

    @staticmethod
    def _message(result: BackendResult, text: str | None) -> Message:
        return Message(
            text=text or "",
            kind=result.kind,
            rows=result.row_count,
            took_ms=getattr(result, "took_ms", None),
            as_user=getattr(result, "as_user", None),
        )

    def _open_or_usage_error(self) -> KalamBackend:
        try:
            return self.engine()
        except _kalam_error_type() as exc:
            raise UsageError(format_error(exc)) from None
        except OSError as exc:
            raise UsageError(f"Cannot open the Kalam engine at {self.path}: {exc}") from None

    @staticmethod
    def _snapshot(db: KalamBackend) -> dict[str, dict[str, list[str]]] | None:
        try:
            return db.catalog_snapshot()
        except Exception:
            return None

    # -- the inspector ----------------------------------------------------------------------

    def inspect(self, side: bool = False) -> Any:
        """Show the inspector for the current engine (in the side panel with ``side``)."""
        from kalam_jupyter.inspector import Inspector

        self._open_or_usage_error()
        inspector = Inspector(self.engine)
        self.inspectors.append(inspector)
        inspector.show(side=side)
        return inspector


def _target(sql: str, out: str | None) -> tuple[str | None, str]:
    """(variable, SQL) of ``VAR << SQL``; else (``out``, ``sql``)."""
    m = _ASSIGN.match(sql)
    return (m.group(1), m.group(2)) if m else (out, sql)


def _unquote(tok: str) -> str:
    if len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "'\"":
        return tok[1:-1]
    return tok


def _close_quietly(ref: weakref.ref[KalamMagics]) -> None:
    magics = ref()
    if magics is not None:
        try:
            magics.close()
        except Exception as exc:  # at exit there is no one left to tell but stderr
            print(f"kalam: closing the engine failed: {exc}", file=sys.stderr)


def activate(magics: KalamMagics | None) -> None:
    """Make ``magics`` the one whose engine ``current_engine()`` returns."""
    global _ACTIVE
    _ACTIVE = weakref.ref(magics) if magics is not None else None
