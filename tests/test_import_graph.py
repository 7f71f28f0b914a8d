"""No import circles inside sessionctl: arrows run one way (cli → features → core → primitives).

The graph is read from the source with ``ast``, so it sees every import a module can make: at
module level, inside functions (the lazy imports that keep start-up fast) and under
``if TYPE_CHECKING:`` (a circle in the types is a circle in the design). An edge ``a → b`` means
module ``a`` imports module ``b`` (``from pkg import name`` counts as ``pkg.name`` when that is a
module, else as ``pkg``). A circle fails with the modules in it and the lines that close it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root/package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path], package: str) -> dict[str, int]:
    """The package's modules ``name`` imports, each with the line of its first import."""

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    is_package = path.name == "__init__.py"
    out: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [owner(a.name) for a in node.names if a.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                full = f"{base}.{node.module}" if node.module else base
            else:
                full = node.module or ""
            if full.split(".")[0] != package:
                continue
            for alias in node.names:
                sub = f"{full}.{alias.name}"
                targets.append(sub if sub in known else owner(full))
        for target in targets:
            if target is not None and target != name:
                out.setdefault(target, node.lineno)
    return out


def graph(root: Path, package: str) -> dict[str, dict[str, int]]:
    known = modules(root, package)
    return {name: imports(name, path, known, package) for name, path in known.items()}


def circles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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


def describe(component: list[str], edges: dict[str, dict[str, int]]) -> str:
    arrows = [
        f"{a} → {b} (line {edges[a][b]})" for a in component for b in component if b in edges[a]
    ]
    return "; ".join(arrows)


def test_sessionctl_has_no_import_circles() -> None:
    edges = graph(REPO, "sessionctl")
    assert len(edges) > 50, "the walk found too few modules"  # guards a vacuous pass
    found = circles(edges)
    assert not found, "import circles: " + " | ".join(describe(c, edges) for c in found)


def test_the_graph_sees_lazy_and_type_only_imports() -> None:
    edges = graph(REPO, "sessionctl")
    # A function-level import (cli modules import the core lazily) and a relative-free
    # `from package import module` both become edges.
    assert "sessionctl.campaign.store" in edges["sessionctl.cli.prompt"]
    assert "sessionctl.render" in edges["sessionctl.campaign.store"]


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_circle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/b.py": "def f():\n    from ..a import x\n",
            "pkg/b.py": "def g():\n    import pkg.sub.b\n",
            "pkg/c.py": "import os\nfrom pkg import a\n",
        },
    )
    edges = graph(tmp_path, "pkg")
    assert circles(edges) == [["pkg.a", "pkg.b", "pkg.sub.b"]]
    assert "pkg.a → pkg.b (line 1)" in describe(["pkg.a", "pkg.b", "pkg.sub.b"], edges)


def test_a_type_only_circle_is_found_and_one_way_arrows_pass(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/loop.py": "from pkg.settle import finish\n",
            "pkg/settle.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.loop import Loop\n"
            ),
        },
    )
    assert circles(graph(tmp_path, "pkg")) == [["pkg.loop", "pkg.settle"]]
    (tmp_path / "pkg" / "settle.py").write_text("import typing\n")
    assert circles(graph(tmp_path, "pkg")) == []
