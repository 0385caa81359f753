"""``remove_layers``: drop repeated blocks, rewire the residual stream, renumber the rest.

A block reads the residual stream from the block before it and hands a value of
the same shape to the one after; removing it hands its input straight on.
Shared inputs (rotary tables, masks) stay; what only the block needed goes with
it.  Later blocks are renumbered, so the result matches the same model built
with ``num_hidden_layers`` one smaller.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from typing import ClassVar

from gnn.edits.ops.base import Edit, register
from gnn.edits.surgery import drop_nodes, drop_state, prune_dead, redirect, rename_prefix
from gnn.edits.target import select
from gnn.errors import EditError, Infeasible


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


def target_blocks(edit: Edit, graph, roles) -> tuple[list[str], dict[str, list[str]]]:
    """The blocks an edit's target picks, and every stack's blocks in order."""
    if edit.target.layers is None and edit.target.modules is None:
        raise EditError(f"`{edit.op}` needs target.layers (e.g. [-1]) or target.modules naming blocks")
    sel = select(graph, roles, edit.target)
    blocks = [p for p in (sel.blocks or sel.paths) if p in roles.blocks]
    if not blocks:
        raise EditError(f"`{edit.op}` target selects no block; blocks look like {next(iter(roles.blocks), '?')}")
    stacks = roles.stacks()
    if edit.target.modules is None and len(stacks) > 1:
        # `layers` alone means residual blocks: leave out stacks whose blocks change the
        # stream's shape (a convolutional feature extractor), unless nothing else is left.
        residual = [b for b in blocks if _bypassable(graph, b)]
        blocks = residual or blocks
    return blocks, stacks


def _bypassable(graph, block: str) -> bool:
    try:
        stream_of(graph, block)
        return True
    except EditError:
        return False


@register("remove_layers")
@dataclass
class RemoveLayers(Edit):
    """Remove the blocks selected by ``target.layers`` (and ``target.modules``, if given)."""

    def apply(self, graph, roles):
        blocks, stacks = target_blocks(self, graph, roles)
        for prefix, members in stacks.items():
            if all(b in blocks for b in members):
                raise Infeasible(f"`remove_layers` would remove every block of `{prefix}` ({len(members)}); "
                                 f"it can remove up to {len(members) - 1}")
        for block in sorted(blocks, key=lambda b: -roles.blocks[b][1]):
            stream_in, stream_out = stream_of(graph, block)
            inside = set(graph.hierarchy[block].nodes)
            redirect(graph, stream_out, stream_in, skip=inside)
            read = {name for n in inside for name in graph.node_by_id[n].inputs}
            drop_nodes(graph, inside)
            drop_state(graph, block, read)
            graph.modules.pop(block, None)
            prune_dead(graph)
        for prefix, members in stacks.items():
            kept = [b for b in members if b not in blocks]
            for new_index, old in enumerate(kept):
                if roles.blocks[old][1] != new_index:
                    rename_prefix(graph, old, f"{prefix}.{new_index}")
        return {}


@register("insert_layers")
@dataclass
class InsertLayers(Edit):
    """Insert ``count`` new blocks after each targeted block (no target: after the last, making the model deeper
    on top, as ``num_hidden_layers`` larger does); ``init="copy"`` copies its structure.

    New blocks have parameters of the same shapes (a state dict can fill them, or
    random weights); the residual stream runs through them, and later blocks are
    renumbered, as in the same model built with ``num_hidden_layers`` larger.
    """

    choices: ClassVar[dict[str, tuple[str, ...]]] = {"init": ("copy",)}
    prompt_params: ClassVar[tuple[str, ...]] = ("count",)
    count: int = 1
    init: str = "copy"

    def __post_init__(self):
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise EditError(f"`count` must be a positive integer, got {self.count!r}")
        if self.init != "copy":
            raise EditError(f"`init` must be 'copy' (new blocks copy the targeted block), got {self.init!r}")

    def apply(self, graph, roles):
        if self.target.layers is None and self.target.modules is None:
            self.target = dataclasses.replace(self.target, layers=[-1])
        blocks, stacks = target_blocks(self, graph, roles)
        _check_size(graph, sum(len(graph.hierarchy[b].nodes) for b in blocks) * self.count, len(blocks) * self.count)
        # Renumber first, from the end, so new blocks get free indices right after their source.
        plan: dict[str, list[str]] = {}  # source block (new path) -> new block paths
        for prefix, members in stacks.items():
            new_index, moves = 0, []
            for old in members:
                moves.append((old, f"{prefix}.{new_index}"))
                copies = [f"{prefix}.{new_index + k + 1}" for k in range(self.count)] if old in blocks else []
                if copies:
                    plan[f"{prefix}.{new_index}"] = copies
                new_index += 1 + len(copies)
            for old, new in reversed(moves):
                if old != new:
                    rename_prefix(graph, old, new)
        for source, copies in plan.items():
            for before, path in zip([source] + copies, copies):  # each copy follows the one before
                _copy_block(graph, before, path)
        return {}


def _check_size(graph, added: int, blocks: int) -> None:
    """Refuse, before any change, an insertion that would take the graph over the work limit (the import's)."""
    from gnn.importers.budget import ENV, default_limit

    limit, total = default_limit(), len(graph.nodes) + added
    if total > limit:
        raise EditError(f"inserting {blocks:,} blocks would make the graph {total:,} ops, over the limit of "
                        f"{limit:,}; insert fewer (`count`), or raise the limit ({ENV}={total} in the environment)")


def _copy_block(graph, source: str, new: str) -> None:
    """Duplicate block ``source`` as ``new`` right after it, threading the residual stream through."""
    import copy as _copy

    from gnn.edits.surgery import fresh_tag
    from gnn.ir.graph import map_refs

    stream_in, stream_out = stream_of(graph, source)
    comp = graph.hierarchy[source]
    inside = set(comp.nodes)
    tag = fresh_tag()
    rename = {stream_in: stream_out}
    for name in list(graph.inputs):  # parameters and buffers of the block, same shapes
        v = graph.values[name]
        if v.kind != "input" and (v.target or "").startswith(source + "."):
            twin = _copy.deepcopy(v)
            twin.target = new + v.target[len(source):]
            twin.name = twin.target
            twin.meta.pop("trainable", None)
            graph.values[twin.name] = twin
            graph.inputs.append(twin.name)
            rename[name] = twin.name
    nodes = [n for n in graph.nodes if n.id in inside]
    for n in nodes:
        for o in n.outputs:
            if o:
                rename[o] = tag + o
    copies = []
    for n in nodes:
        twin = _copy.deepcopy(n)
        twin.id = tag + n.id
        twin.args = map_refs(twin.args, lambda r: rename.get(r, r))
        twin.kwargs = map_refs(twin.kwargs, lambda r: rename.get(r, r))
        twin.outputs = [rename.get(o, o) if o else o for o in n.outputs]
        twin.module = new + n.module[len(source):] if n.module.startswith(source) else n.module
        for o, t in zip(n.outputs, twin.outputs):
            if o:
                v = _copy.deepcopy(graph.values[o])
                v.name = t
                graph.values[t] = v
        copies.append(twin)
    redirect(graph, stream_out, rename[stream_out], skip=inside)  # later readers read the new block's output
    last = max(i for i, n in enumerate(graph.nodes) if n.id in inside)
    graph.nodes[last + 1:last + 1] = copies
    for path, cls in list(graph.modules.items()):
        if path == source or path.startswith(source + "."):
            graph.modules.setdefault(new + path[len(source):], cls)
    graph.invalidate()
