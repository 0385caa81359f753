"""The heads of an attention module, read off its ops: where queries, keys and values are split into heads,
how many of each there are, and how a fused q/k/v projection is laid out.

``head_layout`` is what ``set_kv_heads`` rewrites and what facts and the dataset report
(heads, KV heads, head size); it reads the PyTorch (Core ATen) form of a graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gnn.errors import EditError
from gnn.ir.graph import Graph, Node, iter_refs

# Ops that only move, scale or copy one tensor: the path between a head split and the attention product.
LAYOUT_OPS = {"aten.view.default", "aten._unsafe_view.default", "aten.reshape.default", "aten.expand.default",
              "aten.permute.default", "aten.transpose.int", "aten.clone.default", "aten.alias.default",
              "aten.mul.Scalar", "aten.div.Scalar", "aten.mul.Tensor", "aten.div.Tensor", "aten._to_copy.default",
              "aten.unsqueeze.default", "aten.contiguous.default"}
# the ATen reshapes, whose second argument is the new shape (ONNX's Reshape reads it from a tensor)
ATEN_RESHAPES = {"aten.view.default", "aten._unsafe_view.default", "aten.reshape.default"}


def numel(shape) -> int:
    return math.prod(int(d) for d in shape)


def shape_of(graph: Graph, name: str) -> list[int]:
    hints = graph.dim_hints
    return graph.values[name].concrete_shape(hints)


def _head_split(graph: Graph, value: str, scope: set[str]) -> Node | None:
    """The reshape that splits ``value``'s last dim into (heads, head_dim), through copies and casts."""
    frontier, seen = [value], set()
    while frontier:
        name = frontier.pop(0)
        for node in graph.consumers.get(name, []):
            if node.id not in scope or node.id in seen:
                continue
            seen.add(node.id)
            if node.op in ATEN_RESHAPES and node.outputs[0]:
                src, out = shape_of(graph, name), shape_of(graph, node.outputs[0])
                if len(out) == len(src) + 1 and out[:-2] == src[:-1] and out[-2] * out[-1] == src[-1]:
                    return node
            refs = set(iter_refs(node.args))
            if node.op in LAYOUT_OPS and node.op not in ATEN_RESHAPES and refs == {name} and node.outputs[0] \
                    and shape_of(graph, node.outputs[0]) == shape_of(graph, name):
                frontier.append(node.outputs[0])  # copies, casts, scalings (OPT scales q before the split)
    return None


def descendants(graph: Graph, start: str, order: list[Node]) -> set[str]:
    reached, ids = {start}, set()
    for node in order:
        if any(name in reached for name in node.inputs):
            ids.add(node.id)
            reached.update(o for o in node.outputs if o)
    return ids


@dataclass
class Stream:
    """Keys or values from their head split to the op where they meet the queries."""

    split: Node
    core: Node | None


@dataclass
class HeadLayout:
    path: str
    heads: int
    head_dim: int
    kv_old: int
    projections: list[tuple[str, int]]  # (composite path, features per projection output) to resize
    streams: list[Stream]
    fused_split: Node | None = None  # split/slices of a concatenated fused projection
    fused_slices: list[Node] | None = None
    interleaved: str | None = None  # fused output read as per-head (q, k, v)
    fused_heads: tuple[Node, Node, list[Node]] | None = None  # (reshape to heads, q slice, k and v cuts)
    graph_order: list[Node] | None = None
    composites: dict = field(default_factory=dict)  # the projections' composites, read before any change

    def check(self, kv: int) -> None:
        if self.heads % kv:
            divisors = ", ".join(str(d) for d in range(1, self.heads + 1) if self.heads % d == 0)
            raise EditError(f"`kv_heads` must divide the {self.heads} attention heads of `{self.path}`, got {kv}; "
                            f"choose one of {divisors}")


def _children(roles, path: str, role: str) -> list[str]:
    return [p for p, r in roles.composites.items() if role in r and p.startswith(path + ".")]


def head_layout(graph: Graph, roles, path: str) -> HeadLayout:
    """The head layout of the attention module at ``path`` (an :class:`EditError` says what could not be read)."""
    h = graph.hierarchy
    scope = set(h[path].nodes)
    order = [n for n in graph.nodes if n.id in scope]
    q, k, v, qkv = (_children(roles, path, r) for r in ("attn.q", "attn.k", "attn.v", "attn.qkv"))
    where = f"`{path}`"
    if q and k and v:
        q_src = h[q[0]].outputs[0]
        kv_sources = [o for p in (k[0], v[0]) for o in h[p].outputs]
        projections = [(p, int(shape_of(graph, h[p].outputs[0])[-1])) for p in (k[0], v[0])]
        plan = HeadLayout(path, 0, 0, 0, projections, [])
    elif qkv:
        fused = h[qkv[0]].outputs
        if len(fused) != 1:
            raise EditError(f"the fused q/k/v projection of {where} is read {len(fused)} times; expected once")
        out = fused[0]
        width = int(shape_of(graph, out)[-1])
        users = [n for n in graph.consumers.get(out, []) if n.id in scope]
        plan = HeadLayout(path, 0, 0, 0, [(qkv[0], width)], [])
        splits = [n for n in users if n.op == "aten.split_with_sizes.default" and len(n.args[1]) == 3]
        slices = [n for n in users if n.op == "aten.slice.Tensor" and n.args[1] in (-1, len(shape_of(graph, out)) - 1)]
        if splits:
            plan.fused_split = splits[0]
            q_src, *kv_sources = splits[0].outputs
        elif len(slices) == 3:
            plan.fused_slices = sorted(slices, key=lambda n: n.args[2])
            q_src, *kv_sources = (n.outputs[0] for n in plan.fused_slices)
        elif _plan_interleaved(graph, plan, out, users):
            return plan
        elif (found := _head_slices(graph, plan, users)) is not None:
            q_split, kv_splits = found
            kv_sources = [n.outputs[0] for n in kv_splits]
        else:
            raise EditError(f"the fused q/k/v layout of {where} is not one set_kv_heads can regroup (it reads "
                            "concatenated [q|k|v] pieces, per-head (q, k, v) triples or [q heads|k heads|v heads])")
    else:
        raise EditError(f"cannot find the k and v projections of {where} (roles attn.k/attn.v or attn.qkv)")

    if plan.fused_heads is None:
        q_split = _head_split(graph, q_src, scope)
        kv_splits = [_head_split(graph, source, scope) for source in kv_sources]
    if q_split is None:
        raise EditError(f"cannot find where the queries of {where} are split into heads")
    plan.heads, plan.head_dim = shape_of(graph, q_split.outputs[0])[-2:]
    q_region = descendants(graph, q_split.outputs[0], order)
    kv_old = set()
    for split in kv_splits:
        if split is None:
            raise EditError(f"cannot find where the keys/values of {where} are split into heads")
        region = descendants(graph, split.outputs[0], order)
        core = next((n for n in order if n.id in region and n.id in q_region), None)
        plan.streams.append(Stream(split, core))
        heads, dim = shape_of(graph, split.outputs[0])[-2:]
        if dim != plan.head_dim:
            raise EditError(f"keys/values of {where} have head size {dim}, queries {plan.head_dim}; "
                            "set_kv_heads needs them equal")
        kv_old.add(heads)
    if len(kv_old) != 1:
        raise EditError(f"keys and values of {where} have different head counts {sorted(kv_old)}")
    plan.kv_old = kv_old.pop()
    plan.graph_order = order
    return plan


def _plan_interleaved(graph: Graph, plan: HeadLayout, out: str, users: list[Node]) -> bool:
    """A fused output reshaped straight into per-head (q, k, v): ``(heads, 3, head_dim)`` or ``(heads, 3*head_dim)``."""
    width = int(shape_of(graph, out)[-1])
    for node in users:
        if node.op not in ATEN_RESHAPES:
            continue
        shape = shape_of(graph, node.outputs[0])
        lead = len(shape_of(graph, out)) - 1
        tail = shape[lead:]
        if len(tail) == 3 and tail[1] == 3 and numel(tail) == width:
            heads, head_dim = tail[0], tail[2]
        elif len(tail) == 2 and tail[1] % 3 == 0 and numel(tail) == width:
            heads, head_dim = tail[0], tail[1] // 3
        else:
            continue
        plan.heads, plan.head_dim, plan.kv_old = heads, head_dim, heads
        plan.interleaved = out
        return True
    return False


def _head_slices(graph: Graph, plan: HeadLayout, users: list[Node]) -> tuple[Node, list[Node]] | None:
    """A fused output reshaped to ``heads + 2 * kv_heads`` heads, then cut into q, k and v heads (Falcon:
    ``qkv[..., :-2, :]``, ``qkv[..., [-2], :]``, ``qkv[..., [-1], :]``); k comes before v."""
    for node in users:
        src, out = shape_of(graph, node.inputs[0]), shape_of(graph, node.outputs[0]) if node.outputs else []
        if node.op not in ATEN_RESHAPES or len(out) != len(src) + 1 or out[-2] * out[-1] != src[-1]:
            continue
        dim = len(out) - 2
        parts = graph.consumers.get(node.outputs[0], [])
        q = [n for n in parts if n.op == "aten.slice.Tensor" and n.args[1] in (dim, -2) and n.args[2] == 0]
        kv = [n for n in parts if n not in q and n.op in ("aten.slice.Tensor", "aten.index.Tensor")]
        if len(q) != 1 or len(kv) != 2:
            continue
        plan.fused_heads = (node, q[0], kv)
        return q[0], kv
    return None


def attention_heads(graph: Graph, roles) -> tuple[int, int, int] | None:
    """``(heads, KV heads, head size)`` of the first attention module whose heads can be read, or None."""
    for path in roles.paths("attn"):
        try:
            layout = head_layout(graph, roles, path)
        except (EditError, KeyError, IndexError, ValueError):
            continue
        return int(layout.heads), int(layout.kv_old), int(layout.head_dim)
    return None
