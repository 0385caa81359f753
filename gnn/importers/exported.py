"""``torch.export.ExportedProgram`` -> :class:`~gnn.ir.Graph`.

The program is first lowered to Core ATen with ``run_decompositions()``.  Each
``call_function`` node becomes a :class:`~gnn.ir.Node`; ``operator.getitem``
on a multi-output op is folded into that op's output list; assertion ops
(which check metadata and compute nothing) are dropped.  Module paths and
classes come from the ``nn_module_stack`` that export records on every node.
"""

from __future__ import annotations

import functools
import operator
import re

import torch
import torch.utils._pytree as pytree
from torch.export.graph_signature import InputKind

from gnn.errors import UnsupportedOpError
from gnn.ir import ops
from gnn.ir.args import dtype_name, encode
from gnn.ir.graph import Graph, Node, Output, Value

# Nodes that only assert facts about tensors: no outputs, nothing to compute.
_DROPPED = {
    "aten._assert_tensor_metadata.default",
    "aten._assert_scalar.default",
    "aten.sym_constrain_range.default",
    "aten.sym_constrain_range_for_size.default",
    "aten._assert_async.msg",
}

_KIND = {
    InputKind.USER_INPUT: "input",
    InputKind.PARAMETER: "parameter",
    InputKind.BUFFER: "buffer",
    InputKind.CONSTANT_TENSOR: "constant",
}


def _clean_path(path: str) -> str:
    """``L['self'].layers[0]`` / ``layers.0`` -> ``layers.0``."""
    path = re.sub(r"^L\['self'\]\.?", "", path)
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    path = re.sub(r"\['([^']+)'\]", r".\1", path)
    path = path.split("@")[0]  # a module called twice: "layers.0@1"
    return path.strip(".")


def _short_class(qualname) -> str:
    name = qualname if isinstance(qualname, str) else getattr(qualname, "__name__", str(qualname))
    return name.rsplit(".", 1)[-1]


def _tensor_meta(val) -> tuple[list, str]:
    shape = [int(d) if not isinstance(d, torch.SymInt) or d.node.hint is None else int(d.node.hint) for d in val.shape]
    return shape, dtype_name(val.dtype)


def module_paths(module: torch.nn.Module) -> dict[str, str]:
    return {path: _short_class(type(m)) for path, m in module.named_modules()}


def tied_parameters(module: torch.nn.Module) -> dict[str, str]:
    """Map every duplicate parameter name to the first name of the same tensor."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        if id(p) in first:
            tied[name] = first[id(p)]
        else:
            first[id(p)] = name
    return tied


def _output_names(ep) -> list[str]:
    spec = ep.call_spec.out_spec
    if spec is None:
        return []
    tree = pytree.tree_unflatten(list(range(spec.num_leaves)), spec)
    names = []
    for path, _ in pytree.tree_flatten_with_path(tree)[0]:
        names.append(".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path) or "output")
    return names


@functools.cache
def _decompositions():
    return torch.export.default_decompositions()


def core_aten_decompositions():
    """torch.export's default (Core ATen) table, built once: building it costs ~0.15 s a trace."""
    return _decompositions().copy()


def from_exported_program(
    ep: torch.export.ExportedProgram,
    name: str,
    modules: dict[str, str] | None = None,
    tied: dict[str, str] | None = None,
) -> Graph:
    ep = ep.run_decompositions(core_aten_decompositions())
    tied = tied or {}
    graph = Graph(name=name, modules=dict(modules or {}))
    env: dict[torch.fx.Node, str] = {}  # fx node -> value name
    made: dict[torch.fx.Node, Node] = {}  # fx node -> IR node, to fold getitem
    specs = {s.arg.name: s for s in ep.graph_signature.input_specs if hasattr(s.arg, "name")}

    def ref(obj):
        return env.get(obj) if isinstance(obj, torch.fx.Node) else None

    unsupported: dict[str, str] = {}
    for fx_node in ep.graph.nodes:
        if fx_node.op == "placeholder":
            spec = specs.get(fx_node.name)
            kind = _KIND.get(spec.kind, "input") if spec else "input"
            target = spec.target if spec and kind != "input" else None
            if kind == "parameter" and target in tied:
                env[fx_node] = tied[target]  # the tied twin is the same tensor
                continue
            val = fx_node.meta.get("val")
            if not isinstance(val, torch.Tensor):
                continue  # tokens, scripted objects: not tensors of the architecture
            shape, dtype = _tensor_meta(val)
            vname = target if target is not None else fx_node.name
            graph.values[vname] = Value(vname, shape, dtype, kind, target)
            graph.inputs.append(vname)
            env[fx_node] = vname
        elif fx_node.op == "call_function":
            target = fx_node.target
            if target is operator.getitem and fx_node.args[0] in made:
                src, idx = fx_node.args
                env[fx_node] = made[src].outputs[idx]
                continue
            op = str(target)
            if op in _DROPPED:
                continue
            if not ops.is_known(op):
                stack = fx_node.meta.get("nn_module_stack") or {}
                where = _clean_path(list(stack.values())[-1][0]) if stack else "<root>"
                unsupported.setdefault(op, where)
                env[fx_node] = fx_node.name  # keep going to name every unsupported op
                continue
            node = _make_node(fx_node, op, ref, graph)
            made[fx_node] = node
            graph.nodes.append(node)
            if len(node.outputs) == 1 and isinstance(fx_node.meta.get("val"), torch.Tensor):
                env[fx_node] = node.outputs[0]
        elif fx_node.op == "output":
            names = _output_names(ep)
            flat = fx_node.args[0]
            user = [s for s in ep.graph_signature.output_specs if s.kind.name == "USER_OUTPUT"]
            for i, (out, spec) in enumerate(zip(flat, ep.graph_signature.output_specs)):
                if spec.kind.name != "USER_OUTPUT" or not isinstance(out, torch.fx.Node) or out not in env:
                    continue
                label = names[user.index(spec)] if user.index(spec) < len(names) else f"output_{i}"
                graph.outputs.append(Output(label, env[out]))
    if unsupported:
        listed = ", ".join(f"`{op}` at {where}" for op, where in unsupported.items())
        raise UnsupportedOpError(
            f"unsupported op(s): {listed}; nodes must be Core ATen ops (docs/ops.md) or a listed extra"
        )
    graph.meta["tied_parameters"] = dict(sorted(tied.items()))
    graph.invalidate()
    return graph


def _make_node(fx_node: torch.fx.Node, op: str, ref, graph: Graph) -> Node:
    stack = fx_node.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        module, module_class = _clean_path(path), _short_class(cls)
    else:
        module, module_class = "", graph.modules.get("", "")
    for path, cls in stack.values():
        graph.modules.setdefault(_clean_path(path), _short_class(cls))
    val = fx_node.meta.get("val")
    outputs = []
    if isinstance(val, torch.Tensor):
        vals = [(fx_node.name, val)]
    elif isinstance(val, (tuple, list)):
        vals = [(f"{fx_node.name}__{i}", v) for i, v in enumerate(val)]
    else:
        raise UnsupportedOpError(f"op `{op}` at {module or '<root>'} produces a {type(val).__name__}, not tensors")
    for vname, v in vals:
        if isinstance(v, torch.Tensor):
            shape, dtype = _tensor_meta(v)
            graph.values[vname] = Value(vname, shape, dtype, "activation")
            outputs.append(vname)
        else:
            outputs.append(None)
    return Node(
        id=fx_node.name,
        op=op,
        args=encode(list(fx_node.args), ref),
        kwargs={k: encode(v, ref) for k, v in fx_node.kwargs.items()},
        outputs=outputs,
        module=module,
        module_class=module_class,
    )
