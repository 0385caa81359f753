"""Edits that put new modules into a graph: ``replace_norm``, ``insert_adapter``, ``add_dropout``.

Each module is PyTorch's own (``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.Dropout``) or a
small documented one (:class:`Adapter`), traced into primitive ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers.activations import ACT2FN

from gnn.edits.ops.activation import ALIASES, activation_names
from gnn.edits.ops.base import Edit, register
from gnn.edits.surgery import boundaries, insert_after, outside_readers, replace_composite
from gnn.edits.target import Target, select
from gnn.errors import EditError, Infeasible
from gnn.ir.families import NORMS, norm_kind


def _width(graph, boundary) -> int:
    """The hidden size a composite hands on (the last dim of its output)."""
    outputs = boundary[1]
    if len(outputs) != 1:
        raise EditError(f"a composite with {len(outputs)} outputs cannot take a module after it")
    return int(graph.values[outputs[0]].shape[-1])


def _selected(graph, roles, target: Target, default_roles: list[str]) -> list[str]:
    if not target.to_dict() or (target.roles is None and target.modules is None):
        target = Target(layers=target.layers, roles=default_roles)
    sel = select(graph, roles, target)
    # innermost first would edit twice: keep selections that no other selection contains
    return [p for p in sel.paths if not any(p.startswith(q + ".") for q in sel.paths)]


@register("replace_norm")
@dataclass
class ReplaceNorm(Edit):
    """Replace normalisations (default: every ``norm.*``) with ``nn.LayerNorm`` or ``nn.RMSNorm``."""

    choices: ClassVar[dict[str, tuple[str, ...]]] = {"to": tuple(NORMS)}
    prompt_params: ClassVar[tuple[str, ...]] = ("to",)
    to: str = "rmsnorm"
    eps: float | None = None  # default: 1e-5 for layernorm, 1e-6 for rmsnorm (the usual config defaults)

    def __post_init__(self):
        if self.to not in NORMS:
            raise EditError(f"unknown norm `{self.to}` for `to`; choose one of {', '.join(sorted(NORMS))}")
        if self.eps is not None and not (isinstance(self.eps, (int, float)) and self.eps > 0):
            raise EditError(f"`eps` must be a positive number, got {self.eps!r}")

    def paths(self, graph, roles) -> list[str]:
        """The normalisation modules the target selects."""
        paths = _selected(graph, roles, self.target, ["norm.attn", "norm.mlp", "norm.final"])
        paths = [p for p in paths if any(r.startswith("norm.") for r in roles.composites.get(p, []))]
        if not paths:
            raise EditError("the target holds no normalisation (roles norm.attn, norm.mlp, norm.final)")
        return paths

    def apply(self, graph, roles):
        paths = self.paths(graph, roles)
        name = NORMS[self.to]
        if self.eps is None and all(norm_kind([graph.node_by_id[n].op for n in graph.hierarchy[p].nodes]) == name
                                    for p in paths):
            raise Infeasible(f"every norm it selects ({len(paths)}) is already {name}; nothing to change")
        sites = boundaries(graph, paths)
        shared = outside_readers(graph, sites)  # torch.onnx may give several norms one weight
        for path in paths:
            d = _width(graph, sites[path])
            if self.to == "layernorm":
                module = torch.nn.LayerNorm(d, eps=self.eps or 1e-5)
            else:
                module = torch.nn.RMSNorm(d, eps=self.eps or 1e-6)
            replace_composite(graph, path, module, sites[path], readers=shared[path])
        return {}


class Adapter(torch.nn.Module):
    """Houlsby-style bottleneck adapter: ``x + up(act(down(x)))``.

    Args:
        width: the hidden size it reads and writes.
        bottleneck: the inner size (``down``: width -> bottleneck, ``up``: bottleneck -> width).
        activation: a name in transformers' ``ACT2FN`` (``relu``, ``gelu``, ``silu``, ...).
    """

    def __init__(self, width: int, bottleneck: int, activation: str = "relu"):
        super().__init__()
        self.down = torch.nn.Linear(width, bottleneck)
        self.act = ACT2FN[activation]
        self.up = torch.nn.Linear(bottleneck, width)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return x + self.up(self.act(self.down(x)))


@register("insert_adapter")
@dataclass
class InsertAdapter(Edit):
    """Insert a bottleneck :class:`Adapter` after each targeted module (default: every ``mlp``)."""

    prompt_params: ClassVar[tuple[str, ...]] = ("bottleneck", "activation")
    bottleneck: int = 64
    activation: str = "relu"

    def __post_init__(self):
        if not isinstance(self.bottleneck, int) or isinstance(self.bottleneck, bool) or self.bottleneck < 1:
            raise EditError(f"`bottleneck` must be a positive integer, got {self.bottleneck!r}")
        if self.activation not in activation_names():
            raise EditError(f"unknown activation `{self.activation}`; choose one of {', '.join(activation_names())}")

    def paths(self, graph, roles) -> list[str]:
        """The modules an adapter follows."""
        return _selected(graph, roles, self.target, ["mlp"])

    def apply(self, graph, roles):
        paths = self.paths(graph, roles)
        sites = boundaries(graph, paths)
        for path in paths:
            width = _width(graph, sites[path])
            adapter = Adapter(width, self.bottleneck, ALIASES.get(self.activation, self.activation))
            insert_after(graph, path, adapter, f"{path}.adapter", sites[path])
        return {}


@register("add_dropout")
@dataclass
class AddDropout(Edit):
    """Add ``nn.Dropout(p)`` after each targeted module (traced in training mode, where it acts)."""

    prompt_params: ClassVar[tuple[str, ...]] = ("p",)
    p: float = 0.1

    def __post_init__(self):
        if not isinstance(self.p, (int, float)) or not 0 < self.p < 1:
            raise EditError(f"`p` must be in (0, 1), got {self.p!r}")

    def paths(self, graph, roles) -> list[str]:
        """The modules a dropout follows."""
        if not self.target.to_dict():
            raise EditError("`add_dropout` needs a target, e.g. {'roles': ['attn']}")
        return _selected(graph, roles, self.target, ["mlp"])

    def apply(self, graph, roles):
        paths = self.paths(graph, roles)
        sites = boundaries(graph, paths)
        for path in paths:
            insert_after(graph, path, torch.nn.Dropout(self.p), f"{path}.dropout_added", sites[path], train=True)
        return {}
