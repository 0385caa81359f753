"""Targets: which composites and nodes an edit applies to.

A target's fields intersect: ``layers`` (indices of repeated blocks, negative
from the end, counted in each stack), ``roles`` (see ``gnn.roles``), ``modules``
(module-path globs; a plain name with no dot or wildcard matches the modules whose
path ends with it, as peft's ``target_modules`` does: ``q_proj``) and ``nodes``
(explicit node ids).  An absent field does not restrict.  A target that selects
nothing is an error that says what exists.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from gnn.errors import EditError, Infeasible
from gnn.ir.graph import Graph
from gnn.roles import ROLES, RoleMap


@dataclass
class Target:
    layers: list[int] | None = None
    roles: list[str] | None = None
    modules: list[str] | None = None
    nodes: list[str] | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> "Target":
        data = data or {}
        unknown = set(data) - {"layers", "roles", "modules", "nodes"}
        if unknown:
            raise EditError(f"unknown target field `{sorted(unknown)[0]}`; a target has layers, roles, modules, nodes")
        for role in data.get("roles") or []:
            if role not in ROLES:
                raise EditError(f"unknown role `{role}`; roles are: {', '.join(ROLES)}")
        return cls(**{k: list(v) for k, v in data.items() if v is not None})

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Selection:
    paths: list[str] = field(default_factory=list)  # composites, in the graph's order
    nodes: list[str] = field(default_factory=list)  # module-less nodes (functional activations, explicit ids)
    blocks: list[str] = field(default_factory=list)  # the blocks the layers field picked


def layer_blocks(graph: Graph, roles: RoleMap, layers: list[int]) -> list[str]:
    """Blocks at the given indices, per stack; negative indices count from each stack's end."""
    stacks = roles.stacks()
    if not stacks:
        raise EditError("the graph has no repeated blocks, so `layers` cannot select anything")
    picked = []
    for prefix, blocks in stacks.items():
        n = len(blocks)
        for i in layers:
            if not -n <= i < n:
                sizes = ", ".join(f"{p}: {len(b)} layers (0..{len(b) - 1})" for p, b in stacks.items())
                raise Infeasible(f"layer {i} is out of range; {sizes}")  # the request names a block the graph lacks
            picked.append(blocks[i])
    return list(dict.fromkeys(picked))


def module_matches(path: str, pattern: str) -> bool:
    """Whether module ``path`` matches a ``modules`` entry: a glob, or a plain name that ends the path (peft)."""
    if not any(c in pattern for c in ".*?["):
        return path == pattern or path.endswith("." + pattern)
    return fnmatch.fnmatchcase(path, pattern)


def select(graph: Graph, roles: RoleMap, target: Target) -> Selection:
    h = graph.hierarchy
    order = list(h.composites)
    sel = Selection()
    blocks = layer_blocks(graph, roles, target.layers) if target.layers is not None else None
    sel.blocks = blocks or []

    def in_blocks(path: str) -> bool:
        return blocks is None or any(path == b or path.startswith(b + ".") for b in blocks)

    if target.nodes is not None:
        missing = [n for n in target.nodes if n not in graph.node_by_id]
        if missing:
            raise EditError(f"no node `{missing[0]}` in the graph (node ids are in the graph JSON)")
        sel.nodes = [n for n in target.nodes if in_blocks(graph.node_by_id[n].module)]
        return _nonempty(sel, graph, roles, target)
    paths = [p for p in order if p and in_blocks(p)]
    if target.roles is not None:
        paths = [p for p in paths if set(roles.composites.get(p, [])) & set(target.roles)]
        sel.nodes = [n for n, r in roles.nodes.items() if set(r) & set(target.roles)
                     and in_blocks(graph.node_by_id[n].module)]
    elif target.layers is not None and target.modules is None:
        paths = list(blocks)
    if target.modules is not None:
        paths = [p for p in paths if any(module_matches(p, g) for g in target.modules)]
        sel.nodes = [n for n in sel.nodes if any(module_matches(graph.node_by_id[n].module, g) for g in target.modules)]
    sel.paths = paths
    return _nonempty(sel, graph, roles, target)


def _nonempty(sel: Selection, graph: Graph, roles: RoleMap, target: Target) -> Selection:
    if sel.paths or sel.nodes:
        return sel
    found = roles.found()
    stacks = {}
    for prefix, _ in roles.blocks.values():
        stacks[prefix] = stacks.get(prefix, 0) + 1
    layers = ", ".join(f"{p} ({n} layers)" for p, n in stacks.items()) or "no repeated blocks"
    raise EditError(
        f"target {target.to_dict()} matches nothing; the graph has roles {', '.join(found) or 'none'} and {layers}"
    )
