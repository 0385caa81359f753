"""What a role labeler returns, and the registry labelers plug into.

A labeler maps a graph to a :class:`RoleMap`: roles of composites (module
paths), roles of single nodes (an activation op with no module of its own),
and the block index of each repeated layer.  The rule-based labeler
(``gnn.roles.rules``) reads module names, classes and local structure; a learned
labeler for graphs without names registers itself the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gnn.errors import MadError
from gnn.ir.graph import Graph
from gnn.registry import Registry


@dataclass
class RoleMap:
    composites: dict[str, list[str]] = field(default_factory=dict)  # module path -> roles
    nodes: dict[str, list[str]] = field(default_factory=dict)  # node id -> roles (module-less ops)
    blocks: dict[str, tuple[str, int]] = field(default_factory=dict)  # block path -> (stack prefix, index)
    parameters: dict[str, str] = field(default_factory=dict)  # batched expert weights -> projection role
    confidence: dict[str, float] = field(default_factory=dict)  # path or node id -> probability (learned labeler)

    def add(self, path: str, role: str) -> None:
        roles = self.composites.setdefault(path, [])
        if role not in roles:
            roles.append(role)

    def add_node(self, node_id: str, role: str) -> None:
        roles = self.nodes.setdefault(node_id, [])
        if role not in roles:
            roles.append(role)

    def add_blocks(self, hierarchy) -> None:
        """Every block of the model's layer stacks (top-level repeats the trace ran) gets role ``block``."""
        for rep in hierarchy.top_repeats():
            if not all(hierarchy[p].nodes for p in rep.paths):
                continue  # a stack the trace never ran (a vision tower in a text-only trace)
            for i, path in zip(rep.indices, rep.paths):
                self.blocks[path] = (rep.prefix, i)
                self.add(path, "block")

    def stacks(self) -> dict[str, list[str]]:
        """Each layer stack (``model.layers``) and its blocks in order."""
        out: dict[str, list[str]] = {}
        for block, (prefix, _) in self.blocks.items():
            out.setdefault(prefix, []).append(block)
        return out

    def paths(self, role: str) -> list[str]:
        return [p for p, roles in self.composites.items() if role in roles]

    def block_of(self, path: str) -> str | None:
        """The block (repeated layer) a module path lies in, if any."""
        for block in self.blocks:
            if path == block or path.startswith(block + "."):
                return block
        return None

    def found(self) -> dict[str, int]:
        """How many composites (and module-less nodes) carry each role: what a labeler found."""
        counts: dict[str, int] = {}
        for roles in list(self.composites.values()) + list(self.nodes.values()) + [[r] for r in self.parameters.values()]:
            for r in roles:
                counts[r] = counts.get(r, 0) + 1
        return dict(sorted(counts.items()))


LABELERS: Registry = Registry()  # name -> labeler(graph) -> RoleMap
register = LABELERS.register


def label(graph: Graph, labeler: str = "rules") -> RoleMap:
    """Label a graph's roles with the named labeler (cached on the graph per labeler)."""
    if labeler not in LABELERS:
        raise MadError(f"unknown role labeler `{labeler}`; choose one of {', '.join(sorted(LABELERS))}")
    cache = graph.cache.setdefault("roles", {})
    if labeler not in cache:
        cache[labeler] = LABELERS[labeler](graph)
    return cache[labeler]
