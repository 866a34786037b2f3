"""The import graph of the package, from the source (``ast``; nothing is imported), and its layers.

Every module of ``caloclouds/``, ``flows/`` and ``projection/`` is parsed. Every ``import`` and
``from ... import`` is an edge, the ones inside functions included: a lazy import hides a cycle
from Python at import time but not from a reader. ``from a.b import c`` points at the module
``a.b.c`` when it exists, else at ``a.b``; relative imports are resolved.

At the folder level (:func:`layer_graph`) every sub-package of ``caloclouds/`` and every top-level
module of it is one node, and ``flows`` and ``projection`` one node each. :data:`LAYERS` names the
layers of docs/architecture.md, bottom first; ``tests/test_import_cycles.py`` checks that every
import points down the layers (or stays inside one) and that the doc shows them.

    python -m tests.import_graph     # from the repository root: the folder-level graph as markdown
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("caloclouds", "flows", "projection")

#: The layers of the package, bottom first: (name, folder-level nodes). A module may import its own
#: layer and the layers below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "data",
        (
            "caloclouds.showers",
            "caloclouds.io",
            "caloclouds.config",
            "caloclouds.errors",
            "caloclouds.direction",
            "caloclouds.rounding",
            "caloclouds.memory",
            "caloclouds",
        ),
    ),
    ("training skeleton", ("caloclouds.runcontrol", "caloclouds.training")),
    ("geometry and models", ("projection", "flows", "caloclouds.diffusion", "caloclouds.voxel")),
    ("generation and evaluation", ("caloclouds.generation", "caloclouds.evaluation")),
    ("built on generation", ("caloclouds.export", "caloclouds.production")),
    ("command line", ("caloclouds.cli",)),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the packages: dotted name -> file."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module of a ``from`` import in module ``name``."""
    if not node.level:
        return node.module or ""
    base = name.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package modules that module ``name`` imports, anywhere in its file."""
    known = set(known)
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, name, path.name == "__init__.py")
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target not in known:
                    target = source
                    while target and target not in known:
                        target = target.rpartition(".")[0]
                if target:
                    out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, found) for name, path in found.items()}


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative): the components with a cycle (two or more nodes, or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    out.append(component)
    return out


def layer_of(module: str) -> str:
    """The folder-level node of ``module``: ``caloclouds.<sub-package or module>``, else its top-level folder."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "caloclouds" else parts[0]


def layer_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """Edges between the nodes of :func:`layer_of`, with for each edge the module imports behind it."""
    layers: dict[str, set[str]] = {}
    for a, targets in graph.items():
        layers.setdefault(layer_of(a), set()).update(layer_of(b) for b in targets if layer_of(b) != layer_of(a))
    return layers


def layer_index() -> dict[str, int]:
    """Folder-level node -> its row in :data:`LAYERS` (0 = bottom)."""
    return {node: i for i, (_, nodes) in enumerate(LAYERS) for node in nodes}


def _path_of(node: str) -> str:
    """``caloclouds.io`` -> ``caloclouds/io/``, ``caloclouds.showers`` -> ``caloclouds/showers.py``."""
    if node in PACKAGES:
        return f"{node}/" if node != "caloclouds" else "caloclouds/__init__.py"
    path = node.replace(".", "/")
    return f"{path}/" if (ROOT / path).is_dir() else f"{path}.py"


def layers_markdown() -> str:
    """The table of :data:`LAYERS`, top first (what docs/architecture.md shows)."""
    rows = ["| layer | folders and modules |", "| --- | --- |"]
    for name, nodes in reversed(LAYERS):
        rows.append(f"| {name} | {', '.join(f'`{_path_of(n)}`' for n in nodes)} |")
    return "\n".join(rows)


def collapsed_graph(layers: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The folder-level graph with the data layer (the first of :data:`LAYERS`) as one node, ``data``."""
    data = set(LAYERS[0][1])
    name = lambda n: "data" if n in data else n  # noqa: E731
    out: dict[str, set[str]] = {}
    for a, targets in layers.items():
        out.setdefault(name(a), set()).update(name(b) for b in targets if name(b) != name(a))
    return out


def transitive_reduction(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """The edges of an acyclic ``graph`` that no longer path implies (what a drawing needs)."""

    def reach(node: str, seen: set[str]) -> set[str]:
        for child in graph.get(node, ()):
            if child not in seen:
                seen.add(child)
                reach(child, seen)
        return seen

    return {a: {b for b in graph[a] if not any(b in reach(c, set()) for c in graph[a] if c != b)} for a in graph}


def _row(node: str) -> int:
    return 0 if node == "data" else layer_index().get(node, len(LAYERS))


def graph_markdown(layers: Mapping[str, Iterable[str]]) -> str:
    """The folder-level graph as a table, top layer first: each node above the data layer, the
    nodes it imports directly, and those its imports do not already reach."""
    graph = collapsed_graph(layers)
    reduced = transitive_reduction(graph)
    label = lambda n: "data layer" if n == "data" else f"`{_path_of(n)}`"  # noqa: E731
    names = lambda nodes: ", ".join(label(t) for t in sorted(nodes, key=lambda t: (-_row(t), t))) or "-"  # noqa: E731
    lines = [
        "| folder or module | layer | imports (lazy imports included) | of which not reached through another |",
        "| --- | --- | --- | --- |",
    ]
    for node in sorted((n for n in graph if n != "data"), key=lambda n: (-_row(n), n)):
        layer = LAYERS[_row(node)][0] if _row(node) < len(LAYERS) else "(none)"
        lines.append(f"| {label(node)} | {layer} | {names(graph[node])} | {names(reduced[node])} |")
    return "\n".join(lines)


def graph_mermaid(layers: Mapping[str, Iterable[str]]) -> str:
    """A mermaid drawing of the collapsed graph (an arrow: imports), edges reduced, layers as boxes."""
    reduced = transitive_reduction(collapsed_graph(layers))
    ident = lambda n: n.replace("caloclouds.", "").replace(".", "_")  # noqa: E731
    lines = ["flowchart TB"]
    for i, (name, nodes) in reversed(list(enumerate(LAYERS))):
        present = ["data"] if i == 0 else [n for n in nodes if n in reduced]
        lines.append(f'    subgraph L{i}["{name}"]')
        for node in present:
            text = "showers, io, config, errors, ..." if node == "data" else _path_of(node)
            lines.append(f'        {ident(node)}["{text}"]')
        lines.append("    end")
    for a in sorted(reduced, key=lambda n: (-_row(n), n)):
        for b in sorted(reduced[a], key=lambda n: (-_row(n), n)):
            lines.append(f"    {ident(a)} --> {ident(b)}")
    return "\n".join(lines)


DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- import graph: generated by `python -m tests.import_graph --write`; do not edit by hand -->"
END = "<!-- end of the generated import graph -->"


def doc_section(folder_level: Mapping[str, Iterable[str]]) -> str:
    """What docs/architecture.md shows between :data:`BEGIN` and :data:`END`."""
    mermaid = f"```mermaid\n{graph_mermaid(folder_level)}\n```"
    return "\n\n".join([BEGIN, layers_markdown(), mermaid, graph_markdown(folder_level), END])


def doc_text(text: str, folder_level: Mapping[str, Iterable[str]]) -> str:
    """``text`` (the doc) with its generated section replaced by the graph as it is now."""
    before, found, rest = text.partition(BEGIN)
    if not found or END not in rest:
        raise ValueError(f"{DOC.name} has no generated section ({BEGIN!r} ... {END!r})")
    return before + doc_section(folder_level) + rest.partition(END)[2]


if __name__ == "__main__":
    import sys

    graph = layer_graph(import_graph())
    if sys.argv[1:] == ["--write"]:
        DOC.write_text(doc_text(DOC.read_text(), graph))
        print(f"wrote the import graph into {DOC}")
    else:
        print(doc_section(graph))
