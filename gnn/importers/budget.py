"""Bounded work: what tracing a Hugging Face config will cost, estimated from its depth before any of it, and the
limit a config is refused over (``--max-ops``), with a message that says the estimate and how to lift it.

Light on purpose (no torch): the command line reads :data:`MAX_OPS` for its help.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from gnn.errors import SourceError
from gnn.importers.hf_config import all_configs

# Tracing costs about the same per block whatever its width: the graph's size and the time follow the depth.
# Measured here: 63 (GPT-2) to 131 (Qwen3-MoE) ops per block; Llama-3-8B's shape 105 ops and 0.195 s per block
# (docs/benchmarks.md, "Growth with depth"; more per block past a few hundred).
LAYER_FIELDS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers", "encoder_layers", "decoder_layers",
                "num_encoder_layers", "num_decoder_layers", "encoder_num_hidden_layers", "decoder_num_hidden_layers",
                "depth", "depths")
OPS_PER_LAYER = 150  # a little above the largest measured, so the estimate errs high
BASE_OPS = 200  # embeddings, heads, towers' stems
SECONDS_PER_LAYER = 0.2
MAX_OPS = 40_000  # about 265 blocks, a minute: twice the deepest public model's (Llama-3.1-405B, 126)
ENV = "MAD_MAX_OPS"  # the default limit for a whole process (the app), where no --max-ops is given


@dataclass(frozen=True)
class Estimate:
    layers: dict[str, int]  # (config's model type).field -> its blocks
    ops: int
    seconds: float


def estimate(config) -> Estimate:
    """The work of tracing ``config``, from its depth alone (every stack of every sub-config), before any of it."""
    layers: dict[str, int] = {}
    for cfg in all_configs(config):
        values = cfg.to_dict()
        for name in LAYER_FIELDS:
            value = values.get(name)
            if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value):
                value = sum(value)  # Swin-style stages
            if name == "num_layers" and "depths" in values:
                continue  # the stage count of the stages' depths
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                layers[f"{cfg.model_type}.{name}"] = value
    depth = sum(layers.values())
    return Estimate(layers, BASE_OPS + OPS_PER_LAYER * depth, SECONDS_PER_LAYER * depth)


def check_budget(spec: str, config, max_ops: int | None = None) -> Estimate:
    """Refuse, before any work, a config whose :func:`estimate` is over ``max_ops`` (default: ``$MAD_MAX_OPS``, else
    :data:`MAX_OPS`), saying the estimate and how to lift the limit."""
    limit = max_ops if max_ops is not None else default_limit()
    est = estimate(config)
    if est.ops > limit:
        lower = ""
        if est.layers:
            field_, depth = max(est.layers.items(), key=lambda kv: kv[1])
            lower = f"lower the depth (--set {field_.split('.')[-1]}=N, now {depth:,}) or "
        raise SourceError(
            f"`{spec}` is estimated at {est.ops:,} ops ({sum(est.layers.values()):,} blocks, about "
            f"{_duration(est.seconds)} to trace), over the limit of {limit:,}; {lower}raise the limit "
            f"(--max-ops {est.ops}, or {ENV}={est.ops} in the environment)")
    return est


def default_limit() -> int:
    """The limit where none is given: ``$MAD_MAX_OPS``, else :data:`MAX_OPS`."""
    raw = os.environ.get(ENV, "").strip().replace("_", "")
    if not raw:
        return MAX_OPS
    if not raw.isdigit() or int(raw) < 1:
        raise SourceError(f"{ENV}={os.environ[ENV]!r} is not a positive whole number of ops (default {MAX_OPS:,})")
    return int(raw)


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"
