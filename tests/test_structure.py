"""The code's shape, checked: no import cycles between cnnzoo's modules, no function over 80 lines,
no module over 400 lines, and the torch-free parts stay torch-free. Read statically (ast), so it
checks every module, imports inside functions included, without running any of them. Style that a
linter can check (unused names, import order, line length) is ruff's: `make lint`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def _imported_modules(name: str, tree: ast.AST) -> set[str]:
    """The cnnzoo modules that ``name`` imports anywhere, except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            # `from cnnzoo.x import y` imports the module cnnzoo.x.y when there is one
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {module for module in found if module in MODULES and module != name}


def _import_graph() -> dict[str, set[str]]:
    return {name: _imported_modules(name, ast.parse(path.read_text())) for name,
            path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    return components


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules():
    assert _cycles(_import_graph()) == []


def test_no_function_is_longer_than_80_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


def test_no_module_is_longer_than_400_lines():
    long = [f"{name}: {n} lines" for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert long == []


def test_data_flows_down_never_back_up():
    """models/, layers/, inspect/ and data/ never import the engine or the commands; the engine
    never imports the commands; visualize/ never imports the explorer (serve/), which never imports
    the commands; nothing below the CLI imports it."""
    graph = _import_graph()
    layers = {"cnnzoo.models": ("cnnzoo.engine", "cnnzoo.commands", "cnnzoo.cli", "cnnzoo.inspect",
                                "cnnzoo.serve"),
              "cnnzoo.layers": ("cnnzoo.engine", "cnnzoo.commands", "cnnzoo.cli", "cnnzoo.inspect",
                                "cnnzoo.serve"),
              "cnnzoo.data": ("cnnzoo.engine", "cnnzoo.commands", "cnnzoo.cli", "cnnzoo.models",
                              "cnnzoo.serve"),
              "cnnzoo.engine": ("cnnzoo.commands", "cnnzoo.cli", "cnnzoo.serve"),
              # the explorer (cnnzoo serve) sits beside the commands: it uses the visualisations,
              # never the reverse
              "cnnzoo.visualize": ("cnnzoo.commands", "cnnzoo.cli", "cnnzoo.serve"),
              "cnnzoo.serve": ("cnnzoo.commands", "cnnzoo.cli")}
    upward = [f"{source} imports {target}" for source,
              targets in graph.items() for target in targets for below, above in layers.items()
              if source.startswith(below) and target.startswith(above)]
    assert upward == []


def test_only_the_package_root_imports_the_public_api():
    """cnnzoo.api sits beside the commands, for Python callers: nothing inside cnnzoo builds on
    it."""
    graph = _import_graph()
    assert [source for source,
            targets in graph.items() if "cnnzoo.api" in targets and source != "cnnzoo"] == []


@pytest.mark.parametrize("module", ["cnnzoo", "cnnzoo.version", "cnnzoo.errors", "cnnzoo.cli",
                                    "cnnzoo.engine.config",
                                    "cnnzoo.serve", "cnnzoo.serve.runs", "cnnzoo.serve.limits",
                                    "cnnzoo.rundir", "cnnzoo.files"])
def test_light_modules_do_not_import_torch(module):
    code = f"import {module}, sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_public_api_imports_torch_only_when_a_name_needs_it():
    """``import cnnzoo``, ``dir(cnnzoo)`` and its torch-free names load no torch (PEP 562's lazy
    ``__getattr__``); the first model function does."""
    code = ("import cnnzoo, sys; dir(cnnzoo); cnnzoo.__version__, cnnzoo.CnnzooError; assert "
            "'torch' not in sys.modules, 'torch was imported'; cnnzoo.create_model; assert "
            "'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_cnnzoo_leaves_matplotlib_backend_alone():
    """Training draws its figures without switching the process's matplotlib backend (a notebook's
    stays)."""
    code = ("import matplotlib; matplotlib.use('svg'); import cnnzoo.engine.train, "
            "cnnzoo.engine.plots, cnnzoo.engine.outputs; assert matplotlib.get_backend().lower() "
            "== 'svg', matplotlib.get_backend()")
    subprocess.run([sys.executable, "-c", code], check=True)
