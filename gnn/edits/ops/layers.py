"""``remove_layers``: drop repeated blocks, rewire the residual stream, renumber the rest.

A block reads the residual stream from the block before it and hands a value of
the same shape to the one after; removing it hands its input straight on.
Shared inputs (rotary tables, masks) stay; what only the block needed goes with
it.  Later blocks are renumbered, so the result matches the same model built
with ``num_hidden_layers`` one smaller.
"""

from __future__ import annotations

from dataclasses import dataclass

from gnn.edits.ops.base import Edit, register
from gnn.edits.surgery import drop_nodes, drop_state, prune_dead, rename_prefix
from gnn.edits.target import EditError, select


def stream_of(graph, block: str) -> tuple[str, str]:
    """(input, output) of a block's residual stream: the boundary values of one shape and dtype."""
    comp = graph.hierarchy[block]
    if len(comp.outputs) != 1:
        raise EditError(f"block `{block}` hands on {len(comp.outputs)} values; only single-stream blocks can be rewired")
    out = graph.values[comp.outputs[0]]
    same = [v for v in comp.inputs if graph.values[v].shape == out.shape and graph.values[v].dtype == out.dtype]
    if not same:
        raise EditError(f"block `{block}` has no input shaped like its output {out.shape}; cannot bypass it")
    index = {o: i for i, n in enumerate(graph.nodes) for o in n.outputs if o}
    # the stream is the latest-produced candidate (graph inputs count as earliest)
    return max(same, key=lambda v: index.get(v, -1)), out.name


@register("remove_layers")
@dataclass
class RemoveLayers(Edit):
    """Remove the blocks selected by ``target.layers`` (and ``target.modules``, if given)."""

    def apply(self, graph, roles):
        if self.target.layers is None and self.target.modules is None:
            raise EditError("`remove_layers` needs target.layers (e.g. [-1]) or target.modules naming blocks")
        sel = select(graph, roles, self.target)
        blocks = [p for p in (sel.blocks or sel.paths) if p in roles.blocks]
        if not blocks:
            raise EditError(f"`remove_layers` target selects no block; blocks look like {next(iter(roles.blocks), '?')}")
        stacks: dict[str, list[str]] = {}
        for b, (prefix, _) in roles.blocks.items():
            stacks.setdefault(prefix, []).append(b)
        for prefix, members in stacks.items():
            if all(b in blocks for b in members):
                raise EditError(f"`remove_layers` would remove every block of `{prefix}`; keep at least one")
        for block in sorted(blocks, key=lambda b: -roles.blocks[b][1]):
            stream_in, stream_out = stream_of(graph, block)
            inside = set(graph.hierarchy[block].nodes)
            for node in graph.nodes:
                if node.id not in inside:
                    node.args = _swap(node.args, stream_out, stream_in)
                    node.kwargs = _swap(node.kwargs, stream_out, stream_in)
            for out in graph.outputs:
                if out.value == stream_out:
                    out.value = stream_in
            drop_nodes(graph, inside)
            drop_state(graph, block)
            prune_dead(graph)
        for prefix, members in stacks.items():
            kept = [b for b in members if b not in blocks]
            for new_index, old in enumerate(kept):
                if roles.blocks[old][1] != new_index:
                    rename_prefix(graph, old, f"{prefix}.{new_index}")
        return {}


def _swap(obj, old: str, new: str):
    from gnn.ir.graph import map_refs

    return map_refs(obj, lambda r: new if r == old else r)
