"""The graph IR: :class:`Graph`, :class:`Node`, :class:`Value` and the composite hierarchy."""

from gnn.ir.graph import Graph, Node, Output, Value, iter_refs, map_refs

__all__ = ["Graph", "Node", "Output", "Value", "iter_refs", "map_refs"]
