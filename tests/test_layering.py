"""The package layering, read off every import statement (lazy ones inside functions too).

Library code never imports a pipeline (``gnn.training``, ``assistant.training``, ``bench``); a layer
never imports one above it; no two modules import each other, directly or round a longer cycle.
Only the entry points (the ``mad`` command line, ``python -m assistant``, ``app.py``) may reach
everything, pipelines included: ``mad train ...`` starts them.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# low to high; a module is in the layer of the longest prefix that names it
LAYERS = [
    ("gnn.errors", "gnn.fileio", "gnn.registry"),
    ("gnn.ir",),  # the graph, the op vocabulary and op families
    ("gnn.validate",),
    ("gnn.importers", "gnn.exporters"),
    ("gnn.sources",),  # a source string -> the importer or exporter for it
    ("gnn.vocab",),  # the vocabularies the graph model predicts
    ("gnn.nn",),  # the graph model: tokens, network, heads, checkpoint
    ("gnn.roles",),  # labelers: rules, the learned one (over gnn.nn), rebuilt structure
    ("gnn.analysis",),  # summaries, attention heads
    ("gnn.edits",),
    ("assistant",),  # facts, prompts, graph tokens, the language model, interpretation
    ("assistant.ui",),  # the chat session and its graph view
]
PIPELINES = ("gnn.training", "assistant.training", "assistant.search", "bench")
ENTRY_POINTS = ("assistant.ui.cli", "assistant.__main__", "app")


def sources() -> dict[str, str]:
    """Module name -> source of every module of the packages, the benchmarks and the app."""
    files = [*ROOT.glob("gnn/**/*.py"), *ROOT.glob("assistant/**/*.py"), *ROOT.glob("bench/**/*.py"), ROOT / "app.py"]
    out = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path.read_text()
    return out


def imports(modules: dict[str, str]) -> dict[str, dict[str, int]]:
    """Module -> {imported module of ours: line}, lazy imports included."""
    found: dict[str, dict[str, int]] = {}
    for name, text in modules.items():
        package = name if f"{name}.__init__" in modules or _is_package(name) else name.rpartition(".")[0]
        edges = found.setdefault(name, {})
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # importing a.b.c runs a.b's __init__ first: an import of the package too
                for reached in _packages_of(target):
                    if reached != name and not name.startswith(reached + "."):
                        edges.setdefault(reached, node.lineno)
    return found


def _packages_of(name: str) -> list[str]:
    """``name`` and the packages above it that are ours (``gnn.roles.rules``: it, ``gnn.roles``)."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts), 1, -1)]


def _is_package(name: str) -> bool:
    return (ROOT / name.replace(".", "/") / "__init__.py").exists()


def _prefix(name: str, prefixes) -> str | None:
    hits = [p for p in prefixes if name == p or name.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def layer(name: str) -> int | None:
    best = _prefix(name, [p for group in LAYERS for p in group])
    return None if best is None else next(i for i, group in enumerate(LAYERS) if best in group)


def violations(modules: dict[str, str]) -> list[str]:
    """Every import against the layering, and every cycle, as one line each."""
    graph = imports(modules)
    out = []
    for name, edges in sorted(graph.items()):
        entry = _prefix(name, ENTRY_POINTS) is not None
        pipeline = _prefix(name, PIPELINES) is not None
        for target, line in sorted(edges.items()):
            if entry:
                continue
            if _prefix(target, ENTRY_POINTS):
                out.append(f"{name}:{line} imports the entry point {target}")
            elif _prefix(target, PIPELINES) and not pipeline:
                out.append(f"{name}:{line} (library) imports the pipeline {target}")
            elif not pipeline and not _prefix(target, PIPELINES):
                mine, theirs = layer(name), layer(target)
                if mine is None:
                    out.append(f"{name} is in no layer of tests/test_layering.py")
                elif theirs is not None and theirs > mine:
                    out.append(f"{name}:{line} imports {target}, a layer above it "
                               f"({', '.join(LAYERS[theirs])} over {', '.join(LAYERS[mine])})")
    out += [f"import cycle: {' -> '.join(c + [c[0]])}" for c in cycles(graph)]
    return sorted(set(out))


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a list of modules."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_tree_keeps_its_layering():
    assert violations(sources()) == []


@pytest.mark.parametrize("module, line, expected", [
    ("gnn.edits.engine", "from gnn.training.train import train", "gnn.edits.engine:1 (library) imports the pipeline gnn.training.train"),
    ("gnn.ir.graph", "def f():\n    from gnn.roles import label", "gnn.ir.graph:2 imports gnn.roles, a layer above it"),
    ("assistant.interpret", "from assistant.ui.cli import main", "assistant.interpret:1 imports the entry point assistant.ui.cli"),
    ("gnn.ir.hierarchy", "from gnn.ir import serialize", "import cycle:"),
])
def test_a_bad_import_is_named(module, line, expected):
    modules = sources()
    modules[module] = line + "\n" + modules[module]
    if expected == "import cycle:":  # serialize already imports hierarchy's package; make the loop explicit
        modules["gnn.ir.serialize"] = "from gnn.ir import hierarchy\n" + modules["gnn.ir.serialize"]
    found = violations(modules)
    assert any(v.startswith(expected) for v in found), found
    assert violations(sources()) == []  # the tree itself is untouched
