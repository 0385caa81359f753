"""The graph IR: values, nodes and the graph that holds them.

Modelled on ``torch.fx``: a node is one primitive op from a closed vocabulary
(``gnn.ir.ops``), arguments are plain JSON-able data in which a tensor operand
is the one-key dict ``{"value": NAME}``, and every node and value has a free
``meta`` dict where passes leave their results.  Keeping arguments in their
serialised form makes JSON -> IR -> JSON lossless by construction; they are
decoded into torch objects only where an op is executed (shape propagation,
the fx exporter).

A graph never holds weights: parameters and buffers are graph inputs with a
shape, a dtype and the module that owns them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator

# Kinds of value.  Parameters, buffers and constants are inputs fed by the
# model's state; "input" is a user input (input_ids, pixel_values, ...).
VALUE_KINDS = ("input", "parameter", "buffer", "constant", "activation")

Dim = int | str  # a str is a symbolic dim, e.g. "batch"


@dataclass
class Value:
    """A tensor flowing along the graph's edges."""

    name: str
    shape: list[Dim]
    dtype: str  # torch dtype name without the "torch." prefix: "float32", "int64", ...
    kind: str = "activation"
    target: str | None = None  # state-dict key for parameters, buffers and constants
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def owner(self) -> str | None:
        """The module path that owns a parameter/buffer (``a.b.weight`` -> ``a.b``)."""
        if self.target is None:
            return None
        return self.target.rpartition(".")[0]

    def concrete_shape(self, hints: dict[str, int] | None = None) -> list[int]:
        """The shape with each symbolic dim replaced by its example size (1 when there is none)."""
        return [d if isinstance(d, int) else (hints or {}).get(d, 1) for d in self.shape]

    def numel(self, hints: dict[str, int] | None = None) -> int:
        n = 1
        for d in self.concrete_shape(hints):
            n *= d
        return n


@dataclass
class Node:
    """One primitive tensor operation.

    ``args``/``kwargs`` follow the op's schema; a tensor operand is
    ``{"value": NAME}``, other non-JSON atoms are one-key dicts too
    (``{"dtype": "float32"}``, ``{"device": "meta"}``, ``{"float": "inf"}``).
    ``outputs`` names the produced values in the op's output order.
    """

    id: str
    op: str  # e.g. "aten.mm.default", "onnx::MatMul"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    module: str = ""  # innermost module path, "" for the root
    module_class: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        """Names of the values this node reads, in argument order (repeats kept)."""
        return list(iter_refs(self.args)) + list(iter_refs(self.kwargs))


def _clone(obj: Any) -> Any:
    """Copy a JSON-like structure (dicts, lists, atoms); anything else is deep-copied."""
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return copy.deepcopy(obj)


def iter_refs(obj: Any) -> Iterator[str]:
    """Yield every ``{"value": NAME}`` reference inside an argument structure."""
    if isinstance(obj, dict):
        if len(obj) == 1 and "value" in obj:
            yield obj["value"]
        else:
            for v in obj.values():
                yield from iter_refs(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from iter_refs(v)


def map_refs(obj: Any, fn) -> Any:
    """Return a copy of an argument structure with each reference name mapped by ``fn``."""
    if isinstance(obj, dict):
        if len(obj) == 1 and "value" in obj:
            return {"value": fn(obj["value"])}
        return {k: map_refs(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [map_refs(v, fn) for v in obj]
    return obj


@dataclass
class Output:
    """A graph output: a value plus the name a user knows it by (``logits``)."""

    name: str
    value: str


@dataclass
class Graph:
    """A computation graph of primitive ops grouped by module path.

    ``nodes`` are kept in a topological order.  ``modules`` maps every module
    path of the source model to its class (``"model.layers.0" ->
    "LlamaDecoderLayer"``); the composite hierarchy is derived from it and
    from the nodes' module paths (see :mod:`gnn.ir.hierarchy`).
    """

    name: str
    values: dict[str, Value] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # every graph input, state included
    outputs: list[Output] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # what passes computed from the graph as it is now (role labels, ...), keyed by the pass; emptied by invalidate()
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- lookups -------------------------------------------------------------
    @cached_property
    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    @cached_property
    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for n in self.nodes:
            for name in dict.fromkeys(n.inputs):
                users.setdefault(name, []).append(n)
        return users

    @cached_property
    def node_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def invalidate(self) -> None:
        """Drop cached lookups and pass results after the graph was changed in place."""
        for attr in ("producers", "consumers", "node_by_id", "hierarchy"):
            self.__dict__.pop(attr, None)
        self.cache.clear()

    @property
    def dim_hints(self) -> dict[str, int]:
        """Example sizes for symbolic dims, used to execute ops on the meta device."""
        return self.meta.get("dim_hints", {})

    def values_of_kind(self, *kinds: str) -> list[Value]:
        return [self.values[n] for n in self.inputs if self.values[n].kind in kinds]

    @property
    def parameters(self) -> list[Value]:
        return self.values_of_kind("parameter")

    @property
    def num_parameters(self) -> int:
        return sum(v.numel(self.dim_hints) for v in self.parameters)

    @property
    def num_trainable_parameters(self) -> int:
        """Parameters not frozen by an edit (``meta["trainable"]`` is False when frozen)."""
        return sum(v.numel(self.dim_hints) for v in self.parameters if v.meta.get("trainable", True))

    def rename_values(self, renames: dict[str, str], among: set[str] | None = None) -> None:
        """Rename values in place (``{old: new}``) wherever they are named: the value table, graph inputs
        and outputs, node arguments and outputs; a state value whose target was its name follows it.
        ``among``: the ids of the only nodes that produce or read them (a caller that knows saves a pass
        over every node)."""
        if not renames:
            return
        moved = {new: self.values.pop(old) for old, new in renames.items() if old in self.values}
        for name, value in moved.items():
            if value.target == value.name:
                value.target = name
            value.name = name
        self.values.update(moved)
        self.inputs = [renames.get(n, n) for n in self.inputs]
        if among is None:
            self.invalidate()  # the lookups below must see the graph as it is now
            among = {n.id for old in renames for n in self.consumers.get(old, [])}
            among |= {self.producers[old].id for old in renames if old in self.producers}
        for node in self.nodes:
            if node.id in among:
                node.args = map_refs(node.args, lambda r: renames.get(r, r))
                node.kwargs = map_refs(node.kwargs, lambda r: renames.get(r, r))
                node.outputs = [renames.get(o, o) if o else o for o in node.outputs]
        for out in self.outputs:
            out.value = renames.get(out.value, out.value)
        self.invalidate()

    @cached_property
    def hierarchy(self):
        from gnn.ir.hierarchy import Hierarchy

        return Hierarchy(self)

    def copy(self) -> "Graph":
        """A deep copy: passes return new graphs instead of mutating their input.

        Written out rather than ``copy.deepcopy`` (5x faster on an 8B graph): every
        field is a dataclass of strings, numbers and JSON-like structures.
        """
        return Graph(
            name=self.name,
            values={k: Value(v.name, list(v.shape), v.dtype, v.kind, v.target, _clone(v.meta)) for k, v in self.values.items()},
            nodes=[Node(n.id, n.op, _clone(n.args), _clone(n.kwargs), list(n.outputs), n.module, n.module_class,
                        _clone(n.meta)) for n in self.nodes],
            inputs=list(self.inputs),
            outputs=[Output(o.name, o.value) for o in self.outputs],
            modules=dict(self.modules),
            meta=_clone(self.meta),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in dataclasses.fields(self) if f.compare)


def graph_key(graph) -> tuple:
    """What two graphs must share to be the same edit: parameters (name, shape, trainable) and every op with its
    non-tensor arguments (value names read as tensors)."""
    values = graph.values

    def plain(a):
        if isinstance(a, str) and a in values:
            return "<tensor>"
        if isinstance(a, (list, tuple)):
            return tuple(plain(x) for x in a)
        if isinstance(a, dict):
            return tuple(sorted((k, plain(v)) for k, v in a.items()))
        return a

    params = tuple(sorted((v.target or v.name, tuple(v.shape), bool(v.meta.get("trainable", True)))
                          for v in graph.parameters))
    ops = Counter((n.op, plain(n.args), plain(n.kwargs)) for n in graph.nodes)
    return params, tuple(sorted(ops.items(), key=repr))
