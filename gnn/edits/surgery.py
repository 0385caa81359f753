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

from gnn.ir.graph import Graph, map_refs
from gnn.ir.shape_prop import MetaInterpreter

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
        theirs = {name for n in graph.nodes if n.id in dead for name in n.inputs}
        drop_nodes(graph, dead)
        drop_state(graph, None, theirs)  # the weights only they read go with them
    return removed


def drop_state(graph: Graph, prefix: str | None, read: set[str] = frozenset(),
               among: set[str] | None = None) -> list[str]:
    """Remove the parameters, buffers and constants owned under a module path, and those in ``read`` (what
    removed nodes read: an ONNX file's weights are not named after their module); return their names.

    State that a node still reads stays (torch.onnx stores identical initializers once, so one norm weight
    may serve seven norms); named under ``prefix``, it takes the name of the module that reads it now, so
    the module that replaces ``prefix`` can name its own state freely.  ``among``: the ids of the only
    nodes that can still read it, when the caller knows them (None looks at every node).
    """
    readers: dict[str, str] = {}
    for node in graph.nodes:
        if among is None or node.id in among:
            for name in node.inputs:
                readers.setdefault(name, node.module)
    returned = {o.value for o in graph.outputs}
    owned = lambda v: prefix is not None and (v.target or "").startswith(prefix + ".")  # noqa: E731
    state = [n for n in graph.inputs if graph.values[n].kind in ("parameter", "buffer", "constant")]
    gone = [n for n in state if n not in readers and n not in returned and (owned(graph.values[n]) or n in read)]
    gone_set = set(gone)
    graph.inputs = [n for n in graph.inputs if n not in gone_set]
    for n in gone:
        del graph.values[n]
    moved = {}
    for n in state:
        if n in readers and owned(graph.values[n]):
            leaf = graph.values[n].target[len(prefix) + 1:]
            new = f"{readers[n]}.{leaf}" if readers[n] else f"{fresh_tag()}{leaf}"
            moved[n] = new if new not in graph.values else f"{fresh_tag()}{new}"
            graph.values[n].target = moved[n]
    graph.rename_values(moved, among)
    # sub-modules go; the module itself keeps its place in the model's order
    if prefix is not None:
        graph.modules = {p: c for p, c in graph.modules.items() if not p.startswith(prefix + ".")}
    graph.invalidate()
    return gone


def redirect(graph: Graph, old: str, new: str, skip: set[str] = frozenset(), among: set[str] | None = None) -> None:
    """Make every reader of value ``old`` (but the nodes in ``skip``; only those in ``among`` when the caller
    knows its readers), and the graph outputs, read ``new``."""
    for node in graph.nodes:
        if node.id not in skip and (among is None or node.id in among):
            node.args = map_refs(node.args, lambda r: new if r == old else r)
            node.kwargs = map_refs(node.kwargs, lambda r: new if r == old else r)
    for out in graph.outputs:
        if out.value == old:
            out.value = new
    graph.invalidate()


def rename_prefix(graph: Graph, old: str, new: str, among: set[str] | None = None) -> None:
    """Move everything under module path ``old`` to ``new`` (``model.layers.5`` -> ``model.layers.4``).

    ``among``: the ids of the only nodes that lie under ``old`` or read its state, when the caller knows
    them (an edit moving one projection of thousands); then only the values they name are looked at.
    None looks at every node and value.
    """

    def move(path: str | None) -> str | None:
        if path is None:
            return None
        if path == old:
            return new
        if path.startswith(old + "."):
            return new + path[len(old):]
        return path

    renamed = {}
    names = graph.values if among is None else dict.fromkeys(
        name for n in graph.nodes if n.id in among for name in n.inputs + n.outputs if name)
    for name, v in [(name, graph.values[name]) for name in names]:
        if v.target is not None and move(v.target) != v.target:
            v.target = move(v.target)
            if name.startswith(old + "."):
                renamed[name] = move(name)
    graph.rename_values(renamed, among)
    for node in graph.nodes:
        if among is None or node.id in among:
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
    meta = MetaInterpreter(graph)
    example = [meta.empty(name) for name in inputs]  # one tensor per input, as the module's arguments
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


def outside_readers(graph: Graph, sites: dict[str, Boundary]) -> dict[str, set[str]]:
    """For each composite snapshot, the ids of the nodes outside it that read its state (what its nodes read
    or what is named under it): none, unless an exporter shared one initializer among modules.  Found once
    for a multi-site edit, so each site's surgery stays local."""
    consumers = graph.consumers
    state = [v for v in graph.values.values() if v.kind != "activation"]
    out = {}
    for path, (_, _, nodes) in sites.items():
        inside = set(nodes)
        names = {i for n in nodes for i in graph.node_by_id[n].inputs if graph.values[i].kind != "activation"}
        names |= {v.name for v in state if (v.target or "").startswith(path + ".")}
        out[path] = {c.id for name in names for c in consumers.get(name, []) if c.id not in inside}
    return out


def replace_composite(graph: Graph, path: str, module: torch.nn.Module, boundary: Boundary,
                      keep_state: bool = False, readers: set[str] | None = None) -> None:
    """Swap the composite at ``path`` (one input, one output) for a traced ``module``, keeping value names.

    Its parameters go unless ``keep_state`` or another module still reads them; the module's own
    parameters take their place under ``path``.  ``readers``: :func:`outside_readers` of the composite,
    when the caller found them (else every node is looked at).
    """
    from gnn.errors import EditError

    inputs, outputs, nodes = boundary
    if len(inputs) != 1 or len(outputs) != 1:
        raise EditError(f"`{path}` has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
    (x,), (y,) = inputs, outputs
    at = graph.nodes.index(graph.node_by_id[nodes[0]])
    read = {name for n in nodes for name in graph.node_by_id[n].inputs}
    drop_nodes(graph, set(nodes))
    if not keep_state:
        drop_state(graph, path, read, among=readers)
    splice(graph, module, [x], at, module_path=path, output=y)
    cls = type(module).__name__
    graph.modules[path] = cls
    for node in graph.nodes:
        if node.module == path:
            node.module_class = cls
    graph.invalidate()


def wrap_composite(graph: Graph, path: str, module: torch.nn.Module, boundary: Boundary,
                   inner: str = "base_layer", readers: set[str] = frozenset()) -> None:
    """Wrap the composite at ``path`` (one input, one output) in a traced ``module`` whose submodule ``inner``
    stands for it, as peft's LoRA layer wraps the layer it adapts under ``base_layer``.  The boundary may
    be a run inside the composite (its matmul, when the composite also holds a reshape an exporter merged
    into it); the composite's ops after that run then read the wrapper's output.

    The composite keeps its own nodes and parameters (a bias only where it had one, its weight stored as it
    was), moved under ``<path>.<inner>``; the module is traced around a stand-in for ``inner`` whose nodes
    and parameters are then dropped, its output read from the kept composite instead.  ``readers``: the
    ids of nodes outside the composite that read its state (an initializer an exporter shared among
    modules); the work stays local to the composite, so wrapping each of an 8B model's projections
    costs no pass over the whole graph.
    """
    from gnn.errors import EditError

    inputs, outputs, nodes = boundary
    if len(inputs) != 1 or len(outputs) != 1:
        raise EditError(f"`{path}` has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
    (x,), (y,) = inputs, outputs
    # the kept composite's output gets a name of its own; ``y`` becomes the wrapper's output
    kept = fresh_tag() + y
    value = graph.values.pop(y)
    value.name = kept
    graph.values[kept] = value
    inside = set(nodes)
    for node in graph.nodes:
        if node.id in inside:
            node.args = map_refs(node.args, lambda r: kept if r == y else r)
            node.kwargs = map_refs(node.kwargs, lambda r: kept if r == y else r)
            node.outputs = [kept if o == y else o for o in node.outputs]
    base = f"{path}.{inner}"
    order = list(graph.modules)
    mine = inside | set(readers)
    rename_prefix(graph, path, base, among=mine)
    # what follows the kept output reads the wrapper's output
    at = next(i for i, n in enumerate(graph.nodes) if n.id in inside and kept in n.outputs) + 1
    scratch = f"{path}.{fresh_tag()}wrap"  # traced under a scratch path: the stand-in's state must not meet ours
    count = len(graph.nodes)
    splice(graph, module, [x], at, module_path=scratch, output=y)
    added = graph.nodes[at:at + len(graph.nodes) - count]  # splice inserts one run at `at`
    new = {n.id for n in added}
    stand_in_path = f"{scratch}.{inner}"
    stand_in = {n.id for n in added if n.module == stand_in_path or n.module.startswith(stand_in_path + ".")}
    produced = {o for n in added if n.id in stand_in for o in n.outputs if o}
    read = {i for n in added if n.id not in stand_in for i in n.inputs} | {o.value for o in graph.outputs}
    if len(produced & read) != 1:
        raise EditError(f"`{type(module).__name__}` does not read its `{inner}` once; cannot wrap `{path}`")
    (stand_in_out,) = produced & read
    redirect(graph, stand_in_out, kept, among=new)
    drop_nodes(graph, stand_in)
    drop_state(graph, stand_in_path, among=set())  # the stand-in's state: only its nodes read it
    graph.modules.pop(stand_in_path, None)
    rename_prefix(graph, scratch, path, among=new - stand_in)
    cls = type(module).__name__
    for node in graph.nodes:
        if node.module == path:
            node.module_class = cls
    # the wrapper takes the composite's place in the model's order, its kept layer right after it
    modules = dict(graph.modules)
    modules[path] = cls
    placed = {}
    for p in order:
        if p == path:
            placed[path] = cls
            placed.update({q: c for q, c in modules.items() if q.startswith(path + ".")})
        elif p in modules and p not in placed:
            placed[p] = modules[p]
    placed.update({p: c for p, c in modules.items() if p not in placed})
    graph.modules = placed
    graph.invalidate()


def insert_after(graph: Graph, path: str, module: torch.nn.Module, module_path: str, boundary: Boundary,
                 train: bool = False) -> None:
    """Run the composite's output through a traced ``module``; its readers read the result instead."""
    from gnn.errors import EditError

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
    hints = graph.dim_hints
    dirty = set(dirty)
    meta = MetaInterpreter(graph)

    for node in graph.nodes:
        if node.id not in seeds and not any(name in dirty for name in node.inputs):
            continue
        if not node.op.startswith("aten."):
            continue
        try:
            results = meta.run_node(node)
        except Exception:  # noqa: BLE001 - validation reports the node with the op's own message
            continue
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
            meta.tensors[name] = got
