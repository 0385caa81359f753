"""``replace_activation``: swap the activation wherever it sits (gated MLPs included).

The new activation is transformers' own (``ACT2CLS``: ``gelu``, ``gelu_pytorch_tanh``,
``silu``, ``relu``, ``quick_gelu``, ...), traced into primitive ops, so the edited
graph equals the model built with ``hidden_act`` set to that name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gnn.edits.ops.base import Edit, register
from gnn.edits.surgery import drop_nodes, redirect, splice
from gnn.edits.target import Target, select
from gnn.errors import EditError

ALIASES = {"gelu_tanh": "gelu_pytorch_tanh", "swish": "silu"}


def activation_names() -> list[str]:
    from transformers.activations import ACT2CLS

    return sorted(set(ACT2CLS) | set(ALIASES))


def make_activation(name: str):
    from transformers.activations import ACT2CLS

    cls = ACT2CLS[ALIASES.get(name, name)]
    return cls[0](**cls[1]) if isinstance(cls, tuple) else cls()


@register("replace_activation")
@dataclass
class ReplaceActivation(Edit):
    """Replace every activation the target selects (default: all of them) with ``to``."""

    prompt_params: ClassVar[tuple[str, ...]] = ("to",)
    to: str = "gelu"

    def __post_init__(self):
        if self.to not in activation_names():
            raise EditError(f"unknown activation `{self.to}` for `to`; choose one of {', '.join(activation_names())}")

    def apply(self, graph, roles):
        t = self.target  # activations only: roles default to `act`
        sel = select(graph, roles, Target(layers=t.layers, roles=t.roles or ["act"], modules=t.modules, nodes=t.nodes))
        sites = [(p, set(graph.hierarchy[p].nodes)) for p in sel.paths if "act" in roles.composites.get(p, [])]
        sites += [(graph.node_by_id[n].module, {n}) for n in sel.nodes]
        if not sites:
            raise EditError("the target holds no activation (role `act`)")
        for path, ids in sites:
            ids = {i for i in ids if i in graph.node_by_id}
            inside = [n for n in graph.nodes if n.id in ids]
            produced = {o for n in inside for o in n.outputs if o}
            ins = list(dict.fromkeys(v for n in inside for v in n.inputs
                                     if v not in produced and graph.values[v].kind in ("activation", "input")))
            read_outside = {v for n in graph.nodes if n.id not in ids for v in n.inputs} | {o.value for o in graph.outputs}
            outs = [o for o in produced if o in read_outside]
            if len(ins) != 1 or len(outs) != 1:
                raise EditError(f"activation at `{path or '<root>'}` has {len(ins)} inputs and {len(outs)} outputs; expected 1 and 1")
            at = graph.nodes.index(inside[0])
            enclosing_class = inside[0].module_class
            drop_nodes(graph, ids)
            module = make_activation(self.to)
            made = splice(graph, module, ins, at, module_path=path, output=outs[0])
            if made != outs[0]:  # an identity ("linear") traces to no op: its readers read its input
                redirect(graph, outs[0], made)
                graph.values.pop(outs[0], None)
            is_module = path in sel.paths  # an activation module, not an op inside a larger one
            cls = type(module).__name__ if is_module else enclosing_class
            if is_module:
                graph.modules[path] = cls
            for node in graph.nodes:
                if node.module == path:
                    node.module_class = cls
        return {}
