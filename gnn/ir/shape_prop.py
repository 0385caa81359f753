"""Running a graph's ATen ops on meta tensors, as ``torch.fx.passes.shape_prop.ShapeProp`` does.

Each value is a meta tensor of its recorded shape and dtype (symbolic dims at their example
sizes) until a node computes it; then the computed tensor, with its real strides, is what
later nodes read.  Validation checks each node's outputs against the record, edits
re-infer the shapes downstream of a change, and splicing traces a module on the
meta tensors of its inputs.
"""

from __future__ import annotations

from typing import Any

import torch

from gnn.ir import ops
from gnn.ir.args import decode, dtype_from_name
from gnn.ir.graph import Graph, Node

META = torch.device("meta")


class MetaInterpreter:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.hints = graph.dim_hints
        self.tensors: dict[str, torch.Tensor] = {}

    def tensor(self, name: str) -> torch.Tensor:
        """The value ``name`` as a meta tensor: computed by a node run before, or made from its record."""
        if name not in self.tensors:
            self.tensors[name] = self.empty(name)
        return self.tensors[name]

    def empty(self, name: str) -> torch.Tensor:
        """A new meta tensor of ``name``'s recorded shape and dtype (not kept: each call makes its own)."""
        v = self.graph.values[name]
        return torch.empty(v.concrete_shape(self.hints), dtype=dtype_from_name(v.dtype), device=META)

    def run_node(self, node: Node) -> list[Any]:
        """The node's op on its inputs' meta tensors: one result per output (the op's own error if it fails)."""
        args = decode(node.args, self.tensor, META)
        kwargs = {k: decode(v, self.tensor, META) for k, v in node.kwargs.items()}
        result = ops.aten_overload(node.op)(*args, **kwargs)
        return list(result) if isinstance(result, (tuple, list)) else [result]
