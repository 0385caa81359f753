"""``freeze`` / ``unfreeze``: mark parameters trainable or not (summaries count trainable ones)."""

from __future__ import annotations

from dataclasses import dataclass

from gnn.edits.ops.base import Edit, register
from gnn.edits.target import Target, select


def owned_parameters(graph, roles, target: Target) -> list[str]:
    """Parameters owned by the target's composites (every parameter when the target is empty)."""
    if not target.to_dict():
        return [v.name for v in graph.parameters]
    sel = select(graph, roles, target)
    prefixes = tuple(p + "." for p in sel.paths)
    return [v.name for v in graph.parameters if (v.target or "").startswith(prefixes)]


@register("freeze")
@dataclass
class Freeze(Edit):
    """Mark the target's parameters frozen (not trainable); an empty target freezes everything."""

    trainable = False

    def apply(self, graph, roles):
        for name in owned_parameters(graph, roles, self.target):
            graph.values[name].meta["trainable"] = self.trainable
        return {}


@register("unfreeze")
@dataclass
class Unfreeze(Freeze):
    """Mark the target's parameters trainable again."""

    trainable = True
