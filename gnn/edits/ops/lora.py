"""``add_lora``: the graph ``peft.get_peft_model(model, LoraConfig(...))`` produces.

Each targeted projection is rebuilt as PEFT's own LoRA layer, traced: the base
layer keeps its weights under ``<path>.base_layer``, and ``lora_A.default`` /
``lora_B.default`` add ``B(A(dropout(x))) * alpha / r``.  As with PEFT, every
other parameter is frozen and only the adapters train.  The edit also returns
the equivalent ``LoraConfig`` (target_modules, layers_to_transform,
layers_pattern, fan_in_fan_out) for the real model.

Defaults follow PEFT: rank 8, alpha 8, dropout 0, and, when the target names no
roles or modules, PEFT's default target modules for the model type.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass

from gnn.edits.ops.base import Edit, register
from gnn.edits.surgery import boundaries, replace_composite
from gnn.edits.target import EditError, Target, select

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
        layers: dict[tuple, object] = {}
        fan_in_fan_out = set()
        for path in sites:
            comp_inputs, comp_outputs, comp_nodes = snapshot[path]
            cls = classes[path]
            weight = graph.values.get(f"{path}.weight")
            bias = graph.values.get(f"{path}.bias")
            if weight is None or len(comp_inputs) != 1 or len(comp_outputs) != 1:
                raise EditError(f"`{path}` is not a plain projection (one input, one output, a weight)")
            if _LINEAR_CLASSES[cls]:
                from transformers.pytorch_utils import Conv1D

                fan_in_fan_out.add(True)
                n_in, n_out = weight.shape
                make = lambda: Conv1D(n_out, n_in)  # noqa: E731
            else:
                fan_in_fan_out.add(False)
                n_out, n_in = weight.shape
                make = lambda: torch.nn.Linear(n_in, n_out, bias=bias is not None)  # noqa: E731
            key = (cls, n_in, n_out, bias is not None, self.r, self.alpha, self.dropout)
            if key not in layers:  # one peft layer per shape: injecting is slow, sites repeat
                config = LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                                    target_modules=["layer"], fan_in_fan_out=_LINEAR_CLASSES[cls])
                layers[key] = get_peft_model(_Holder(make), config).base_model.model.layer
            layer = layers[key]
            # the base layer takes the projection's weights over, under <path>.base_layer
            replace_composite(graph, path, layer, snapshot[path])
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
