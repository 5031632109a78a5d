"""The shape of the code: the packages of trapline import each other without a cycle,
and the project's own modules are imported at module level, not inside functions
(except where that keeps an optional dependency optional).

A package is the first component under ``trapline`` (``trapline.pipeline``,
``trapline.storage``, ...); a top-level module (``trapline.records``,
``trapline.image``, ...) is a node of its own, and so is ``trapline`` itself (its
``__init__``). Imports inside one package are not arrows."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "trapline"

# Imports of the project inside a function body, each keeping an optional dependency
# optional: (importing module, imported module) -> why it is not at module level.
FUNCTION_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    ("trapline.channels", "trapline.channels.redis"): "redis (extra 'redis')",
    ("trapline.commands.serve", "trapline.web"): "fastapi, uvicorn, jinja2 (extra 'web')",
    # The package facade: trapline.open loads the run reader (pandas, SQLAlchemy, about
    # a second) when called, not with every import of a trapline module.
    ("trapline", "trapline.api"): "the run reader's import time",
}


@dataclass(frozen=True)
class Import:
    """One ``import``/``from ... import`` of a trapline module."""

    module: str  # the importing module, e.g. trapline.pipeline.decide
    target: str  # the imported module, e.g. trapline.pipeline.geometry
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (SRC / rel).with_suffix(".py").is_file() or (SRC / rel / "__init__.py").is_file()


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module name a ``from X import ...`` names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The trapline modules an import statement loads (``from trapline import records``
    loads trapline.records; ``from trapline import Image``, trapline itself)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = _resolve(node, module, is_package)
        names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base
                 for a in node.names]
    return sorted({n for n in names if n == "trapline" or n.startswith("trapline.")})


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _walk(child, inner)


def project_imports() -> list[Import]:
    """Every import of a trapline module in src/trapline."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        module = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        for node, in_function in _walk(tree, False):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, module, path.name == "__init__.py"):
                    found.append(Import(module, target, node.lineno, in_function))
    return found


def package_of(module: str) -> str:
    """The graph node of a module: trapline.<first component>."""
    return ".".join(module.split(".")[:2])


def package_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Package -> the packages it imports (itself left out)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        a, b = package_of(imp.module), package_of(imp.target)
        graph.setdefault(a, set())
        graph.setdefault(b, set())
        if a != b:
            graph[a].add(b)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _why(imports: list[Import], a: str, b: str) -> list[str]:
    return [f"{i.module}:{i.line} -> {i.target}" for i in imports
            if package_of(i.module) == a and package_of(i.target) == b]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_walk_tells_function_level_from_module_level() -> None:
    tree = ast.parse("import trapline.records\ndef f():\n    if x:\n"
                     "        from trapline import image\n")
    found = [(n.lineno, f) for n, f in _walk(tree, False) if isinstance(n, ast.Import
                                                                      | ast.ImportFrom)]
    assert found == [(1, False), (4, True)]


def test_package_import_graph_has_no_cycle() -> None:
    imports = project_imports()
    graph = package_graph(imports)
    assert len(graph) > 10  # the scan found the packages
    cycle = find_cycle(graph)
    if cycle:
        arrows = [f"  {a} -> {b}: " + "; ".join(_why(imports, a, b))
                  for a, b in zip(cycle, cycle[1:], strict=False)]
        raise AssertionError("package import cycle " + " -> ".join(cycle) + "\n"
                             + "\n".join(arrows))


def test_project_modules_are_imported_at_module_level() -> None:
    imports = [i for i in project_imports() if i.in_function]
    pairs = {(i.module, i.target) for i in imports}
    unexpected = sorted(f"{i.module}:{i.line} imports {i.target} in a function"
                        for i in imports if (i.module, i.target) not in FUNCTION_IMPORTS_ALLOWED)
    assert not unexpected, "\n".join(unexpected)
    stale = sorted(set(FUNCTION_IMPORTS_ALLOWED) - pairs)
    assert not stale, f"allowed but no longer imported in a function: {stale}"
    assert all(FUNCTION_IMPORTS_ALLOWED[p] for p in pairs)


def test_cli_help_imports_no_command_module() -> None:
    """``trapline --help`` lists the commands without importing them (each imports what
    it runs at module level: the pipeline, the database, ...)."""
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "trapline.cli", "--help"],
                          capture_output=True, text=True, env=env, check=True)
    assert "run " in done.stdout and "serve " in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "trapline.cli" in imported or "trapline.errors" in imported
    heavy = sorted(m for m in imported if m.startswith(
        ("trapline.commands.", "trapline.run", "trapline.storage", "trapline.pipeline",
         "sqlalchemy", "pandas")))
    assert not heavy, heavy
