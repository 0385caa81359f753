"""Composites derived from module paths, and repeated blocks.

Like Model Explorer's namespaces or Graphbook's composite operations, a
:class:`Composite` is a module path (``model.layers.3.self_attn``) seen as a
sub-graph: its nodes, its child composites, the values that cross its boundary,
its module class and parameter count.  Sibling composites named
``<prefix>.<int>`` with one module class (``model.layers.0`` ...
``model.layers.31``) form a :class:`Repeat`.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

_INDEX = re.compile(r"^(.*)\.(\d+)$")


def parent_path(path: str) -> str | None:
    if path == "":
        return None
    return path.rpartition(".")[0]


def ancestors(path: str) -> list[str]:
    """``a.b.c`` -> ``["", "a", "a.b", "a.b.c"]``."""
    if not path:
        return [""]
    parts = path.split(".")
    return [""] + [".".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass
class Composite:
    path: str
    module_class: str
    children: list[str] = field(default_factory=list)  # child composite paths
    nodes: list[str] = field(default_factory=list)  # ids of every node inside, nested ones too
    inputs: list[str] = field(default_factory=list)  # activations/user inputs read from outside
    outputs: list[str] = field(default_factory=list)  # values read outside or returned by the graph
    parameters: list[str] = field(default_factory=list)  # parameter values owned inside
    num_parameters: int = 0

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]


@dataclass
class Repeat:
    """Blocks ``prefix.start`` ... ``prefix.end`` of one module class."""

    prefix: str
    module_class: str
    indices: list[int]
    variants: int  # distinct op-sequence signatures among the blocks (1 = identical)

    @property
    def paths(self) -> list[str]:
        return [f"{self.prefix}.{i}" for i in self.indices]

    @property
    def label(self) -> str:
        lo, hi = self.indices[0], self.indices[-1]
        span = f"{lo}-{hi}" if hi != lo else f"{lo}"
        return f"{self.prefix}.{span}"


class Hierarchy:
    """The composite tree of a graph (computed once, read-only)."""

    def __init__(self, graph):
        self.graph = graph
        hints = graph.dim_hints
        comps: dict[str, Composite] = {}

        def get(path: str) -> Composite:
            if path not in comps:
                comps[path] = Composite(path, graph.modules.get(path, ""))
                parent = parent_path(path)
                if parent is not None:
                    get(parent).children.append(path)
            return comps[path]

        get("")
        owner_of: dict[str, str] = {}
        for node in graph.nodes:
            for path in ancestors(node.module):
                get(path).nodes.append(node.id)
            for out in node.outputs:
                if out is not None:
                    owner_of[out] = node.module
        for value in graph.parameters:
            for path in ancestors(value.owner or ""):
                comp = get(path)
                comp.parameters.append(value.name)
                comp.num_parameters += value.numel(hints)

        # Boundary values: read inside from outside, or produced inside and read outside.
        ins: dict[str, dict[str, None]] = defaultdict(dict)  # ordered sets
        outs: dict[str, dict[str, None]] = defaultdict(dict)
        for node in graph.nodes:
            for name in dict.fromkeys(node.inputs):
                value = graph.values.get(name)
                if value is None or value.kind in ("parameter", "buffer", "constant"):
                    continue
                src = owner_of.get(name)
                reader = ancestors(node.module)
                writer = ancestors(src) if src is not None else []
                for path in reader:
                    if path not in writer:
                        ins[path][name] = None
                for path in writer:
                    if path not in reader:
                        outs[path][name] = None
        for out in graph.outputs:
            src = owner_of.get(out.value)
            for path in ancestors(src) if src is not None else []:
                outs[path][out.value] = None
        for path, comp in comps.items():
            comp.inputs, comp.outputs = list(ins[path]), list(outs[path])
        # Children in the model's own order (module registration), else naturally sorted.
        order = {path: i for i, path in enumerate(graph.modules)}
        for comp in comps.values():
            comp.children.sort(key=lambda p: (order.get(p, len(order)), _natural_key(p)))
        self.composites = comps
        self.repeats = self._find_repeats()

    def __getitem__(self, path: str) -> Composite:
        return self.composites[path]

    def __contains__(self, path: str) -> bool:
        return path in self.composites

    def signature(self, path: str) -> tuple:
        """What makes two blocks the same: their op sequence and parameter shapes."""
        comp = self.composites[path]
        by_id = self.graph.node_by_id
        ops = tuple(by_id[n].op for n in comp.nodes)
        shapes = tuple(tuple(self.graph.values[p].shape) for p in comp.parameters)
        return ops, shapes

    def _find_repeats(self) -> list[Repeat]:
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for path, comp in self.composites.items():
            m = _INDEX.match(path)
            if m and (comp.nodes or comp.parameters):
                groups[(m.group(1), comp.module_class)].append(int(m.group(2)))
        repeats = []
        for (prefix, cls), indices in groups.items():
            indices.sort()
            # A lone block counts when it sits in a layer list (a 1-layer model still has a stack).
            lone_layer = self.graph.modules.get(prefix) in ("ModuleList", "Sequential") and any(
                word in cls for word in ("Layer", "Block")
            )
            if len(indices) < 2 and not lone_layer:
                continue
            variants = len({self.signature(f"{prefix}.{i}") for i in indices})
            repeats.append(Repeat(prefix, cls, indices, variants))
        repeats.sort(key=lambda r: _natural_key(r.prefix))
        return repeats

    def repeat_of(self, path: str) -> Repeat | None:
        for rep in self.repeats:
            if path in rep.paths:
                return rep
        return None

    def top_repeats(self) -> list[Repeat]:
        """Repeats not nested inside another repeat's blocks (the model's layer stacks)."""
        out = []
        for rep in self.repeats:
            nested = any(
                rep.prefix.startswith(p + ".") for other in self.repeats if other is not rep for p in other.paths
            )
            if not nested:
                out.append(rep)
        return out

    def op_histogram(self, path: str = "") -> Counter:
        by_id = self.graph.node_by_id
        return Counter(by_id[n].op for n in self.composites[path].nodes)


def _natural_key(path: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.]", path)]
