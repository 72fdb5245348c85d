"""A real second process holding a data directory: a child Python that opens it with
``kalam_engine.connect`` and runs the SQL it is sent, one JSON line per statement, answering
``OK`` (with the rows as JSON) or ``ERR <class> <message>`` once the statement returned (so an
``OK`` means acknowledged)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, sys
import kalam_engine

db = kalam_engine.connect(sys.argv[1])
print("READY", flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    try:
        result = db.execute(cmd["sql"], user=cmd.get("user"))
    except Exception as exc:
        print("ERR", type(exc).__name__, str(exc).replace("\n", " "), flush=True)
        continue
    rows = result.to_arrow().to_pylist() if result.table is not None else []
    print("OK", json.dumps(rows, default=str), flush=True)
db.close()
"""


class WriterProcess:
    """``with WriterProcess(path) as w: w.sql("INSERT ...")`` in a child process."""

    def __init__(self, path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [*filter(None, [os.environ.get("PYTHONPATH")]), str(ROOT)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = self._line()
        if first != "READY":
            self.proc.kill()
            raise RuntimeError(f"writer did not start: {first!r} {self.proc.stderr.read()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().rstrip("\n")

    def sql(self, sql: str, user: str | None = None) -> list[dict[str, Any]]:
        """Run ``sql`` in the child; its rows once it is acknowledged."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"sql": sql, "user": user}) + "\n")
        self.proc.stdin.flush()
        answer = self._line()
        if not answer.startswith("OK"):
            raise AssertionError(f"writer failed on {sql!r}: {answer}")
        return json.loads(answer[3:])

    def kill(self) -> None:
        """SIGKILL: no close(), no cleanup; the OS releases what the process held."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> WriterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None and exc[0] is not None:
            self.kill()
        self.close()
