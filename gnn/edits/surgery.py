"""Graph surgery shared by the edits: remove, rename, and splice in traced sub-graphs.

Every function here changes the graph it is given in place; edits call them on
a copy (``Graph.copy()``), never on their input.

:func:`splice` is how new structure enters a graph: a small ``nn.Module`` (an
activation, a norm, a LoRA branch) is traced with ``torch.export`` on meta
tensors of the right shapes, exactly as the importers trace whole models, and
its nodes are inserted with their module paths prefixed.  New structure is
therefore made of the same primitive ops the real module would produce.
"""

from __future__ import annotations

import itertools

import torch

from gnn.ir.args import dtype_from_name
from gnn.ir.graph import Graph, map_refs

_counter = itertools.count()


def fresh_tag() -> str:
    """A prefix that makes copied node and value names unique."""
    return f"e{next(_counter)}_"


def drop_nodes(graph: Graph, ids: set[str]) -> None:
    graph.nodes = [n for n in graph.nodes if n.id not in ids]
    live = {o for n in graph.nodes for o in n.outputs if o} | set(graph.inputs)
    for name in [v for v in graph.values if v not in live]:
        del graph.values[name]
    graph.invalidate()


def prune_dead(graph: Graph) -> set[str]:
    """Remove nodes none of whose outputs is read (repeatedly); return their ids."""
    removed: set[str] = set()
    while True:
        read = {name for n in graph.nodes for name in n.inputs} | {o.value for o in graph.outputs}
        dead = {n.id for n in graph.nodes if not any(o in read for o in n.outputs if o)}
        if not dead:
            break
        removed |= dead
        drop_nodes(graph, dead)
    return removed


def drop_state(graph: Graph, prefix: str) -> list[str]:
    """Remove parameters, buffers and constants owned under a module path; return their names."""
    gone = [n for n in graph.inputs if graph.values[n].kind in ("parameter", "buffer", "constant")
            and (graph.values[n].target or "").startswith(prefix + ".")]
    graph.inputs = [n for n in graph.inputs if n not in gone]
    for n in gone:
        del graph.values[n]
    # sub-modules go; the module itself keeps its place in the model's order
    graph.modules = {p: c for p, c in graph.modules.items() if not p.startswith(prefix + ".")}
    graph.invalidate()
    return gone


def redirect(graph: Graph, old: str, new: str, skip: set[str] = frozenset()) -> None:
    """Make every reader of value ``old`` (but the nodes in ``skip``), and the graph outputs, read ``new``."""
    for node in graph.nodes:
        if node.id not in skip:
            node.args = map_refs(node.args, lambda r: new if r == old else r)
            node.kwargs = map_refs(node.kwargs, lambda r: new if r == old else r)
    for out in graph.outputs:
        if out.value == old:
            out.value = new
    graph.invalidate()


def rename_prefix(graph: Graph, old: str, new: str) -> None:
    """Move everything under module path ``old`` to ``new`` (``model.layers.5`` -> ``model.layers.4``)."""

    def move(path: str | None) -> str | None:
        if path is None:
            return None
        if path == old:
            return new
        if path.startswith(old + "."):
            return new + path[len(old):]
        return path

    renamed = {}
    for name, v in list(graph.values.items()):
        if v.target is not None and move(v.target) != v.target:
            v.target = move(v.target)
            if name == move(name) or name.startswith(old + "."):
                renamed[name] = move(name)
    if renamed:
        graph.values = {renamed.get(k, k): v for k, v in graph.values.items()}
        for k, v in graph.values.items():
            v.name = k
        graph.inputs = [renamed.get(n, n) for n in graph.inputs]
        for node in graph.nodes:
            node.args = map_refs(node.args, lambda r: renamed.get(r, r))
            node.kwargs = map_refs(node.kwargs, lambda r: renamed.get(r, r))
    for node in graph.nodes:
        node.module = move(node.module)
    graph.modules = {move(p): c for p, c in graph.modules.items()}
    graph.invalidate()


_TRACED: dict[tuple, Graph] = {}


def _traced(module: torch.nn.Module, example: list[torch.Tensor], train: bool = False) -> Graph:
    """Trace a module on meta tensors; the same module kind and input types are traced once."""
    from gnn.importers.torch_module import import_module

    module = module.to("meta")  # first: the key must not depend on where the weights were made
    shapes = tuple((tuple(t.shape), t.dtype) for t in example)
    state = tuple((k, tuple(v.shape), v.dtype) for k, v in module.state_dict().items())
    # plain attributes decide the traced ops too (a LoRA layer's scaling, an activation's approximation)
    settings = tuple(
        (name, type(m).__name__,
         tuple(sorted((k, repr(v)) for k, v in vars(m).items() if not k.startswith("_") and k != "training")))
        for name, m in module.named_modules()
    )
    key = (type(module), shapes, state, settings, train)
    if key not in _TRACED:
        _TRACED[key] = import_module(module, tuple(example), train=train)
    return _TRACED[key].copy()


def splice(
    graph: Graph,
    module: torch.nn.Module,
    inputs: list[str],
    at: int,
    module_path: str,
    output: str | None = None,
    state_prefix: str | None = None,
    train: bool = False,
) -> str:
    """Trace ``module(*inputs)`` and insert its nodes at index ``at``; return the output value's name.

    The module's own module paths are placed under ``module_path`` and its
    parameters under ``state_prefix`` (default: ``module_path``).  ``output``
    names the produced value (to take over an existing value's name).
    """
    hints = graph.dim_hints
    example = []
    for name in inputs:
        v = graph.values[name]
        shape = v.concrete_shape(hints)
        example.append(torch.empty(shape, dtype=dtype_from_name(v.dtype), device="meta"))
    sub = _traced(module, example, train)
    tag = fresh_tag()
    state_prefix = module_path if state_prefix is None else state_prefix
    user_inputs = [n for n in sub.inputs if sub.values[n].kind == "input"]
    rename = dict(zip(user_inputs, inputs))
    for name in sub.inputs:
        v = sub.values[name]
        if v.kind == "input":
            continue
        target = f"{state_prefix}.{v.target}" if state_prefix else v.target
        rename[name] = target
        v.name, v.target = target, target
        graph.values[target] = v
        graph.inputs.append(target)
    (out,) = sub.outputs
    for node in sub.nodes:
        for o in node.outputs:
            if o is not None:
                rename[o] = output if (o == out.value and output) else tag + o
    new_nodes = []
    for node in sub.nodes:
        node.id = tag + node.id
        node.args = map_refs(node.args, lambda r: rename.get(r, r))
        node.kwargs = map_refs(node.kwargs, lambda r: rename.get(r, r))
        for o in node.outputs:
            if o is not None:
                v = sub.values[o]
                v.name = rename[o]
                graph.values[v.name] = v
        node.outputs = [rename.get(o, o) if o else o for o in node.outputs]
        node.module = ".".join(p for p in (module_path, node.module) if p)
        if not node.module_class:
            node.module_class = type(module).__name__
        if graph.meta.get("origin") == "onnx":
            node.meta["traced"] = True  # validated by torch, not ONNX inference
        new_nodes.append(node)
    for path, cls in sub.modules.items():
        if path:  # the traced module's own root is the caller's to name
            graph.modules[".".join(p for p in (module_path, path) if p)] = cls
    graph.nodes[at:at] = new_nodes
    graph.invalidate()
    return rename[out.value] if out.value in rename else out.value


Boundary = tuple[list[str], list[str], list[str]]  # (inputs, outputs, node ids) of a composite


def boundaries(graph: Graph, paths: list[str]) -> dict[str, Boundary]:
    """Snapshot composites before a multi-site edit: sites are disjoint, so the snapshot stays true
    while each site is rewritten, and the hierarchy is built once instead of once per site."""
    h = graph.hierarchy
    return {p: (list(h[p].inputs), list(h[p].outputs), list(h[p].nodes)) for p in paths}


def replace_composite(graph: Graph, path: str, module: torch.nn.Module, boundary: Boundary,
                      keep_state: bool = False) -> None:
    """Swap the composite at ``path`` (one input, one output) for a traced ``module``, keeping value names.

    Its parameters go unless ``keep_state``; the module's own parameters take
    their place under ``path``.
    """
    from gnn.edits.target import EditError

    inputs, outputs, nodes = boundary
    if len(inputs) != 1 or len(outputs) != 1:
        raise EditError(f"`{path}` has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
    (x,), (y,) = inputs, outputs
    at = graph.nodes.index(graph.node_by_id[nodes[0]])
    drop_nodes(graph, set(nodes))
    if not keep_state:
        drop_state(graph, path)
    splice(graph, module, [x], at, module_path=path, output=y)
    cls = type(module).__name__
    graph.modules[path] = cls
    for node in graph.nodes:
        if node.module == path:
            node.module_class = cls
    graph.invalidate()


def insert_after(graph: Graph, path: str, module: torch.nn.Module, module_path: str, boundary: Boundary,
                 train: bool = False) -> None:
    """Run the composite's output through a traced ``module``; its readers read the result instead."""
    from gnn.edits.target import EditError

    _, outputs, nodes = boundary
    if len(outputs) != 1:
        raise EditError(f"`{path}` has {len(outputs)} outputs; a module can only follow a single output")
    (y,) = outputs
    at = graph.nodes.index(graph.producers[y]) + 1
    before = {n.id for n in graph.nodes}
    new = splice(graph, module, [y], at, module_path=module_path, train=train)
    added = {n.id for n in graph.nodes} - before  # the new module itself still reads y
    redirect(graph, y, new, skip=set(nodes) | added)
    graph.modules[module_path] = type(module).__name__
    graph.invalidate()


def reinfer_shapes(graph: Graph, seeds: set[str], dirty: set[str] = frozenset()) -> None:
    """Recompute the output shapes of the nodes in ``seeds`` and of every node downstream of a changed shape.

    ``dirty`` names values (e.g. resized parameters) whose recorded shape already changed.
    Ops run on the meta device, as validation does; a symbolic dim is kept where its
    example size still matches.  An op that fails leaves its outputs as they were:
    validation then names it.
    """
    from gnn.ir import ops
    from gnn.ir.args import decode

    meta = torch.device("meta")
    hints = graph.dim_hints
    dirty = set(dirty)
    cache: dict[str, torch.Tensor] = {}

    def lookup(name: str) -> torch.Tensor:
        if name not in cache:
            v = graph.values[name]
            shape = v.concrete_shape(hints)
            cache[name] = torch.empty(shape, dtype=dtype_from_name(v.dtype), device=meta)
        return cache[name]

    for node in graph.nodes:
        if node.id not in seeds and not any(name in dirty for name in node.inputs):
            continue
        if not node.op.startswith("aten."):
            continue
        try:
            args = decode(node.args, lookup, meta)
            kwargs = {k: decode(v, lookup, meta) for k, v in node.kwargs.items()}
            result = ops.aten_overload(node.op)(*args, **kwargs)
        except Exception:  # noqa: BLE001 - validation reports the node with the op's own message
            continue
        results = list(result) if isinstance(result, (tuple, list)) else [result]
        for name, got in zip(node.outputs, results):
            if not name or not isinstance(got, torch.Tensor):
                continue
            value = graph.values[name]
            shape = [old if isinstance(old, str) and hints.get(old) == new else new
                     for old, new in zip(value.shape, got.shape)] if len(value.shape) == got.dim() \
                else list(got.shape)
            if shape != value.shape:
                value.shape = shape
                dirty.add(name)
            cache[name] = got
