"""Every notebook runs top to bottom on a real kernel (the venv's python) without an error."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from kalam_jupyter.show_notebook import render

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel_name() -> str:
    """A python3 kernel that runs this interpreter (the venv), installing the spec if needed."""
    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec("python3")
    except NoSuchKernel:
        spec = None
    if spec is None or spec.argv[0] not in {"python", "python3", sys.executable}:
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix, kernel_name="python3")
    return "python3"


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel imports kalam_* from this checkout even if it was not pip-installed."""
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), path) if p))


def test_there_are_notebooks() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "multi_tenant_chat.ipynb", "kalamdb_features.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_errors(path: Path, kernel_name: str, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors, errors
    text = "\n".join(
        out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert "Traceback" not in text
    assert "Live providers:" in text  # the inspector rendered (text view of the widget)
    assert not (tmp_path / ".kalam").exists()  # the notebooks use :memory:
    shown, error_count = render(nb)
    assert error_count == 0 and "Live providers:" in shown


def _shell_reply(kc: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    """The shell reply to ``msg_id``: on a slow start, jupyter_client's wait_for_ready sends
    kernel_info again each second and leaves the extra replies queued ahead of ours."""
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply


def _execute(kc: Any, code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
    """Run ``code``; return the reply content and everything printed or displayed."""
    msg_id = kc.execute(code)
    shown: list[str] = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream":
            shown.append(content["text"])
        elif msg["msg_type"] in {"display_data", "execute_result", "update_display_data"}:
            shown.append(str(content["data"].get("text/plain", "")))
        elif msg["msg_type"] == "error":
            shown.append("\n".join(content["traceback"]))
        elif msg["msg_type"] == "status" and content["execution_state"] == "idle":
            break
    reply = _shell_reply(kc, msg_id, timeout)
    return reply["content"], "".join(shown)


def test_completion_and_interrupt_in_a_real_kernel(kernel_name: str) -> None:
    """What JupyterLab does: complete_request to the kernel, and SIGINT during a long query."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name)
    try:
        reply, out = _execute(
            kc,
            "%load_ext kalam_jupyter\n%kalam --connect :memory:\n"
            "%kalam CREATE NAMESPACE app\n"
            "%kalam CREATE USER TABLE app.messages (id BIGINT PRIMARY KEY, body TEXT)",
        )
        assert reply["status"] == "ok", out
        code = "%%kalam --user alice\nSELECT bo FROM app.mes"
        msg_id = kc.complete(code, len(code))
        matches = _shell_reply(kc, msg_id, 30)
        assert "app.messages" in matches["content"]["matches"]
        # calibrate a query of a few seconds, then interrupt the kernel while it runs
        reply, out = _execute(
            kc,
            "import time\nfrom kalam_jupyter import current_engine\n"
            "q = 'SELECT sum(length(CAST(value AS VARCHAR))) FROM generate_series(1, {})'\n"
            "t = time.monotonic(); current_engine().execute(q.format(5_000_000))\n"
            "slow = q.format(int(5_000_000 * 5 / max(time.monotonic() - t, 0.01)))",
        )
        assert reply["status"] == "ok", out
        started = time.monotonic()
        msg_id = kc.execute("r = get_ipython().run_line_magic('kalam', slow)")
        time.sleep(1.5)
        km.interrupt_kernel()
        shown: list[str] = []
        progress: list[str] = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                shown.append(msg["content"]["text"])
            if msg["msg_type"] in ("display_data", "update_display_data"):
                progress.append(msg["content"]["data"].get("text/plain", ""))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = _shell_reply(kc, msg_id, 30)["content"]
        assert reply["status"] == "error"
        assert "Interrupted after" in "".join(shown)
        assert "stopped and changed nothing" in "".join(shown)  # DataFusion itself stopped
        # the elapsed-time line reached this cell while the query ran in the kernel's thread
        assert any("elapsed" in p for p in progress), progress
        assert any("interrupted after" in p for p in progress), progress
        assert time.monotonic() - started < 5
        reply, out = _execute(kc, "%kalam --user alice SELECT count(*) AS c FROM app.messages")
        assert reply["status"] == "ok", out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
