"""Descriptions of architectures, written from :class:`assistant.facts.Facts` only.

Every number and name in a description is a field of the facts (so of the graph);
a fact the graph does not show is said to be unknown rather than guessed.
"""

from __future__ import annotations

from assistant.facts import Facts

KINDS = {"decoder": "a decoder-only transformer", "encoder": "an encoder-only transformer",
         "encoder-decoder": "an encoder-decoder transformer", "vision": "a vision transformer",
         "audio": "an audio model", "multimodal": "a multimodal model"}


def _n(x: int) -> str:
    return f"{x:,}"


def _ref(m: dict) -> str:
    where = f"arXiv:{m['arxiv']}" if m.get("arxiv") else "no arXiv version"
    return f"{m['name']}: \"{m['paper']}\" ({m['year']}, {where})"


def describe(f: Facts) -> str:
    """A few paragraphs: kind and size, attention, feed-forward, norm, positions, parameters, methods."""
    kind = KINDS.get(f.kind or "", "a model of unknown kind")
    stacks = ", ".join(f"{n} in `{p}`" for p, n in f.stacks.items()) if len(f.stacks) > 1 else None
    depth = f"{f.layers} repeated blocks" + (f" ({stacks})" if stacks else "")
    width = f"width {f.hidden}" if f.hidden else "width unknown"
    if f.hidden and f.hidden_last:
        width = f"width {f.hidden} in the first stage to {f.hidden_last} in the last"
    # a vocabulary is what the head predicts over; without a head, the table may hold more rows (image tokens)
    vocab = "" if not f.vocab else f", a vocabulary of {_n(f.vocab)} tokens" if f.vocab_source == "logits" \
        else f", token embeddings for {_n(f.vocab)} ids"
    lines = [f"{f.name} is {kind} with {depth}, {width}{vocab}."]
    if f.heads:
        variant = {"multi-head": f"multi-head attention with {f.heads} heads",
                   "multi-query": f"multi-query attention: {f.heads} query heads share 1 key/value head",
                   "grouped-query": f"grouped-query attention: {f.heads} query heads share {f.kv_heads} "
                                    f"key/value heads ({f.heads // f.kv_heads} per group)"}[f.attention]
        proj = "one fused q/k/v projection" if f.fused_qkv else "separate q, k and v projections"
        lines.append(f"Attention: {variant}, head size {f.head_dim}, from {proj}.")
    else:
        lines.append("Attention: its heads could not be read off the graph.")
    if f.activation or f.mlp_hidden:
        act = f.activation or "an activation the graph does not name"
        gate = "a gated feed-forward (the activation of a gate projection times an up projection)" if f.gated_mlp \
            else "a feed-forward of two projections"
        inner = f", inner width {f.mlp_hidden}" if f.mlp_hidden else ""
        lines.append(f"Feed-forward: {gate} with {act}{inner}.")
    if f.norm:
        where = {"pre-norm": "before each attention and feed-forward (pre-norm)",
                 "post-norm": "after each residual add (post-norm)", None: ""}[f.norm_position]
        lines.append(f"Normalization: {f.norm}" + (f" {where}" if where else "") + ".")
    positions = {"rotary": "rotary embeddings applied to queries and keys",
                 "learned absolute": "a learned absolute position embedding added to the input embeddings",
                 "relative bias": "a learned relative-position bias added to the attention scores",
                 "sinusoidal": "sinusoidal position encodings",
                 "alibi": "linear biases on the attention scores by query-key distance (ALiBi)",
                 None: "no position embedding appears in the graph"}[f.positions]
    lines.append(f"Positions: {positions}.")
    trainable = "all trainable" if f.trainable_params == f.params else f"{_n(f.trainable_params)} trainable"
    tied = "tied" if f.tied_embeddings else "not tied"
    lines.append(f"Parameters: {_n(f.params)} ({trainable}); input and output embeddings {tied}.")
    extras = [x for x, on in (("LoRA adapters", f.lora), ("bottleneck adapters", f.adapters)) if on]
    if extras:
        lines.append("Added by edits: " + " and ".join(extras) + ".")
    if f.methods:
        lines.append("Methods it uses:\n" + "\n".join(f"- {_ref(m)}" for m in f.methods))
    return "\n".join(lines)
