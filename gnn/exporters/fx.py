"""Rebuild a runnable ``torch.fx.GraphModule`` from the IR.

Parameters and buffers become attributes at their original dotted paths
(``model.layers.0.self_attn.q_proj.weight``), so a model's own ``state_dict()``
loads into the rebuilt module unchanged.  Weights are supplied or random; the
module returns a dict ``{output name: tensor}`` (``{"logits": ...}``).

Shapes were specialised when the graph was traced, so the module runs on inputs
of the traced shapes (see ``graph.meta["example_inputs"]``).
"""

from __future__ import annotations

import keyword
import operator
import re

import torch
import torch.fx

from gnn.errors import ExportError
from gnn.ir import ops
from gnn.ir.args import decode, dtype_from_name
from gnn.ir.graph import Graph


def _attr_holder(root: torch.nn.Module, path: str) -> tuple[torch.nn.Module, str]:
    """Create the submodules of a dotted path; return (owner module, attribute name)."""
    *parts, leaf = path.split(".")
    mod = root
    for part in parts:
        child = mod._modules.get(part)
        if child is None:
            child = torch.nn.Module()
            mod.add_module(part, child)
        mod = child
    return mod, leaf


def state_tensors(graph: Graph, weights: dict[str, torch.Tensor] | None, device, seed: int) -> dict[str, torch.Tensor]:
    """The tensor of every parameter, buffer and constant: from ``weights`` or random."""
    gen = torch.Generator().manual_seed(seed)
    hints = graph.dim_hints
    out = {}
    missing = []
    for v in graph.values_of_kind("parameter", "buffer", "constant"):
        if weights is not None:
            t = weights.get(v.target)
            if t is None:
                missing.append(v.target)
                continue
            out[v.name] = t.detach().to(device)
            continue
        shape = v.concrete_shape(hints)
        dtype = dtype_from_name(v.dtype)
        if dtype.is_floating_point:
            t = torch.randn(shape, generator=gen, dtype=torch.float32).mul_(0.02).to(dtype)
        else:  # index-like buffers: zeros keep every lookup in range
            t = torch.zeros(shape, dtype=dtype)
        out[v.name] = t.to(device)
    if missing:
        raise ExportError(f"weights lack {len(missing)} tensors the graph needs, e.g. {', '.join(missing[:3])}")
    return out


def placeholder_name(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit() or keyword.iskeyword(s):
        s = "_" + s
    return s


def to_graph_module(
    graph: Graph,
    weights: dict[str, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> torch.fx.GraphModule:
    """Rebuild the graph as a GraphModule on ``device`` with ``weights`` (a state dict) or random ones."""
    device = torch.device(device)
    onnx_ops = sorted({n.op for n in graph.nodes if n.op.startswith(ops.PREFIX_ONNX)})
    if onnx_ops:
        raise ExportError(
            f"cannot rebuild a torch module from ONNX ops ({', '.join(onnx_ops[:5])}); export this graph to ONNX instead"
        )
    root = torch.nn.Module()
    fx = torch.fx.Graph()
    env: dict[str, torch.fx.Node] = {}
    tensors = state_tensors(graph, weights, device, seed)
    for name in graph.inputs:
        v = graph.values[name]
        if v.kind == "input":
            env[name] = fx.placeholder(placeholder_name(name))
            continue
        holder, leaf = _attr_holder(root, v.target or name)
        t = tensors[name]
        if v.kind == "parameter":
            holder.register_parameter(leaf, torch.nn.Parameter(t, requires_grad=t.is_floating_point()))
        else:
            holder.register_buffer(leaf, t)
        env[name] = fx.get_attr(v.target or name)

    def lookup(name: str) -> torch.fx.Node:
        return env[name]

    for node in graph.nodes:
        target = ops.aten_overload(node.op)
        args = tuple(decode(node.args, lookup, device))
        kwargs = {k: decode(v, lookup, device) for k, v in node.kwargs.items()}
        call = fx.call_function(target, args, kwargs)
        call.meta["module"] = node.module
        if len(node.outputs) == 1 and not _returns_tuple(target):
            env[node.outputs[0]] = call
        else:
            for i, out in enumerate(node.outputs):
                if out is not None:
                    env[out] = fx.call_function(operator.getitem, (call, i))
    fx.output({o.name: env[o.value] for o in graph.outputs})
    gm = torch.fx.GraphModule(root, fx, class_name=re.sub(r"\W", "_", graph.name) or "Rebuilt")
    gm.eval()
    return gm


def _returns_tuple(target) -> bool:
    returns = target._schema.returns
    return len(returns) != 1 or str(returns[0].type).startswith("List")
