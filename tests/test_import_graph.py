"""Imports run one way: the envelope package's module graph has no cycles.

The graph is read from the source with :mod:`ast`, not from a running
interpreter, so it sees every import a module can make: at the top, inside
functions (lazy imports), and under ``if TYPE_CHECKING:`` (a type-only import
is still a dependency a reader must follow, and a circle mypy has to untie).

The rules the graph applies:

- relative imports are resolved against the importing module's package;
- ``from P import x`` is an edge to the module ``P.x`` when ``x`` is a
  submodule, and to ``P`` (its ``__init__``) when ``x`` is a name defined there;
- ``import P.Q`` is an edge to ``P.Q`` (a package means its ``__init__``);
- importing ``P.x`` from outside ``P`` runs ``P/__init__`` first, so what that
  ``__init__`` imports at load time (outside functions) is imported too: an
  edge from the importer to each of those modules (``via P``).  From inside
  ``P`` it is not: ``P/__init__`` has already run;
- a module-level table whose every value names a module of the package
  (relative to the table's package, or absolute) is imports by name: the lazy
  re-exports of ``envelope/__init__.py`` (``_LAZY``), the command modules of
  ``cli/main.py`` (``COMMAND_MODULES``), the keyring schemes of
  ``keyrings/registry.py`` (``_BUILTIN``).  So a submodule importing a name
  from the package ``__init__``, or a command module importing ``main``,
  closes a circle and is caught.

Other imports by computed name are not seen.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from pathlib import Path

import envelope

PACKAGE_ROOT = Path(envelope.__file__).resolve().parent

Graph = dict[str, dict[str, set[str]]]  # module -> imported module -> names imported


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under *root*, by dotted name (a package is its ``__init__``)."""
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join([package, *parts])] = path
    return names


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names before its ``import``."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts.pop()
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def _import_tables(tree: ast.Module, package: str, modules: dict[str, Path]) -> Iterator[tuple[str, str]]:
    """Module-level dicts whose every value names a module (relative to *package*, or absolute)."""
    def named(value: ast.expr | None) -> str | None:
        if not isinstance(value, ast.Constant) or not isinstance(value.value, str):
            return None
        for name in (f"{package}.{value.value}", value.value):
            if name in modules:
                return name
        return None

    for stmt in tree.body:
        if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or not isinstance(stmt.value, ast.Dict):
            continue
        pairs = [(key, named(value)) for key, value in zip(stmt.value.keys, stmt.value.values)]
        if pairs and all(isinstance(k, ast.Constant) and isinstance(k.value, str) and target for k, target in pairs):
            for key, target in pairs:
                yield target, key.value  # type: ignore[misc, union-attr]


def _imports(module: str, is_package: bool, node: ast.AST, modules: dict[str, Path]) -> Iterator[tuple[str, str]]:
    """``(module imported, name imported)`` for one ``Import`` or ``ImportFrom`` node."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            target = alias.name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            yield target, alias.name
    elif isinstance(node, ast.ImportFrom):
        base = _base(module, is_package, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield (sub if sub in modules else base), alias.name


def _load_time_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes a module runs when it is imported: everything outside function bodies."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str) -> Graph:
    modules = module_names(root, package)
    graph: Graph = {name: {} for name in modules}
    trees = {name: ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for name, path in modules.items()}
    # What each package's __init__ imports while it loads: run by any import of a submodule from outside.
    on_load = {name: {t for node in _load_time_nodes(trees[name])
                      for t, _ in _imports(name, True, node, modules) if t in modules and t != name}
               for name, path in modules.items() if path.name == "__init__.py"}

    def edge(src: str, dst: str, name: str) -> None:
        if dst not in modules or dst == src:
            return
        graph[src].setdefault(dst, set()).add(name)
        parent = dst.rpartition(".")[0]
        while parent:
            if not src.startswith(parent + ".") and src != parent:
                for target in on_load.get(parent, ()):
                    if target != src:
                        graph[src].setdefault(target, set()).add(f"via {parent}")
            parent = parent.rpartition(".")[0]

    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(trees[module]):
            for target, name in _imports(module, is_package, node, modules):
                edge(module, target, name)
        package = module if is_package else module.rpartition(".")[0]
        for target, name in _import_tables(trees[module], package, modules):
            edge(module, target, name)
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components with more than one module: each holds at least one circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def circles(graph: Graph) -> list[str]:
    """Each circle, as ``a -(names)-> b -(names)-> a``: the shortest one through each module of each component."""
    lines: dict[tuple[str, ...], str] = {}
    for component in strongly_connected(graph):
        inside = set(component)
        for start in component:
            previous: dict[str, str] = {}
            frontier = [start]
            while frontier and start not in previous:
                following = []
                for v in frontier:
                    for w in sorted(graph[v]):
                        if w in inside and w not in previous:
                            previous[w] = v
                            following.append(w)
                frontier = following
            path = [start]
            while True:
                path.append(previous[path[-1]])
                if path[-1] == start:
                    break
            path.reverse()
            text = path[0]
            for a, b in zip(path, path[1:]):
                text += f" -({', '.join(sorted(graph[a][b]))})-> {b}"
            rotated = min(range(len(path) - 1), key=lambda i: path[i])  # one spelling per circle
            key = tuple(path[rotated:-1] + path[:rotated])
            lines.setdefault(key, text)
    return [lines[key] for key in sorted(lines)]


def test_the_envelope_package_has_no_import_circles() -> None:
    started = time.process_time()  # CPU time: a shared, busy machine must not make it fail
    graph = import_graph(PACKAGE_ROOT, "envelope")
    found = circles(graph)
    assert time.process_time() - started < 3
    assert len(graph) > 100  # the whole package was read
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_graph_sees_type_checking_lazy_and_package_imports(tmp_path: Path) -> None:
    """The checker must be able to fail: circles hidden in the usual places are found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('_LAZY = {"Thing": "sub.thing"}\n')
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "thing.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..other import Other\n")
    (pkg / "other.py").write_text("def f():\n    from .sub import thing\n")
    (pkg / "uses_init.py").write_text("from . import Thing\n")
    (pkg / "plain.py").write_text("import pkg.uses_init\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.plain"] == {"pkg.uses_init": {"pkg.uses_init"}}
    assert circles(graph) == ["pkg.other -(thing)-> pkg.sub.thing -(Other)-> pkg.other"]
    (pkg / "__init__.py").write_text('_LAZY = {"Thing": "uses_init"}\n')
    assert "pkg -(Thing)-> pkg.uses_init -(Thing)-> pkg" in circles(import_graph(pkg, "pkg"))
    (pkg / "sub" / "main.py").write_text('COMMANDS = {"run": "thing", "x": "pkg.other"}\n')
    (pkg / "other.py").write_text("from .sub.main import COMMANDS\n")  # a command module importing main
    assert "pkg.other -(COMMANDS)-> pkg.sub.main -(x)-> pkg.other" in circles(import_graph(pkg, "pkg"))


def test_the_graph_follows_a_package_init_run_by_a_submodule_import(tmp_path: Path) -> None:
    """``import P.base`` runs ``P/__init__``: a module it imports at load time that imports back is a circle."""
    pkg = tmp_path / "pkg"
    (pkg / "rings").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "rings" / "__init__.py").write_text("from .base import Ring\nfrom .registry import resolve\n")
    (pkg / "rings" / "base.py").write_text("class Ring: ...\n")
    (pkg / "rings" / "registry.py").write_text("from ..cache import Cache\n")
    (pkg / "cache.py").write_text("from .rings.base import Ring\n")
    assert circles(import_graph(pkg, "pkg")) == [
        "pkg.cache -(via pkg.rings)-> pkg.rings.registry -(Cache)-> pkg.cache"]
    (pkg / "rings" / "registry.py").write_text("def later():\n    from ..cache import Cache\n")
    assert circles(import_graph(pkg, "pkg")) == [
        "pkg.cache -(via pkg.rings)-> pkg.rings.registry -(Cache)-> pkg.cache"]  # lazy imports count too
    (pkg / "rings" / "__init__.py").write_text("def later():\n    from .registry import resolve\n")
    assert circles(import_graph(pkg, "pkg")) == []  # an __init__'s lazy import does not run with base
