"""``set_kv_heads``: multi-head, grouped-query or multi-query attention, by graph surgery.

In every attention composite (role ``attn``) the edit finds where the keys and
values come from (separate ``attn.k``/``attn.v`` projections, or the pieces of a
fused ``attn.qkv`` projection), follows each to the reshape that splits it into
heads and on to the op where it meets the queries, and then:

1. shrinks or grows the projection's output features to ``kv_heads * head_dim``
   (a fused projection's split sizes with it);
2. removes a grouped-query repeat already in place, and
3. where ``kv_heads`` is less than the query heads, repeats each k/v head for its
   group of query heads exactly as transformers' ``repeat_kv`` does: on the
   ``(batch, kv_heads, seq, head_dim)`` tensor right before the attention product,
   after rotary embeddings (query head ``h`` reads k/v head ``h // group``).

A graph of a Llama-like model edited this way is the graph transformers builds
with ``num_key_value_heads`` changed (the tests check it op by op).  Attention
that packs q, k and v per head in one fused projection (BLOOM, GPT-NeoX) gets
its fused output rebuilt from the smaller projection, so the rest of the block is
unchanged.  Shapes downstream are re-inferred and the result is re-validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from gnn.analysis.attention import (
    ATEN_RESHAPES,
    LAYOUT_OPS,
    HeadLayout,
    Stream,
    descendants,
    head_layout,
    numel,
    shape_of,
)
from gnn.edits.ops.base import Edit, register
from gnn.edits.surgery import drop_nodes, reinfer_shapes, splice
from gnn.errors import EditError, Infeasible
from gnn.ir.graph import Graph, Node, iter_refs, map_refs


class RepeatKV(torch.nn.Module):
    """transformers' ``repeat_kv``: each of the k/v heads (dim ``dim``) serves ``n_rep`` query heads."""

    def __init__(self, n_rep: int, dim: int = 1):
        super().__init__()
        self.n_rep, self.dim = n_rep, dim

    def forward(self, x):
        shape, d = list(x.shape), self.dim
        grown = x.unsqueeze(d + 1).expand(*shape[:d + 1], self.n_rep, *shape[d + 1:])
        return grown.reshape(*shape[:d], shape[d] * self.n_rep, *shape[d + 1:])


class InterleavedQKV(torch.nn.Module):
    """From a fused ``[q | k | v]`` projection with ``kv_heads`` heads, the per-head interleaved layout
    ``(heads, 3, head_dim)`` that BLOOM- and GPT-NeoX-style attention reads."""

    def __init__(self, heads: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim

    def forward(self, x):
        lead, h, kv, d = list(x.shape[:-1]), self.heads, self.kv_heads, self.head_dim
        q, k, v = x.split([h * d, kv * d, kv * d], dim=-1)
        q = q.reshape(*lead, h, d)
        k = k.reshape(*lead, kv, 1, d).expand(*lead, kv, h // kv, d).reshape(*lead, h, d)
        v = v.reshape(*lead, kv, 1, d).expand(*lead, kv, h // kv, d).reshape(*lead, h, d)
        return torch.stack([q, k, v], dim=-2).reshape(*lead, 3 * h * d)


@register("set_kv_heads")
@dataclass
class SetKVHeads(Edit):
    """Set the number of key/value heads: the head count is MHA, 1 is MQA, a divisor in between is GQA."""

    prompt_params: ClassVar[tuple[str, ...]] = ("kv_heads",)
    prompt_note: ClassVar[str] = "1 is multi-query"
    kv_heads: int = 1

    def __post_init__(self):
        if not isinstance(self.kv_heads, int) or isinstance(self.kv_heads, bool) or self.kv_heads < 1:
            raise EditError(f"`kv_heads` must be a positive integer, got {self.kv_heads!r}")
        if self.target.to_dict():
            raise EditError("`set_kv_heads` applies to the whole model; give no target")

    def apply(self, graph, roles):
        # a well-formed set_kv_heads that fails here fails for the graph's sake: no other program does it
        if graph.meta.get("origin") == "onnx" or any(n.op.startswith("onnx::") for n in graph.nodes):
            raise Infeasible("`set_kv_heads` rewrites the tensor ops of PyTorch graphs; this graph was read from ONNX "
                             "(import the model from its Hugging Face config or PyTorch module instead)")
        attention = [p for p, r in roles.composites.items() if "attn" in r]
        if not attention:
            raise Infeasible("the graph has no attention (role `attn`) whose k/v heads could be set")
        try:
            plans = [head_layout(graph, roles, path) for path in attention]
            for plan in plans:
                plan.check(self.kv_heads)
        except EditError as e:
            raise Infeasible(str(e)) from None
        if all(plan.kv_old == self.kv_heads for plan in plans):
            raise Infeasible(f"the attention already has {self.kv_heads} key/value head"
                             f"{'s' if self.kv_heads > 1 else ' (multi-query)'}; nothing to change")
        for plan in plans:
            plan.composites = {path: graph.hierarchy[path] for path, _ in plan.projections}
        # Read everything off the graph first, then change it in three sweeps (arguments, removals,
        # insertions from the back): rebuilding lookups after each of 64 sites costs seconds on an 8B graph.
        producers = graph.producers
        rewrite = _Rewrite()
        for plan in plans:
            _apply(plan, graph, self.kv_heads, rewrite)
        drop_nodes(graph, rewrite.drop)
        position = {n.id: i for i, n in enumerate(graph.nodes)}
        for site, module, path, output, readers in sorted(
                rewrite.insertions, key=lambda ins: position[producers[ins[0]].id], reverse=True):
            at = position[producers[site].id] + 1
            if output is not None:  # the module takes over the value's name; the site gets a new one
                site = _rename_output(graph, producers[site], site)
            new = _insert(graph, module, site, at, path, rewrite.seeds, output=output)
            for node in readers:
                node.args = map_refs(node.args, lambda r: new if r == site else r)
                node.kwargs = map_refs(node.kwargs, lambda r: new if r == site else r)
            rewrite.dirty.add(site)
        graph.invalidate()
        reinfer_shapes(graph, rewrite.seeds, rewrite.dirty)
        return {}


@dataclass
class _Rewrite:
    """What the plans change: nodes to re-infer, values whose shape changed, nodes to drop, and
    modules to insert as (after value, module, module path, output name or None, readers to rewire)."""

    seeds: set[str] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)
    drop: set[str] = field(default_factory=set)
    insertions: list[tuple] = field(default_factory=list)


def _head_dims(graph: Graph, split: Node, region: list[Node]) -> dict[str, int]:
    """Where the head dim sits in each value between a head split and the attention product."""
    where = {split.outputs[0]: len(shape_of(graph, split.outputs[0])) - 2}
    for node in region:
        srcs = [n for n in node.inputs if n in where]
        if not srcs or not node.outputs or not node.outputs[0]:
            continue
        h, src, out = where[srcs[0]], shape_of(graph, srcs[0]), shape_of(graph, node.outputs[0])
        if node.op == "aten.permute.default":
            h = list(node.args[1]).index(h) if h in node.args[1] else list(node.args[1]).index(h - len(src))
        elif node.op == "aten.transpose.int":
            a, b = (d % len(src) for d in node.args[1:3])
            h = b if h == a else a if h == b else h
        elif node.op == "aten.unsqueeze.default":
            h = h + 1 if node.args[1] % (len(src) + 1) <= h else h
        elif node.op in ATEN_RESHAPES:
            # the head dim keeps its offset; it may merge with a neighbour (a repeat's reshape)
            fits = [i for i in range(len(out)) if numel(out[:i]) == numel(src[:h]) and out[i] % src[h] == 0]
            keep = h if h in fits else fits[-1] if fits else None  # size-1 dims fit anywhere: prefer staying
            if keep is None:
                continue
            h = keep
        elif len(out) != len(src) and out[:h + 1] != src[:h + 1]:
            continue
        where[node.outputs[0]] = h
    return where


def _repeat_pattern(graph: Graph, name: str) -> tuple[list[Node], str] | None:
    """An existing ``repeat_kv`` (unsqueeze, expand, clone?, reshape) reading ``name``: its nodes and output."""
    for node in graph.consumers.get(name, []):
        if node.op != "aten.unsqueeze.default":
            continue
        chain, cur = [node], node
        while True:
            users = graph.consumers.get(cur.outputs[0], [])
            if len(users) != 1:
                break
            cur = users[0]
            chain.append(cur)
            if cur.op in ATEN_RESHAPES:
                src, out = shape_of(graph, name), shape_of(graph, cur.outputs[0])
                if len(out) == len(src) and numel(out) > numel(src) and [o for o, s in zip(out, src) if o != s]:
                    return chain, cur.outputs[0]
                break
            if cur.op not in ("aten.expand.default", "aten.clone.default"):
                break
    return None


def _apply(plan: HeadLayout, graph: Graph, kv: int, rewrite: "_Rewrite") -> None:
    """Change the graph's attention ``plan`` describes to ``kv`` key/value heads (the changes ``rewrite`` collects)."""
    if kv == plan.kv_old:
        return
    seeds, dirty = rewrite.seeds, rewrite.dirty
    sites = [_unrepeat(graph, stream, plan, kv, rewrite) for stream in plan.streams]
    for proj, per_output in plan.projections:
        _resize_projection(graph, plan.composites[proj], per_output, _new_features(plan, kv, per_output),
                           seeds, dirty)
    if plan.fused_split is not None:
        sizes = list(plan.fused_split.args[1])
        sizes[1:] = [kv * plan.head_dim] * 2
        plan.fused_split.args[1] = sizes
        seeds.add(plan.fused_split.id)
    if plan.fused_slices:
        q_end = plan.heads * plan.head_dim
        bounds = [(0, q_end), (q_end, q_end + kv * plan.head_dim), (q_end + kv * plan.head_dim, 2**63 - 1)]
        for node, (start, end) in zip(plan.fused_slices, bounds):
            node.args[2:4] = [start, end]
            seeds.add(node.id)
    if plan.fused_heads is not None:
        reshape, q, cuts = plan.fused_heads
        shape = list(reshape.args[1])
        reshape.args[1] = shape[:-2] + [plan.heads + 2 * kv, shape[-1]]
        q.args[3] = plan.heads
        for i, node in enumerate(cuts):  # k, then v: plain slices of kv heads
            gone = [r for r in iter_refs(node.args) if graph.values[r].kind == "constant"]
            node.op = "aten.slice.Tensor"
            node.args = [node.args[0], len(shape) - 2, plan.heads + i * kv, plan.heads + (i + 1) * kv]
            for name in gone:
                if all(n is node for n in graph.consumers.get(name, [])):
                    graph.inputs.remove(name)
                    del graph.values[name]
        seeds.update({reshape.id, q.id, *(n.id for n in cuts)})
    if plan.interleaved is not None:
        out = plan.interleaved
        graph.values[out].shape[-1] = _new_features(plan, kv, 0)
        rewrite.insertions.append((out, InterleavedQKV(plan.heads, kv, plan.head_dim), plan.path, out, []))
        return
    for stream, (site, dim, readers) in zip(plan.streams, sites):
        seeds.add(stream.split.id)
        if stream.split.op in ATEN_RESHAPES and stream.split.args[1][-2] != -1:
            shape = list(stream.split.args[1])
            stream.split.args[1] = shape[:-2] + [kv, shape[-1]]
        if kv != plan.heads:
            graph.values[site].shape[dim] = kv  # the traced repeat must see the new head count
            rewrite.insertions.append((site, RepeatKV(plan.heads // kv, dim), plan.path, None, readers))


def _new_features(plan: HeadLayout, kv: int, old: int) -> int:
    if plan.interleaved is not None or plan.fused_split is not None or plan.fused_slices or plan.fused_heads:
        return (plan.heads + 2 * kv) * plan.head_dim
    return old // plan.kv_old * kv


def _rename_output(graph: Graph, producer: Node, name: str) -> str:
    """Give the value ``name`` a new name at its producer (readers keep reading ``name``); return it."""
    new = name + "_kv"
    producer.outputs = [new if o == name else o for o in producer.outputs]
    graph.values[new] = graph.values.pop(name)
    graph.values[new].name = new
    return new


# -- rewriting ----------------------------------------------------------------------------


def _resize_projection(graph: Graph, comp, old: int, new: int, seeds: set[str], dirty: set[str]) -> None:
    """Give the projection composite ``comp`` ``new`` output features: its weight, bias and output reshapes."""
    if comp.children:
        raise EditError(f"`{comp.path}` holds sub-modules ({', '.join(c.rpartition('.')[2] for c in comp.children)}); "
                        "set kv heads before adding LoRA or adapters to it")
    nodes = [graph.node_by_id[i] for i in comp.nodes]
    params = [n for n in comp.parameters if graph.values[n].kind == "parameter"]
    for name in params:
        value = graph.values[name]
        readers = graph.consumers.get(name, [])
        if len(value.shape) == 1:
            dim = 0
        elif any(r.op in ("aten.permute.default", "aten.t.default", "aten.transpose.int") for r in readers):
            dim = 0  # nn.Linear: (out, in), transposed for the matmul
        else:
            dim = len(value.shape) - 1  # Conv1D-style (in, out)
        if value.shape[dim] != old:
            raise EditError(f"cannot tell the output features of `{name}` {value.shape}; expected {old}")
        value.shape[dim] = new
        dirty.add(name)
    downstream = set()
    for name in params:
        downstream |= descendants(graph, name, nodes)
    for node in nodes:
        if node.id in downstream and (node.op in ATEN_RESHAPES or node.op == "aten.expand.default"):
            shape = list(node.args[1])
            if shape and shape[-1] == old:
                node.args[1] = shape[:-1] + [new]
                seeds.add(node.id)


def _unrepeat(graph: Graph, stream: Stream, plan: HeadLayout, kv: int, rewrite: "_Rewrite") -> tuple[str, int, list]:
    """Drop a grouped-query repeat on the stream; return where a new one goes (value, head dim, its readers).

    Reshapes between the head split and that place that name the head count
    explicitly (GPT-J's rotary embedding) get the new count.

    That is where transformers' ``repeat_kv`` sits: the ``(batch, heads, seq, head_dim)``
    tensor nearest the split on the run of layout-only ops that ends at the attention
    product (after rotary embeddings, before the transpose and scaling), or else the
    head split itself.
    """
    if stream.core is None:
        raise EditError(f"the keys/values of `{plan.path}` never meet its queries")
    split_out = stream.split.outputs[0]
    region = descendants(graph, split_out, plan.graph_order)
    entry = next(n for n in stream.core.inputs
                 if n == split_out or (n in graph.producers and graph.producers[n].id in region))
    chain = [entry]
    while chain[-1] != split_out:
        node = graph.producers[chain[-1]]
        refs = list(dict.fromkeys(iter_refs(node.args)))
        if node.op not in LAYOUT_OPS or len(refs) != 1:
            break
        chain.append(refs[0])
    chain.reverse()
    heads_at = _head_dims(graph, stream.split, [n for n in plan.graph_order if n.id in region])
    rewired: dict[str, list[Node]] = {}  # value -> readers it gained from a dropped repeat
    for i, name in enumerate(chain):
        found = _repeat_pattern(graph, name)
        if found and found[1] in chain[i:]:
            nodes, out = found
            chain = chain[:i + 1] + chain[chain.index(out) + 1:]
            rewired[name] = graph.consumers.get(out, [])
            for node in rewired[name]:
                node.args = map_refs(node.args, lambda r: name if r == out else r)
                node.kwargs = map_refs(node.kwargs, lambda r: name if r == out else r)
            rewrite.drop.update(n.id for n in nodes)
            break

    def readers(value: str) -> list[Node]:
        return [n for n in graph.consumers.get(value, []) if n.id not in rewrite.drop] + rewired.get(value, [])

    site = next((n for n in chain if heads_at.get(n) == 1 and len(shape_of(graph, n)) == 4), None)
    if site is None:
        return split_out, len(shape_of(graph, split_out)) - 2, readers(split_out)
    # explicit head counts: before the new repeat, or all the way to the product without one
    upstream, todo = set(), [site if kv < plan.heads else chain[-1]]
    while todo:
        node = graph.producers.get(todo.pop())
        if node is not None and node.id in region and node.id not in upstream:
            upstream.add(node.id)
            todo.extend(node.inputs)
    for node in plan.graph_order:
        if node.id in upstream and (node.op in ATEN_RESHAPES or node.op == "aten.expand.default"):
            h, shape = heads_at.get(node.outputs[0]), list(node.args[1])
            if h is not None and h < len(shape) and shape[h] == plan.kv_old:
                shape[h] = kv
                node.args[1] = shape
                rewrite.seeds.add(node.id)
    return site, 1, readers(site)


def _insert(graph: Graph, module: torch.nn.Module, site: str, at: int, path: str, seeds: set[str],
            output: str | None = None) -> str:
    """Splice ``module(site)`` in at node index ``at``, as nodes of the attention module (their ids go
    into ``seeds``); return its output."""
    before = len(graph.nodes)
    new = splice(graph, module, [site], at, module_path=path, output=output)
    cls = graph.modules.get(path, "")
    for node in graph.nodes[at:at + len(graph.nodes) - before]:
        node.module, node.module_class = path, cls  # like transformers' own repeat_kv
        seeds.add(node.id)
    return new
