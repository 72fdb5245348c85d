"""The shape of kalam_engine, read from its source with ``ast``: which packages import which
(no cycles), and how long functions are.

A node is a subpackage (``kalam_engine.handlers``) or a top-level module (``engine``,
``services``, ``result``, ``recover``); imports under ``if TYPE_CHECKING:`` and imports inside
functions count like any other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kalam_engine"
MAX_FUNCTION_LINES = 50


def _node_of(module: str) -> str | None:
    """``kalam_engine.handlers.tables`` -> ``handlers``; None for other packages."""
    parts = module.split(".")
    if parts[0] != "kalam_engine":
        return None
    return parts[1] if len(parts) > 1 else "kalam_engine"


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def _file_node(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    if len(relative.parts) == 1:
        return "kalam_engine" if relative.name == "__init__.py" else relative.stem
    return relative.parts[0]


def _imported_nodes(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "kalam_engine":  # from kalam_engine import handlers, TableId
                names = [f"kalam_engine.{alias.name}" if _is_module(alias.name)
                         else "kalam_engine" for alias in node.names]
        else:
            continue
        found.update(n for n in map(_node_of, names) if n is not None)
    return found


def import_graph() -> dict[str, set[str]]:
    """Node -> the nodes its modules import (itself left out)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        node = _file_node(path)
        targets = _imported_nodes(ast.parse(path.read_text(), str(path)))
        graph.setdefault(node, set()).update(targets - {node})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def _sources(root: Path) -> list[Path]:
    return [root] if root.is_file() else sorted(root.rglob("*.py"))


def long_functions(root: Path = PACKAGE) -> list[str]:
    """``path:line name (n lines)`` for every function longer than MAX_FUNCTION_LINES."""
    out = []
    for path in _sources(root):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - start + 1
                if length > MAX_FUNCTION_LINES:
                    name = path.relative_to(root.parent)
                    out.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return out


# --- the checks themselves, tried on graphs and sources made for them
def test_find_cycle_reports_a_cycle_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}) == ["y", "y2", "y"]


def test_type_checking_and_local_imports_count(tmp_path: Path) -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from kalam_engine.engine import Engine\n"
                     "def f():\n    from kalam_engine.handlers import table_lock\n"
                     "from kalam_engine import live, TableId\nimport os\n")
    assert _imported_nodes(tree) == {"engine", "handlers", "live", "kalam_engine"}
    assert _imported_nodes(ast.parse("from kalam_engine import lifecycle")) == {"lifecycle"}


def test_long_functions_counts_decorators_and_body(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (package / "m.py").write_text(f"@staticmethod\ndef long():\n{body}\n\n"
                                  "def short():\n    return 1\n")
    assert long_functions(package) == [f"pkg/m.py:2 long ({MAX_FUNCTION_LINES + 2} lines)"]


# --- kalam_engine itself
def test_engine_and_handlers_form_no_cycle() -> None:
    graph = import_graph()
    assert "engine" not in graph["handlers"], "handlers import the engine"
    assert "engine" not in graph["providers"], "providers import the engine"
    assert "engine" not in graph["live"] and "handlers" not in graph["live"]


def test_no_import_cycle_between_packages() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_model_is_a_leaf() -> None:
    assert import_graph()["model"] == set(), "kalam_engine.model imports another package"


def test_no_function_over_50_lines() -> None:
    assert long_functions() == []


@pytest.mark.parametrize("package", ["engine.py", "services.py", "handlers", "live",
                                     "providers"])
def test_no_function_over_50_lines_in_the_engine_core(package: str) -> None:
    assert long_functions(PACKAGE / package) == []


# --- the handler registry
_ONE_OF_EACH = [
    "SELECT 1", "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1 WHERE id = 1",
    "DELETE FROM t WHERE id = 1", "CREATE NAMESPACE n", "DROP NAMESPACE n",
    "ALTER NAMESPACE n SET OPTIONS (a = 'b')", "USE n", "SHOW NAMESPACES",
    "CREATE TABLE t (id INT PRIMARY KEY)", "DROP TABLE t", "ALTER TABLE t ADD COLUMN b INT",
    "SHOW TABLES", "DESCRIBE TABLE t", "SHOW STATS FOR TABLE t", "STORAGE FLUSH TABLE t",
    "STORAGE COMPACT TABLE t", "BEGIN", "CREATE USER u WITH PASSWORD 'secret12'",
    "ALTER USER u SET EMAIL 'u@x.org'", "DROP USER u", "EXECUTE AS USER u (SELECT 1)",
    "SUBSCRIBE TO SELECT * FROM n.t", "BACKUP DATABASE TO '/tmp/b'",
    "RESTORE DATABASE FROM '/tmp/b'", "EXPORT USER DATA", "SHOW EXPORT",
    "CREATE STORAGE s TYPE filesystem PATH 'p'", "DROP STORAGE s", "SHOW STORAGES",
    "STORAGE CHECK local",
]


@pytest.mark.parametrize("sql", _ONE_OF_EACH)
def test_every_statement_has_one_registered_handler(sql: str) -> None:
    from kalam_engine.handlers import HANDLERS
    from kalam_engine.sql.parser import parse_statement

    assert type(parse_statement(sql)) in HANDLERS


def test_every_alter_action_has_a_function() -> None:
    import typing

    from kalam_engine.handlers.alter_table import _ACTIONS
    from kalam_engine.sql import statements as st

    assert set(typing.get_args(st.AlterAction)) == set(_ACTIONS)


def test_a_statement_type_gets_one_handler() -> None:
    from kalam_engine.handlers import handles
    from kalam_engine.sql import statements as st

    with pytest.raises(RuntimeError, match="QueryStatement has two handlers"):
        handles(st.QueryStatement)(lambda services, stmt, ctx, params: None)


# --- the notebook layer sees the engine's public surface only
PUBLIC_ENGINE_MODULES = {"kalam_engine", "kalam_engine.sql.parsed"}  # + kalam_engine.model.*


def _engine_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kalam_engine"))
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("kalam_engine"):
            found.add(node.module)
    return found


def test_the_notebook_layer_imports_only_the_public_engine_surface() -> None:
    jupyter = PACKAGE.parent / "kalam_jupyter"
    internal = {f"{path.name}: {module}" for path in sorted(jupyter.rglob("*.py"))
                for module in _engine_imports(path)
                if module not in PUBLIC_ENGINE_MODULES
                and not module.startswith("kalam_engine.model")}
    assert internal == set()
