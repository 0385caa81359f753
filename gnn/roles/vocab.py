"""The structural role vocabulary.

Roles name what a part of a network does, independent of how a model family
spells it: Llama's ``q_proj``, BERT's ``attention.self.query`` and T5's
``SelfAttention.q`` are all ``attn.q``.  Names follow Hugging Face / PEFT usage
where one exists.
"""

ROLES: dict[str, str] = {
    "block": "one repeated layer of a stack (a decoder layer, an encoder block)",
    "attn": "an attention module (self- or cross-attention) with its projections",
    "attn.q": "the query projection",
    "attn.k": "the key projection",
    "attn.v": "the value projection",
    "attn.o": "the attention output projection",
    "attn.qkv": "a fused query/key/value projection (GPT-2's c_attn)",
    "mlp": "the feed-forward part of a block (one module, or the modules that make it up)",
    "mlp.up": "the feed-forward up projection",
    "mlp.gate": "the gate projection of a gated feed-forward (SwiGLU, GeGLU)",
    "mlp.down": "the feed-forward down projection",
    "act": "an activation function (a module, or the op itself where there is no module)",
    "norm.attn": "the normalisation that belongs to a block's attention (pre- or post-norm)",
    "norm.mlp": "the normalisation that belongs to a block's feed-forward (pre- or post-norm)",
    "norm.final": "the normalisation after the last block of a stack",
    "embed.tokens": "the token embedding",
    "embed.positions": "a learned position embedding",
    "lm_head": "the projection from hidden states to vocabulary logits",
}


def check_role(role: str) -> None:
    from gnn.errors import MadError

    if role not in ROLES:
        raise MadError(f"unknown role `{role}`; roles are: {', '.join(ROLES)}")


_LAYER_NORM_OPS = {"aten.native_layer_norm.default", "aten.layer_norm.default", "onnx::LayerNormalization"}
_RMS_OPS = {"aten.rsqrt.default", "onnx::Sqrt", "aten.sqrt.default"}
_MEAN_OPS = {"aten.mean.dim", "onnx::ReduceMean"}


def norm_kind(ops: list[str]) -> str | None:
    """``LayerNorm`` or ``RMSNorm`` from the primitive ops a norm runs (None: neither)."""
    if any(op in _LAYER_NORM_OPS for op in ops):
        return "LayerNorm"
    if any(op in _RMS_OPS for op in ops) and any(op in _MEAN_OPS for op in ops):
        # LayerNorm written out subtracts the mean first: a sub before the variance
        return "LayerNorm" if any(op in ("aten.sub.Tensor", "onnx::Sub") for op in ops) else "RMSNorm"
    return None
