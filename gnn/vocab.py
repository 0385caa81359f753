"""The vocabularies a graph is labelled with: structural roles, node roles, architecture kinds.

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


# node-level roles the graph model predicts: the edit engine's leaf roles, then op-level ones; "other" last
MODULE_ROLES = ["attn.q", "attn.k", "attn.v", "attn.o", "attn.qkv", "mlp.up", "mlp.gate", "mlp.down",
                "norm.attn", "norm.mlp", "norm.final", "embed.tokens", "embed.positions", "lm_head", "act"]
OP_ROLES = ["attn.scores", "attn.softmax", "attn.context", "residual"]
NODE_ROLES = MODULE_ROLES + OP_ROLES + ["other"]

# architecture kinds, told apart by what a model takes in and what its head is
KINDS = ["decoder", "encoder", "encoder-decoder", "vision", "audio", "multimodal"]


def kind_of(inputs: str, model_class: str) -> str:
    """The kind of a model traced with ``inputs`` (comma-separated names) whose class is ``model_class``."""
    names = set(inputs.split(","))
    if "decoder_input_ids" in names:
        return "encoder-decoder"
    if names & {"input_features", "input_values"}:
        return "audio"
    if "pixel_values" in names:
        return "multimodal" if "input_ids" in names else "vision"
    # causal LM heads: *ForCausalLM, and the older *LMHeadModel (GPT-2, GPT, CTRL)
    return "decoder" if "CausalLM" in model_class or model_class.endswith("LMHeadModel") else "encoder"
