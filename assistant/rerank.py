"""Choosing among the model's best answers by what they say back: reranking beam candidates.

The language model decodes a few answers under the answer schema (beam search); each is
read back into plain English (:func:`render`: ``set_kv_heads 2`` is "set the number of
key/value heads to 2, grouped-query attention"), and the sentence encoder (all-MiniLM-L6-v2,
the one retrieval uses) scores how close that reading is to the request.  The answer kept
maximises the model's own (length-normalised) log-probability plus ``weight`` times that
similarity, so a program that says something else than the request ("insert 2 layers" for
"use 2 key-value heads") loses to one the model thought nearly as likely that says the same.
Whether the kept answer is made at all is the reading's call (:mod:`assistant.reading`: the
program is held to the request's words, or becomes a question naming them).  The weight is chosen on the
development phrasings (``corpora/dev_phrasings.json``, written
apart from both the training grammar and the held-out phrasings) by
``python -m assistant.training.evaluate_llm --tune-rerank``.
"""

from __future__ import annotations

import json
import re

from gnn.ir.families import NORMS

# the edit language's activations, as a request names them
ACTS = {"gelu": "GELU", "silu": "SiLU", "relu": "ReLU", "gelu_new": "tanh-approximated GELU", "mish": "Mish",
        "relu2": "squared ReLU"}

ROLE_WORDS = {
    "attn": "the attention", "attn.q": "the query projection", "attn.k": "the key projection",
    "attn.v": "the value projection", "attn.o": "the attention output projection",
    "attn.qkv": "the fused query/key/value projection", "mlp": "the feed-forward (MLP)",
    "mlp.up": "the MLP up projection", "mlp.gate": "the MLP gate projection", "mlp.down": "the MLP down projection",
    "act": "the activation", "norm.attn": "the attention norm", "norm.mlp": "the MLP norm",
    "norm.final": "the final norm", "embed.tokens": "the token embedding", "embed.positions": "the position embedding",
    "lm_head": "the LM head", "block": "the blocks",
}


def _layers(layers: list[int]) -> str:
    if layers == [-1]:
        return "the last layer"
    if layers and layers == list(range(-len(layers), 0)):
        return f"the last {len(layers)} layers"
    return "layers " + ", ".join(map(str, layers))


def _where(target: dict | None, default: str = "") -> str:
    target = target or {}
    parts = []
    if target.get("roles"):
        parts.append(" and ".join(ROLE_WORDS.get(r, r) for r in target["roles"]))
    if target.get("modules"):
        parts.append(", ".join(target["modules"]))
    if target.get("layers"):
        parts.append(("in " if parts else "") + _layers(target["layers"]))
    return " ".join(parts) or default


def _param(e: dict, name: str):
    """An edit's parameter, or the engine's default for it."""
    import dataclasses

    from gnn.edits.ops.base import EDITS

    if name in e:
        return e[name]
    field = next(f for f in dataclasses.fields(EDITS[e["op"]]) if f.name == name)
    return field.default


def _edit(e: dict) -> str:
    op, target = e["op"], e.get("target")
    if op == "add_lora":
        rank = f" with rank {e['r']}" if "r" in e else ""
        where = _where(target)
        return f"add LoRA adapters{rank}" + (f" to {where}" if where else " with the default settings")
    if op == "remove_layers":
        return f"remove {_where(target, 'layers')}, making the model shallower"
    if op == "insert_layers":  # n layers on top (deeper by n) reads apart from one after each of the last n
        n, layers = _param(e, "count"), (target or {}).get("layers") or [-1]
        s = "s" if n != 1 else ""
        if len(layers) > 1:
            return f"insert {n} layer{s} after each of {_layers(layers)}"
        where = "on top of the last layer" if layers == [-1] else f"after {_layers(layers)}"
        return f"add {n} more layer{s} {where}, making the model {n} layer{s} deeper"
    if op == "replace_activation":
        return f"replace the activation function with {ACTS.get(_param(e, 'to'), _param(e, 'to'))}"
    if op == "replace_norm":
        return f"replace the normalization layers with {NORMS.get(_param(e, 'to'), _param(e, 'to'))}"
    if op == "set_kv_heads":
        kv = _param(e, "kv_heads")
        return ("use multi-query attention: one key/value head shared by all query heads" if kv == 1 else
                f"use grouped-query attention with {kv} key/value heads")
    if op == "insert_adapter":
        act = f" and {e['activation']} activation" if "activation" in e else ""
        where = _where(target)
        return (f"insert bottleneck adapters of size {_param(e, 'bottleneck')}{act}"
                + (f" after {where}" if where else ""))
    if op == "add_dropout":
        return f"add dropout with probability {_param(e, 'p')} after {_where(target, 'each block')}"
    if op == "freeze":
        return f"freeze {_where(target, 'the whole model')}"
    if op == "unfreeze":
        return f"unfreeze {_where(target, 'the whole model')} so it trains"
    return json.dumps(e)


def render(answer: dict) -> str:
    """An answer read back in plain English."""
    if answer["action"] == "ask":
        return "ask a question: " + answer["question"]
    if answer["action"] == "refuse":
        return "refuse: " + answer["reason"]
    edits = answer["edits"]
    if [e["op"] for e in edits] == ["freeze", "unfreeze"]:
        return f"freeze everything except {_where(edits[1].get('target'), 'nothing')}, which stays trainable"
    return "; then ".join(_edit(e) for e in edits)


def _reading(request: str, answer: dict) -> str:
    """What an answer says about ``request``: its reading, less any copy of the request a question or refusal
    quotes (a refusal that only repeats the request would otherwise read as the closest answer of all)."""
    text = render(answer)
    if answer["action"] == "edit":
        return text
    quoted = request.strip().rstrip(".?!").strip()
    return re.sub(re.escape(quoted), "", text, flags=re.IGNORECASE) if quoted else text


# Shorthand and config names practitioners type, spelt out before the request is compared with the readings (the
# sentence encoder reads "attn to mqa" as far from "use multi-query attention")
SHORTHAND = {
    "attn": "attention", "mqa": "multi-query attention", "gqa": "grouped-query attention", "kv": "key/value",
    "ffn": "feed-forward", "mlp": "MLP feed-forward", "ln": "layer norm", "blk": "block", "blks": "blocks",
    "pls": "please", "w/": "with", "act": "activation", "cfg": "config", "rm": "remove", "exc.": "except",
    "params": "parameters", "q": "query", "k": "key", "v": "value", "qv": "query and value",
    "q_proj": "query projection", "k_proj": "key projection", "v_proj": "value projection",
    "o_proj": "attention output projection", "num_key_value_heads": "number of key/value heads",
    "n_kv_heads": "number of key/value heads", "num_kv_heads": "number of key/value heads",
    "multi_query": "multi-query attention", "hidden_act": "activation function", "num_hidden_layers": "number of layers",
    "n_layer": "number of layers", "target_modules": "target modules", "loraconfig": "LoRA config",
    "get_peft_model": "add LoRA with peft", "requires_grad=false": "frozen", "adapter_size": "adapter bottleneck size",
    "layers_to_transform": "layers to add LoRA to", "attn_pdrop": "attention dropout",
}
_SHORTHAND = re.compile(r"(?<![\w/])(" + "|".join(map(re.escape, sorted(SHORTHAND, key=len, reverse=True)))
                        + r")(?![\w/])", re.IGNORECASE)


def spelt_out(request: str) -> str:
    """``request`` with its shorthand (:data:`SHORTHAND`) in words: "attn -> mqa" reads "attention -> multi-query
    attention"."""
    return _SHORTHAND.sub(lambda m: SHORTHAND[m.group(1).lower()], request)


def similarities(request: str, answers: list[dict]) -> list[float]:
    """Cosine similarity of the request (its shorthand spelt out) to each answer's reading."""
    from assistant.retrieval import encoder

    vectors = encoder().encode([spelt_out(request)] + [_reading(request, a) for a in answers],
                               normalize_embeddings=True, convert_to_tensor=True)
    return (vectors[1:] @ vectors[0]).tolist()


def choose(request: str, candidates: list[tuple[str, float]], weight: float) -> int:
    """Index of the candidate (raw answer, log-probability) to keep; unparsable answers only if all are."""
    parsed = []
    for raw, _ in candidates:
        try:
            parsed.append(json.loads(raw))
        except json.JSONDecodeError:
            parsed.append(None)
    ok = [i for i, a in enumerate(parsed) if a is not None]
    if len(ok) <= 1 or not weight:
        return ok[0] if ok else 0
    sims = similarities(request, [parsed[i] for i in ok])
    return max(zip(ok, sims), key=lambda x: candidates[x[0]][1] + weight * x[1])[0]
