"""``add_lora``: the graph ``peft.get_peft_model(model, LoraConfig(...))`` produces.

Each targeted projection is wrapped in PEFT's own LoRA layer, traced: the
projection's ops and weights stay as they are, as the base layer under
``<path>.base_layer`` (so a bias-free MatMul read from ONNX gains no bias), and
``lora_A.default`` / ``lora_B.default`` add ``B(A(dropout(x))) * alpha / r``.  As with PEFT, every
other parameter is frozen and only the adapters train.  The edit also returns
the equivalent ``LoraConfig`` (target_modules, layers_to_transform,
layers_pattern, fan_in_fan_out) for the real model.

Defaults follow PEFT: rank 8, alpha 8, dropout 0, and, when the target names no
roles or modules, PEFT's default target modules for the model type.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from gnn.edits.ops.base import Edit, register
from gnn.edits.surgery import boundaries, outside_readers, wrap_composite
from gnn.edits.target import Target, select
from gnn.errors import EditError

_LINEAR_CLASSES = {"Linear": False, "Conv1D": True}  # class -> fan_in_fan_out (weight stored (in, out))


def _kind(module_class: str) -> str | None:
    """``Linear`` for nn.Linear and its subclasses by name (FalconLinear, ...), ``Conv1D``, else None."""
    if module_class in _LINEAR_CLASSES:
        return module_class
    return "Linear" if module_class.endswith("Linear") else None


def peft_default_targets(model_type: str | None) -> list[str] | None:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as mapping

    return mapping.get(model_type) if model_type else None


@register("add_lora")
@dataclass
class AddLora(Edit):
    """Add LoRA adapters to the projections the target selects."""

    prompt_params: ClassVar[tuple[str, ...]] = ("r", "alpha", "dropout")
    r: int = 8  # peft's default rank
    alpha: float = 8  # peft's default lora_alpha; the update is scaled by alpha / r
    dropout: float = 0.0  # on the adapter's input; a no-op in the traced (eval) graph

    def __post_init__(self):
        if not isinstance(self.r, int) or isinstance(self.r, bool) or self.r <= 0:
            raise EditError(f"`r` must be a positive integer, got {self.r!r}")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise EditError(f"`alpha` must be a positive number, got {self.alpha!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise EditError(f"`dropout` must be in [0, 1), got {self.dropout!r}")

    def _sites(self, graph, roles) -> list[str]:
        target = self.target
        if target.roles is None and target.modules is None and target.nodes is None:
            names = peft_default_targets(graph.meta.get("model_type"))
            if names:
                target = Target(layers=target.layers, modules=[f"*.{n}" for n in names] + names)
            else:
                fused = bool(roles.paths("attn.qkv"))
                target = Target(layers=target.layers, roles=["attn.qkv"] if fused else ["attn.q", "attn.v"])
        separate = ("attn.q", "attn.k", "attn.v")
        if target.roles and set(target.roles) & set(separate) and not any(roles.paths(r) for r in separate) \
                and roles.paths("attn.qkv"):
            # q, k and v live in one fused projection (GPT-2's c_attn): LoRA goes there, as peft does
            fused = list(dict.fromkeys("attn.qkv" if r in separate else r for r in target.roles))
            target = dataclasses.replace(target, roles=fused)
        sel = select(graph, roles, target)
        h = graph.hierarchy
        sites = []
        for path in sel.paths:  # a selected module means every projection inside it
            for p in [path] + [q for q in h.composites if q.startswith(path + ".")]:
                if not h[p].children and _kind(h[p].module_class) and p not in sites:
                    sites.append(p)
        if not sites:
            raise EditError(f"the target selects no Linear/Conv1D projection (found {', '.join(sel.paths[:3])})")
        return sites

    def apply(self, graph, roles):
        import torch
        from peft import LoraConfig, get_peft_model

        sites = self._sites(graph, roles)
        snapshot = boundaries(graph, sites)
        classes = {p: _kind(graph.hierarchy[p].module_class) for p in sites}
        shared = outside_readers(graph, snapshot)
        layers: dict[tuple, object] = {}
        fan_in_fan_out = set()
        for path in sites:
            boundary = _rows(graph, path, snapshot[path])
            fan_in_fan_out.add(_LINEAR_CLASSES[classes[path]])
            n_in, n_out = (int(graph.values[v[0]].shape[-1]) for v in boundary[:2])
            key = (n_in, n_out, self.r, self.alpha, self.dropout)
            if key not in layers:  # one peft layer per shape: injecting is slow, sites repeat
                config = LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                                    target_modules=["layer"])
                make = lambda: torch.nn.Linear(n_in, n_out, bias=False)  # noqa: E731 - a stand-in, dropped
                layers[key] = get_peft_model(_Holder(make), config).base_model.model.layer
            # the projection's own ops and weights stay, as the base layer under <path>.base_layer: a bias
            # only where it has one, its weight stored as it is (an ONNX file's pre-transposed MatMul weight)
            wrap_composite(graph, path, layers[key], boundary, readers=shared[path])
        for v in graph.parameters:  # as get_peft_model: only the adapters (this edit's and earlier ones) train
            v.meta["trainable"] = ".lora_A." in v.name or ".lora_B." in v.name
        if len(fan_in_fan_out) > 1:
            raise EditError("the target mixes Linear and Conv1D projections; peft needs one fan_in_fan_out per config")
        return {"peft_config": self._peft_config(graph, roles, sites, fan_in_fan_out.pop())}

    def _peft_config(self, graph, roles, sites, fan_in_fan_out: bool) -> dict:
        blocks = [roles.block_of(p) for p in sites]
        config = {
            "peft_type": "LORA",
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": sorted({p.rpartition(".")[2] for p in sites}),
            "fan_in_fan_out": fan_in_fan_out,
            "layers_to_transform": None,
            "layers_pattern": None,
        }
        all_blocks = set(roles.blocks)
        if self.target.layers is not None and all(blocks):
            config["layers_to_transform"] = sorted({roles.blocks[b][1] for b in blocks})
            config["layers_pattern"] = sorted({roles.blocks[b][0].rpartition(".")[2] for b in blocks})[0]
        elif all_blocks and all(blocks) and len(set(blocks)) < len(all_blocks):
            config["layers_to_transform"] = sorted({roles.blocks[b][1] for b in blocks})
        return config


def _rows(graph, path: str, boundary):
    """Where LoRA reads and adds: the projection's input and output (``[..., in] -> [..., out]``), or, when the
    module also holds a reshape an exporter merged into it (torch.onnx flattens GPT-2's attention heads and
    c_proj's rows in one Reshape), its matmul's input and output (after the bias), which the reshapes
    around it then read."""
    inputs, outputs, nodes = boundary
    nodes = [graph.node_by_id[n] for n in nodes]
    weights = list(dict.fromkeys(i for n in nodes for i in n.inputs
                                 if graph.values[i].kind == "parameter" and len(graph.values[i].shape) == 2))
    if len(weights) != 1 or len(inputs) != 1 or len(outputs) != 1:
        raise EditError(f"`{path}` is not a plain projection (one input, one output, a weight)")
    dims = sorted(graph.values[weights[0]].shape)
    last = lambda name: int(graph.values[name].shape[-1])  # noqa: E731
    shape = lambda name: graph.values[name].shape  # noqa: E731
    if sorted((last(inputs[0]), last(outputs[0]))) == dims and shape(inputs[0])[:-1] == shape(outputs[0])[:-1]:
        return boundary
    ids = {n.id for n in nodes}
    consumers = graph.consumers
    weight_of = {weights[0]} | {o for n in nodes if weights[0] in n.inputs for o in n.outputs}  # or its transpose
    for node in nodes:
        acts = [i for i in node.inputs if i not in weight_of and graph.values[i].kind in ("activation", "input")]
        if not any(i in weight_of for i in node.inputs) or len(acts) != 1 or not node.outputs:
            continue
        y = node.outputs[0]
        after = [c for c in consumers.get(y, []) if c.id in ids]
        if len(after) == 1 and after[0].op in ("aten.add.Tensor", "onnx::Add") and any(
                graph.values[i].kind == "parameter" and len(graph.values[i].shape) == 1 for i in after[0].inputs):
            y = after[0].outputs[0]  # the bias
        if sorted((last(acts[0]), last(y))) == dims and shape(acts[0])[:-1] == shape(y)[:-1]:
            return [acts[0]], [y], boundary[2]
    raise EditError(f"`{path}` is not a plain projection: its input and output are not its weight's "
                    f"{dims[0]} and {dims[1]} features")


class _Holder:
    """Builds a one-layer wrapper module so peft injects its LoRA layer the public way."""

    def __new__(cls, make):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                with torch.device("meta"):
                    self.layer = make()

            def forward(self, x):
                return self.layer(x)

        return Wrapper()
