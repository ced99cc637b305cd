"""The house's order, as docs/architecture.md draws it, checked on the source.

The rooms table of docs/architecture.md is the map: every module of the package lives in
one room, and imports (any, also inside functions) only run to the same room or the rooms
below it. The one import that runs upward is the registry pattern: the encoders and
decoders register themselves in ``models/registry.py``. No two modules import each other,
directly or through others, except a units package and its own modules (the package
imports its modules so that they register).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "ciaosr"
REGISTRY = "ciaosr.models.registry"
UNIT_PACKAGES = ("ciaosr.encoders", "ciaosr.decoders")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target, *(f"{target}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


def rooms() -> list[list[str]]:
    """The first column of the rooms table, top to bottom, as module prefixes."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## The rooms", 1)[1].split("\n\n", 2)[2]  # after the sentence above the table
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    out = []
    for row in rows:
        cell = row.split("|")[1]
        names = re.findall(r"`([^`]+)`", cell)
        out.append(["ciaosr." + n.removesuffix("/").removesuffix(".py").replace("/", ".") for n in names])
    return out


def room_of(name: str, table: list[list[str]]) -> int | None:
    """The row of the longest prefix that holds ``name``."""
    best = None
    for i, row in enumerate(table):
        for prefix in row:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    return None if best is None else best[0]


def test_every_module_has_a_room_on_the_map():
    table = rooms()
    assert len(table) >= 8
    lost = [m for m in modules() if m not in ("ciaosr", "ciaosr.__main__") and room_of(m, table) is None]
    assert not lost, f"modules in no room of docs/architecture.md: {lost}"


def test_imports_only_run_downwards():
    table, known = rooms(), modules()
    upward = []
    for name, path in known.items():
        here = room_of(name, table)
        if here is None:
            continue
        for target in imports(name, path, known):
            there = room_of(target, table)
            registering = target == REGISTRY and name.startswith(UNIT_PACKAGES)
            if there is not None and there < here and not registering:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports that run up the rooms of docs/architecture.md:\n" + "\n".join(sorted(upward))


def test_no_import_circles_beyond_the_registry_pattern():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    circles = []
    for group in strongly_connected(graph):
        package = next((p for p in UNIT_PACKAGES if p in group), None)
        if package and all(m == package or m.startswith(package + ".") for m in group):
            continue  # a units package importing its modules, which import it back
        circles.append(sorted(group))
    assert not circles, f"modules that import each other: {circles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's groups of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

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
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_the_checks_see_a_circle_and_an_upward_import():
    """The checks themselves: a made-up circle and a made-up upward import are found."""
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) == [{"a", "b"}]
    table = rooms()
    assert room_of("ciaosr.cli.upscale", table) < room_of("ciaosr.geometry", table)
    assert room_of("ciaosr.data.sets.catalog", table) == room_of("ciaosr.data", table)
