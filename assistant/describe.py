"""Descriptions of architectures, written from :class:`assistant.facts.Facts` only.

Every number and name in a description is a field of the facts (so of the graph, or,
marked "(from the config)", of the config settings a short trace cannot show); a fact
neither shows is said to be unknown, or not said, rather than guessed.
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


def _num(x: float) -> str:
    return f"{x:g}"


def _marked(f: Facts, parts: list[tuple[str, str]]) -> str:
    """Clauses joined, each fact read from the config marked; one mark at the end when all of them are."""
    if all(name in f.from_config for _, name in parts):
        return ", ".join(text for text, _ in parts) + " (from the config)"
    return ", ".join(text + (" (from the config)" if name in f.from_config else "") for text, name in parts)


def _window(f: Facts) -> str:
    where, others = "in every layer", ""
    layers, n = f.sliding_window_layers, f.config_layers
    if layers is not None and n:
        kinds = [i in layers for i in range(n)]
        period = next(p for p in range(1, n + 1) if all(kinds[i] == kinds[i % p] for i in range(n)))
        if period < n:
            where = f"in {sum(kinds[:period])} of every {period} layers"
        else:  # no repeating pattern: the layers by index (an edit that removed or added layers: the config's)
            of = f"of {n}" if n == f.layers else f"of the config's {n} layers"
            where = ("in layer " if len(layers) == 1 else "in layers ") + ", ".join(map(str, layers)) + f" {of}"
        others = ", in the others to the whole context"
    window = _n(f.sliding_window)
    return f"Sliding-window attention: {where}, each query attends to the last {window} tokens only{others}"


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
    if f.sliding_window:
        lines.append(_marked(f, [(_window(f), "sliding_window")]) + ".")
    if f.softcapping:
        said = {"attention": "attention scores at {}", "final": "final logits at {}"}
        caps = " and ".join(said[k].format(_num(v)) for k, v in f.softcapping.items() if k in said)
        lines.append(_marked(f, [(f"Soft-capping (cap * tanh(x / cap)): {caps}", "softcapping")]) + ".")
    if f.activation or f.mlp_hidden:
        act = f.activation or "an activation the graph does not name"
        gate = "a gated feed-forward (the activation of a gate projection times an up projection)" if f.gated_mlp \
            else "a feed-forward of two projections"
        if f.fused_gate_up:
            gate = "a gated feed-forward (the activation of a gate projection times an up projection, both halves " \
                   "of one fused projection)"
        inner = f", inner width {f.mlp_hidden}" if f.mlp_hidden else ""
        lines.append(f"Feed-forward: {gate} with {act}{inner}.")
    if f.experts:
        parts = [(f"Mixture of experts: {f.experts} experts", "experts")]
        if f.experts_per_token:
            parts.append((f"each token routed to {f.experts_per_token} of them", "experts_per_token"))
        if f.shared_experts:
            parts.append((f"{f.shared_experts} shared expert{'s' if f.shared_experts > 1 else ''} every token goes "
                          f"through", "shared_experts"))
        lines.append(_marked(f, parts) + ".")
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
    if f.rope_scaling:
        r = f.rope_scaling
        scaling = f"RoPE scaling: {r['type']}" + (f", factor {_num(r['factor'])}" if r.get("factor") else "")
        if r.get("layers"):
            scaling += f", in the {r['layers'].replace('_attention', '')}-attention layers"
        lines.append(_marked(f, [(scaling, "rope_scaling")]) + ".")
    trainable = "all trainable" if f.trainable_params == f.params else f"{_n(f.trainable_params)} trainable"
    tied = "tied" if f.tied_embeddings else "not tied"
    lines.append(f"Parameters: {_n(f.params)} ({trainable}); input and output embeddings {tied}.")
    extras = [x for x, on in (("LoRA adapters", f.lora), ("bottleneck adapters", f.adapters)) if on]
    if extras:
        lines.append("Added by edits: " + " and ".join(extras) + ".")
    if f.methods:
        lines.append("Methods it uses:\n" + "\n".join(f"- {_ref(m)}" for m in f.methods))
    return "\n".join(lines)
