"""Instruction data: requests paired with the answer the assistant should give for a given graph.

Each intent has several phrasings; the last ``HELD_OUT`` of each are never trained on
(the held-out phrasings of the evaluation).  The right answer depends on the graph,
as it does for a person: "use GQA with 3 KV heads" is an edit on a model with 12
heads and a refusal naming the divisors on one with 8; "switch to RMSNorm" on a model
that already has it is a plain statement, not an edit; "make it smaller" is a
question back.  Answers are the JSON the assistant is decoded under
(:mod:`assistant.schema`).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass

from assistant.facts import CORPORA, Facts

HELD_OUT = 2  # phrasings per intent kept for evaluation

ACTS = {"gelu": "GELU", "silu": "SiLU", "relu": "ReLU", "gelu_new": "tanh-approximated GELU", "mish": "Mish",
        "relu2": "squared ReLU"}
NORMS = {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}


@dataclass
class Example:
    intent: str
    phrasing: int  # index into the intent's phrasings
    request: str
    answer: dict
    held_out: bool | None = None  # set for hand-written requests; templates hold out their last phrasings

    @property
    def held_out_phrasing(self) -> bool:
        if self.held_out is not None:
            return self.held_out
        return self.phrasing >= len(PHRASINGS[self.intent]) - HELD_OUT


def _edit(*edits: dict) -> dict:
    return {"action": "edit", "edits": list(edits)}


def _refuse(reason: str) -> dict:
    return {"action": "refuse", "reason": reason}


def _ask(question: str) -> dict:
    return {"action": "ask", "question": question}


PHRASINGS: dict[str, list[str]] = {
    "lora_default": ["add LoRA", "apply LoRA to the model", "put LoRA adapters on it", "make it LoRA-tunable",
                     "wrap it with low-rank adapters", "set it up for LoRA fine-tuning", "I want to fine-tune it with LoRA"],
    "lora_last": ["add LoRA to the last layer", "apply LoRA only to the final block", "LoRA on the last layer please",
                  "put low-rank adapters in the top layer", "add LoRA adapters to the final transformer block",
                  "only the last layer should get LoRA", "give the last block LoRA"],
    "lora_qv_rank": ["add LoRA with rank {r} to the query and value projections", "LoRA r={r} on q and v",
                     "apply rank-{r} LoRA to q_proj and v_proj", "put rank {r} LoRA on the attention queries and values",
                     "LoRA of rank {r} for the query and value matrices", "use LoRA (r {r}) on q and v",
                     "rank {r} low-rank adapters on the q and v projections"],
    "remove_last": ["remove the last {n} layers", "drop the final {n} blocks", "delete the top {n} layers",
                    "prune the last {n} transformer blocks", "cut {n} layers off the end",
                    "get rid of the last {n} layers", "truncate the model by {n} layers"],
    "insert": ["add {n} more layers", "insert {n} new blocks at the end", "make it {n} layers deeper",
               "append {n} transformer blocks", "stack {n} extra layers on top", "grow the depth by {n} layers",
               "deepen the model by {n} blocks"],
    "activation": ["use {act} instead", "replace the activation with {act}", "swap the activation function for {act}",
                   "switch the nonlinearity to {act}", "change the MLP activation to {act}",
                   "make the activations {act}", "{act} activations please"],
    "norm": ["swap the norms for {norm}", "replace normalization with {norm}", "use {norm} everywhere",
             "switch to {norm}", "change every norm layer to {norm}", "convert the norms to {norm}",
             "I'd like {norm} instead of the current norm"],
    "mqa": ["make it multi-query", "use MQA", "share one key/value head across all heads",
            "convert to multi-query attention", "switch attention to a single KV head", "make the attention MQA",
            "one kv head for every query head"],
    "gqa": ["use GQA with {kv} KV heads", "grouped-query attention with {kv} key/value heads",
            "set the number of kv heads to {kv}", "make it GQA, {kv} groups", "reduce the KV heads to {kv}",
            "use {kv} key-value heads", "convert attention to {kv}-group GQA"],
    "adapter": ["add bottleneck adapters of size {b}", "insert Houlsby adapters with bottleneck {b}",
                "put adapters (bottleneck {b}) after the MLPs", "add adapter layers with a {b}-dim bottleneck",
                "insert {b}-wide adapters after each feed-forward", "adapters with bottleneck {b} please",
                "add size-{b} bottleneck adapters"],
    "dropout": ["add dropout of {p} after attention", "insert dropout p={p} after each attention block",
                "put {p} dropout after the attention layers", "regularize attention outputs with dropout {p}",
                "add a dropout layer with rate {p} after self-attention", "dropout {p} after attention please",
                "apply dropout ({p}) to the attention outputs"],
    "freeze_but_last": ["freeze everything except the last layer", "only train the last block",
                        "freeze all but the final layer", "make only the top layer trainable",
                        "keep just the last block trainable", "lock every layer except the last one",
                        "freeze the model apart from its final block"],
    "unsupported": ["add {method}", "use {method}", "switch the model to {method}", "give it {method}",
                    "implement {method} in this model", "can you add {method}?", "I want {method}"],
    "vague": ["make it smaller", "make it better", "improve the attention", "change the architecture a bit",
              "add some adapters somewhere", "make it faster", "optimize this model"],
}

VAGUE_QUESTIONS = {
    "make it smaller": "Smaller how: fewer layers (remove_layers), fewer KV heads (set_kv_heads), or a LoRA setup "
                       "so fewer weights train?",
    "make it better": "Better at what? I can change depth, attention heads, norms, activations, or add LoRA or adapters.",
    "improve the attention": "Which change: fewer KV heads (GQA/MQA), LoRA on the attention projections, or dropout "
                             "after attention?",
    "change the architecture a bit": "Which part: depth, attention heads, norm, activation, or adapters?",
    "add some adapters somewhere": "Which kind and where: LoRA on which projections, or bottleneck adapters after "
                                   "which modules?",
    "make it faster": "Faster inference: fewer layers or fewer KV heads (GQA/MQA)? Which one should I apply?",
    "optimize this model": "Optimize for what: size, speed or fine-tuning cost? Tell me which edit to make.",
}

UNSUPPORTED = ["alibi", "rope", "mixture of experts", "swiglu", "sliding-window attention", "flash attention",
               "mamba", "4-bit quantization", "multi-head latent attention", "prefix tuning"]


def examples_for(f: Facts, rng: random.Random) -> list[Example]:
    """One example per (intent, phrasing) for the graph with facts ``f``; parameters drawn from ``rng``."""
    from assistant.facts import methods_corpus
    from assistant.retrieval import search

    out: list[Example] = []

    def add(intent: str, i: int, request: str, answer: dict) -> None:
        out.append(Example(intent, i, request, answer))

    layers = f.layers
    for intent, phrasings in PHRASINGS.items():
        for i, text in enumerate(phrasings):
            if intent == "lora_default":
                add(intent, i, text, _edit({"op": "add_lora"}))
            elif intent == "lora_last":
                add(intent, i, text, _edit({"op": "add_lora", "target": {"layers": [-1]}}))
            elif intent == "lora_qv_rank":
                r = rng.choice([4, 8, 16, 32, 64])
                add(intent, i, text.format(r=r),
                    _edit({"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]}, "r": r}))
            elif intent == "remove_last":
                n = rng.choice([1, 2, 3, 4])
                if n >= layers:
                    add(intent, i, text.format(n=n), _refuse(
                        f"The model has {layers} blocks; removing {n} would leave none. I can remove up to "
                        f"{max(layers - 1, 0)}."))
                else:
                    add(intent, i, text.format(n=n),
                        _edit({"op": "remove_layers", "target": {"layers": list(range(-n, 0))}}))
            elif intent == "insert":
                n = rng.choice([1, 2, 4])
                add(intent, i, text.format(n=n),
                    _edit({"op": "insert_layers", "target": {"layers": [-1]}, "count": n}))
            elif intent == "activation":
                act = rng.choice(sorted(ACTS))
                add(intent, i, text.format(act=ACTS[act]), _edit({"op": "replace_activation", "to": act}))
            elif intent == "norm":
                to = rng.choice(sorted(NORMS))
                if f.norm == NORMS[to]:
                    add(intent, i, text.format(norm=NORMS[to]), _refuse(f"It already uses {NORMS[to]}."))
                else:
                    add(intent, i, text.format(norm=NORMS[to]), _edit({"op": "replace_norm", "to": to}))
            elif intent == "mqa":
                if not f.heads:
                    add(intent, i, text, _refuse("I cannot find the attention heads of this graph."))
                elif f.kv_heads == 1:
                    add(intent, i, text, _refuse("It is already multi-query: every query head shares one KV head."))
                else:
                    add(intent, i, text, _edit({"op": "set_kv_heads", "kv_heads": 1}))
            elif intent == "gqa":
                if not f.heads:
                    continue
                kv = rng.choice([2, 3, 4, 8])
                if f.heads % kv:
                    divisors = ", ".join(str(d) for d in range(1, f.heads + 1) if f.heads % d == 0)
                    add(intent, i, text.format(kv=kv), _refuse(
                        f"{kv} does not divide the {f.heads} query heads; choose one of {divisors}."))
                else:
                    add(intent, i, text.format(kv=kv), _edit({"op": "set_kv_heads", "kv_heads": kv}))
            elif intent == "adapter":
                b = rng.choice([16, 32, 64, 128])
                add(intent, i, text.format(b=b), _edit({"op": "insert_adapter", "bottleneck": b}))
            elif intent == "dropout":
                p = rng.choice([0.1, 0.2, 0.3])
                add(intent, i, text.format(p=p),
                    _edit({"op": "add_dropout", "target": {"roles": ["attn"]}, "p": p}))
            elif intent == "freeze_but_last":
                add(intent, i, text, _edit({"op": "freeze"}, {"op": "unfreeze", "target": {"layers": [-1]}}))
            elif intent == "unsupported":
                method = rng.choice(UNSUPPORTED)
                hit = search(method, 1)[0]
                entry = methods_corpus()[hit.id]
                add(intent, i, text.format(method=method), _refuse(
                    f"{entry['name']}: {entry['engine_note']}"[:200]))
            elif intent == "vague":
                add(intent, i, text, _ask(VAGUE_QUESTIONS[text]))
    return out


@functools.cache
def _requests() -> list[dict]:
    return [json.loads(line) for line in (CORPORA / "requests.jsonl").read_text().splitlines() if line.strip()]


def _fits(f: Facts, edit: dict) -> bool:
    """Whether a hand-written edit means on this graph what its author meant (else the right answer differs)."""
    op, roles = edit["op"], set(edit.get("target", {}).get("roles", []))
    if op == "replace_norm" and f.norm == NORMS.get(edit["to"]):
        return False  # "it already uses RMSNorm"
    if op == "replace_activation" and (f.activation or "").lower() == ACTS[edit["to"]].lower():
        return False
    if op == "set_kv_heads" and (not f.heads or f.kv_heads == edit["kv_heads"]):
        return False
    if op == "remove_layers" and f.layers <= 1:
        return False
    if f.fused_qkv and roles & {"attn.q", "attn.k", "attn.v"}:
        return False
    return True


def hand_written(f: Facts) -> list[Example]:
    """The hand-written requests (``corpora/requests.jsonl``) whose answer holds for the graph with facts ``f``.

    They were written for decoder language models (a final norm, token embeddings, one stack), so other
    kinds get none."""
    if f.kind != "decoder":
        return []
    return [Example("hand_written", i, r["request"], r["answer"], held_out=r["held_out"])
            for i, r in enumerate(_requests())
            if r["answer"]["action"] != "edit" or all(_fits(f, e) for e in r["answer"]["edits"])]


def examples(f: Facts, rng: random.Random, held_out: bool) -> list[Example]:
    """Template and hand-written examples for the graph with facts ``f``: the held-out ones, or the rest."""
    return [e for e in examples_for(f, rng) + hand_written(f) if e.held_out_phrasing == held_out]
