"""No import cycles among the package's modules (issue 16, item 5).

The import graph comes from ``tests/import_graph.py``: every module of ``caloclouds/``, ``flows/``
and ``projection/`` parsed with ``ast`` (nothing is imported), every import an edge, the ones
inside functions included (a lazy import hides a cycle from Python at import time but not from a
reader). The test fails on any cycle between files (a strongly connected component of two or more modules,
or a module importing itself) outside :data:`KNOWN_FILE_CYCLES`, and lists the cycles between the
top-level folders next to :data:`KNOWN_FOLDER_CYCLES`.

Inside the package (issue 27, item 3) every sub-package of ``caloclouds/`` (``caloclouds.io``,
``caloclouds.generation``, ...) and every top-level module (``caloclouds.showers``, ...) is one
node, and ``flows`` and ``projection`` one node each: the test fails on any cycle between them, lazy
imports included, on any import from the data layer (:data:`DATA_LAYER`) into the rest, on any
import that points up the layers of docs/architecture.md, and when that page no longer shows the
graph as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tests.import_graph import (
    DOC,
    LAYERS,
    PACKAGES,
    doc_text,
    import_graph,
    imports_of,
    layer_graph,
    layer_index,
    layer_of,
    strongly_connected,
    transitive_reduction,
)

#: Cycles between files that another part of issue 16 removes: each entry is the set of modules of
#: one strongly connected component, allowed while that work is open.
KNOWN_FILE_CYCLES: list[frozenset[str]] = [
    # voxel/features.py:voxel_space_scores imports FPD/KPD from evaluation/ while evaluation imports
    # the voxel features; the FPD/KPD voxel scoring moves into evaluation/ (issue 16, item 5, first half).
]

#: Cycles between top-level folders, each a set of folders: reported, not failed. ``projection``
#: uses the caloclouds data layer (Showers, io, errors), and caloclouds' pipelines project onto cells.
KNOWN_FOLDER_CYCLES: list[frozenset[str]] = [
    frozenset({"caloclouds", "projection"}),
    frozenset({"caloclouds", "flows"}),
]


#: The data layer: it reaches nothing outside itself (no model, no projection, no flows).
DATA_LAYER = frozenset({"caloclouds.showers", "caloclouds.io", "caloclouds.config", "caloclouds.errors"})


def _describe(component: set[str], graph: Mapping[str, Iterable[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in component)
    return f"{sorted(component)}: " + "; ".join(edges)


def folder_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    folders: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for a, targets in graph.items():
        for b in targets:
            if a.split(".")[0] != b.split(".")[0]:
                folders[a.split(".")[0]].add(b.split(".")[0])
    return folders


def test_the_graph_sees_every_module_and_lazy_imports() -> None:
    graph = import_graph()
    assert len(graph) > 100 and {"caloclouds.io.hdf5", "flows", "projection.project"} <= set(graph)
    # a relative import, a lazy import inside a function, and ``from package import module``
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"c"}, "d": {"a"}}) == [{"a", "b"}, {"c"}]
    assert (
        "caloclouds.io.writers" in graph["projection.files"]
        or "caloclouds.io.writers" in graph["caloclouds.io.formats"]
    )


def test_no_import_cycles_between_files() -> None:
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if frozenset(c) not in KNOWN_FILE_CYCLES]
    assert not cycles, "import cycles between files:\n" + "\n".join(_describe(c, graph) for c in cycles)


def test_known_cycles_still_exist() -> None:
    """An allow-list entry that no longer matches a cycle must be removed (the list stays honest)."""
    found = [frozenset(c) for c in strongly_connected(import_graph())]
    stale = [sorted(c) for c in KNOWN_FILE_CYCLES if c not in found]
    assert not stale, f"remove these fixed cycles from KNOWN_FILE_CYCLES: {stale}"


def test_cycles_between_folders_are_the_known_ones(capsys) -> None:  # noqa: ANN001
    folders = folder_graph(import_graph())
    cycles = [frozenset(c) for c in strongly_connected(folders)]
    with capsys.disabled():
        print("\nimport cycles between top-level folders:", [sorted(c) for c in cycles] or "none")
    pairs = {frozenset({a, b}) for c in cycles for a in c for b in c if a != b and b in folders[a] and a in folders[b]}
    new = [sorted(p) for p in pairs if p not in KNOWN_FOLDER_CYCLES]
    assert not new, f"new import cycles between folders: {new}"


def _edges_between(component: set[str], graph: Mapping[str, Iterable[str]]) -> str:
    return "; ".join(
        sorted(
            f"{a} -> {b}"
            for a in graph
            for b in graph[a]
            if layer_of(a) in component and layer_of(b) in component and layer_of(a) != layer_of(b)
        )
    )


def test_layer_graph_counts_lazy_imports(tmp_path) -> None:
    """A function-local import is an edge between folders (io.writers once reached the voxel model so)."""
    lazy = tmp_path / "writers.py"
    lazy.write_text("def open_writer():\n    from caloclouds.voxel.calochallenge import CaloChallengeWriter\n")
    edges = imports_of("caloclouds.io.writers", lazy, ["caloclouds.voxel.calochallenge", "caloclouds.voxel"])
    assert layer_graph({"caloclouds.io.writers": edges}) == {"caloclouds.io": {"caloclouds.voxel"}}
    assert layer_of("caloclouds.generation.calibration.points") == "caloclouds.generation"
    assert layer_of("caloclouds.showers") == "caloclouds.showers" and layer_of("projection.project") == "projection"


def test_no_import_cycles_between_folders_inside_the_package() -> None:
    graph = import_graph()
    layers = layer_graph(graph)
    assert {"caloclouds.io", "caloclouds.generation", "caloclouds.export", "caloclouds.voxel", "projection"} <= set(
        layers
    )
    cycles = strongly_connected(layers)
    assert not cycles, "import cycles between folders of caloclouds/ (lazy imports included):\n" + "\n".join(
        f"{sorted(c)}: {_edges_between(c, graph)}" for c in cycles
    )


def test_the_data_layer_imports_no_model() -> None:
    graph = import_graph()
    outside = sorted(
        f"{a} -> {b}" for a in graph for b in graph[a] if layer_of(a) in DATA_LAYER and layer_of(b) not in DATA_LAYER
    )
    assert not outside, "the data layer (showers, io, config, errors) imports from outside it:\n" + "\n".join(outside)


def test_every_import_points_down_the_layers() -> None:
    """Each folder-level node is in one layer of docs/architecture.md and imports only its own
    layer and the layers below (tests/import_graph.py LAYERS, bottom first)."""
    graph = import_graph()
    row = layer_index()
    unplaced = sorted(set(layer_graph(graph)) - set(row))
    assert not unplaced, f"folders or modules in no layer (add them to LAYERS in tests/import_graph.py): {unplaced}"
    upward = sorted(
        f"{a} ({LAYERS[row[layer_of(a)]][0]}) -> {b} ({LAYERS[row[layer_of(b)]][0]})"
        for a in graph
        for b in graph[a]
        if row[layer_of(a)] < row[layer_of(b)]
    )
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_transitive_reduction_keeps_only_the_edges_no_path_implies() -> None:
    graph = {"a": {"b", "c", "d"}, "b": {"c"}, "c": {"d"}, "d": set()}
    assert transitive_reduction(graph) == {"a": {"b"}, "b": {"c"}, "c": {"d"}, "d": set()}


def test_the_architecture_doc_shows_the_graph_as_it_is() -> None:
    text = DOC.read_text()
    assert doc_text(text, layer_graph(import_graph())) == text, (
        "docs/architecture.md no longer shows the import graph as it is: run `python -m tests.import_graph --write`"
    )
