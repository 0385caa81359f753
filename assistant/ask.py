"""Questions about a graph, answered from its facts.

A question is matched to the fact it asks about (all-MiniLM-L6-v2 similarity to a few
phrasings per fact); the answer is a sentence made from that fact, so it is as true as
the graph.  A question no fact answers gets the list of what can be asked, not a guess.
"""

from __future__ import annotations

import functools

from assistant.facts import Facts

MIN_SCORE = 0.6

# fact -> phrasings people use for it
QUESTIONS: dict[str, list[str]] = {
    "layers": ["how many layers does it have", "how deep is the model", "number of blocks", "how many transformer blocks",
               "layer count", "number of decoder layers", "how many encoder layers"],
    "hidden": ["what is the hidden size", "how wide is the model", "model dimension d_model", "embedding width",
               "hidden dimension", "width of the hidden states", "dimensionality of the token representations"],
    "attention": ["how many attention heads", "number of query heads", "how many kv heads",
                  "number of key value heads", "what is the head dimension", "head size",
                  "dimension per attention head", "what kind of attention", "is it multi-query or grouped-query",
                  "does it use GQA", "attention variant", "how are keys and values shared across heads"],
    "norm": ["which normalization", "which norm does it use", "is it RMSNorm or LayerNorm", "pre-norm or post-norm",
             "layer norm type", "where are the norms placed"],
    "activation": ["which activation function", "what nonlinearity", "does it use SwiGLU", "is the MLP gated",
                   "is the feed-forward gated", "GELU or ReLU", "activation in the feed-forward"],
    "mlp_hidden": ["what is the intermediate size", "feed-forward inner width", "mlp hidden size", "ffn dimension",
                   "how wide is the feed-forward layer"],
    "positions": ["what positional encoding", "does it use rotary embeddings", "how are positions encoded",
                  "RoPE or ALiBi", "does it use RoPE", "does it use ALiBi", "position embeddings",
                  "how is sequence position represented", "what tells the model where each token is"],
    "params": ["how many parameters", "what is the parameter count", "how big is the model",
               "how many trainable parameters", "model size in parameters", "how many weights are trainable"],
    "vocab": ["what is the vocabulary size", "how many tokens in the vocabulary", "how big is the vocab"],
    "kind": ["what kind of model is it", "is it a decoder or an encoder", "what architecture type",
             "is it encoder-decoder", "is it a vision model"],
    "tied_embeddings": ["are the embeddings tied", "does it tie input and output embeddings", "weight tying",
                        "is the output head tied to the embedding", "shared input and output embeddings"],
    "lora": ["does it have LoRA", "are there adapters", "is LoRA applied", "has it been fine-tuned with adapters"],
}


@functools.cache
def _index():
    from assistant.retrieval import encoder

    keys = [k for k, qs in QUESTIONS.items() for _ in qs]
    vectors = encoder().encode([q for qs in QUESTIONS.values() for q in qs], normalize_embeddings=True,
                               convert_to_tensor=True)
    return keys, vectors


def match(question: str) -> tuple[str | None, float]:
    """The fact ``question`` asks about, and the similarity; ``None`` below :data:`MIN_SCORE`."""
    from assistant.retrieval import encoder

    keys, vectors = _index()
    scores = vectors @ encoder().encode([question], normalize_embeddings=True, convert_to_tensor=True)[0]
    best = int(scores.argmax())
    score = float(scores[best])
    return (keys[best] if score >= MIN_SCORE else None), round(score, 4)


def _unknown(what: str) -> str:
    return f"The graph does not show its {what}."


def answer_fact(f: Facts, key: str) -> str:
    if key == "layers":
        stacks = ", ".join(f"{n} in `{p}`" for p, n in f.stacks.items())
        return f"It has {f.layers} repeated blocks" + (f" ({stacks})." if len(f.stacks) > 1 else ".")
    if key == "hidden":
        if f.hidden and f.hidden_last:
            return f"Its width (hidden size) grows by stage: {f.hidden} in the first, {f.hidden_last} in the last."
        return f"Its width (hidden size) is {f.hidden}." if f.hidden else _unknown("width")
    if key == "attention":
        if not f.heads:
            return _unknown("attention heads")
        return (f"{f.attention.capitalize()} attention: {f.heads} query heads, {f.kv_heads} key/value "
                f"head{'s' if f.kv_heads != 1 else ''}, head size {f.head_dim}.")
    if key == "norm":
        if not f.norm:
            return _unknown("normalization")
        return f"{f.norm}" + (f", {f.norm_position}" if f.norm_position else "") + "."
    if key == "activation":
        if not f.activation:
            return _unknown("activation")
        return f"{f.activation}" + (" in a gated feed-forward (gate and up projections)." if f.gated_mlp
                                    else " in a plain two-projection feed-forward.")
    if key == "mlp_hidden":
        return f"The feed-forward inner width is {f.mlp_hidden}." if f.mlp_hidden else _unknown("feed-forward width")
    if key == "positions":
        return {"rotary": "Rotary position embeddings (RoPE) on queries and keys.",
                "learned absolute": "A learned absolute position embedding.",
                "relative bias": "A learned relative-position bias on the attention scores (T5 style).",
                "alibi": "ALiBi: linear biases on the attention scores by distance.",
                "sinusoidal": "Sinusoidal position encodings.",
                None: "No position embedding appears in the graph."}[f.positions]
    if key == "params":
        trainable = "all trainable" if f.trainable_params == f.params else f"{f.trainable_params:,} trainable"
        return f"{f.params:,} parameters ({trainable})."
    if key == "vocab":
        if f.vocab and f.vocab_source != "logits":
            return f"It has no LM head; its token embeddings have {f.vocab:,} rows."
        return f"A vocabulary of {f.vocab:,} tokens." if f.vocab else _unknown("vocabulary")
    if key == "kind":
        from assistant.describe import KINDS

        return f"It is {KINDS[f.kind]}." if f.kind else _unknown("kind")
    if key == "tied_embeddings":
        return "Yes, input and output embeddings are tied." if f.tied_embeddings else \
            "No, input and output embeddings are separate."
    if key == "lora":
        return "Yes, it has LoRA adapters." if f.lora else "No LoRA adapters are in the graph."
    raise KeyError(key)


def ask(f: Facts, question: str) -> tuple[str, str | None]:
    """``(answer, fact key)``; the key is ``None`` when no fact answers the question."""
    key, _ = match(question)
    if key is None:
        return ("I can answer about its " + ", ".join(k.replace("_", " ") for k in QUESTIONS) +
                "; for a whole picture use `mad describe`.", None)
    return answer_fact(f, key), key
