"""Every notebook runs top to bottom on a real kernel (the venv's python) without an error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
    assert {"quickstart.ipynb", "multi_tenant_chat.ipynb"} <= names


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
