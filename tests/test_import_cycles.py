"""No import circle among rankkit's modules (the library and its CLI, installed as rankkit.cli).

Every `import rankkit...` and `from rankkit... import` statement counts: at module top level,
under `if TYPE_CHECKING:`, and inside functions, since a circle that only a function-level import
closes is still two modules each needing the other. A circle is reported as its modules with the
edges between them, so the fix (move the name that sits a floor too high) is plain to see."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"rankkit": REPO / "rankkit", "rankkit.cli": REPO / "cli"}


def module_files() -> dict[str, Path]:
    """{dotted module name: file} for every module of rankkit and rankkit.cli."""
    modules: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The rankkit modules that module `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:  # `from rankkit.data import corpus`
                    found.add(f"{source}.{alias.name}")
                elif source in modules:
                    found.add(source)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    return "; ".join(f"{name} -> {', '.join(sorted(graph[name] & members))}" for name in component)


def test_the_checker_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "m.py"
    module.write_text("from . import n\n\ndef f():\n    from pkg.o import thing\n    import pkg.p\n")
    modules = {
        "pkg": tmp_path / "pkg" / "__init__.py",
        "pkg.m": module,
        "pkg.n": module,
        "pkg.o": module,
        "pkg.p": module,
    }
    assert imported_modules("pkg.m", module, modules) == {"pkg.n", "pkg.o", "pkg.p"}


def test_no_import_circle_among_rankkit_modules():
    graph = import_graph()
    assert "rankkit.data.corpus" in graph and "rankkit.cli.app" in graph  # both trees were walked
    assert graph["rankkit.serve.engine"], "the walk found no imports"
    found = cycles(graph)
    assert not found, "import circles (move the name that sits a floor too high):\n" + "\n".join(
        describe(graph, component) for component in found
    )
