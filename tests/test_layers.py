"""The package's layering: no import circle, pure drawing, no printing below the CLI, and no
function or class past its length budget.  (The floors themselves are import-linter's
contracts in pyproject.toml, which ``make test`` runs first.)

The scan is the one of the design review (§5): every relative import between modules of
``minigraph/``, then the strongly connected components of that graph.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minigraph"


def _modules() -> dict:
    return {p: ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
            .removesuffix(".__init__") for p in PACKAGE.rglob("*.py")}


def import_graph() -> nx.DiGraph:
    files = _modules()
    mods, g = set(files.values()), nx.DiGraph()
    for path, mod in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                for a in node.names:
                    t = f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target
                    if t in mods and t not in (mod, "minigraph"):
                        g.add_edge(mod, t)
    return g


def test_no_import_circle():
    circles = [sorted(c) for c in nx.strongly_connected_components(import_graph())
               if len(c) > 1]
    assert circles == []


def test_drawing_runs_nothing():
    """render/ arranges and formats: it never imports the engine, training, the API or the CLI."""
    g = import_graph()
    allowed = re.compile(r"minigraph\.(render(\..*)?|errors|text|limits|graph|ops(\..*)?)$")
    running = re.compile(r"minigraph\.(engine|kernels|train|api|cli)(\..*)?$")
    for mod in [m for m in g if m.startswith("minigraph.render")]:
        for target in g.successors(mod):
            assert allowed.match(target), f"{mod} imports {target}"
        for target in nx.descendants(g, mod):
            assert not running.match(target), f"{mod} reaches {target}"


def test_no_module_of_the_package_prints():
    """The command line (cli/) owns the terminal; the library returns text or data."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{path.name}:{node.lineno} prints"


# ==== length budgets (as tinygrad's sz.py keeps its line count) ==================================

ROOT = PACKAGE.parent
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 200


def python_files():
    return sorted(p for pkg in ("minigraph", "cli") for p in (ROOT / pkg).rglob("*.py"))


def lengths(kind):
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, kind):
                yield path.relative_to(ROOT), node.name, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("kind, budget", [((ast.FunctionDef, ast.AsyncFunctionDef),
                                           MAX_FUNCTION_LINES), (ast.ClassDef, MAX_CLASS_LINES)],
                         ids=["functions", "classes"])
def test_functions_and_classes_stay_within_budget(kind, budget):
    long = [f"{path}: {name} ({n} lines)" for path, name, n in lengths(kind) if n > budget]
    assert not long, f"over {budget} lines: " + "; ".join(long)


def test_every_package_is_installed():
    """A plain ``pip install .`` installs exactly the packages pyproject.toml lists."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "minigraph").rglob("__init__.py")} | {"minigraph.cli"}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
