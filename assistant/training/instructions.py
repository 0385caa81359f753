"""Instruction data: requests paired with the answer the assistant should give for a given graph.

Training phrasings come from a small grammar per intent (``[a|b|c]`` picks one of the
alternatives; ``{r}``, ``{n}``... are the request's parameters), a few thousand in all.
Held-out phrasings are never trained on: two written with the first templates, and four
per intent written independently, without seeing the grammar
(``corpora/held_out_phrasings.json``); a grammar phrasing too close to any held-out one
of its intent (difflib ratio >= 0.85) is dropped, and so is one too close to any phrasing
written after a training run to test it (``corpora/fresh_phrasings*.json``).  The right
answer depends on the graph, as it does for a person: "use GQA with 3 KV heads" is an
edit on a model with 12 heads and a refusal naming the divisors on one with 8; "switch to
RMSNorm" on a model that already has it is a plain statement, not an edit; "make it
smaller" is a question back.
Answers are the JSON the assistant is decoded under (:mod:`assistant.schema`).

Where the right answer is a refusal because of the graph (those three, removing every
block, a model with no attention heads to regroup), the model is trained to write the
edit the request asks for (:attr:`Example.written`), and the edit engine refuses it with
its reason (:class:`gnn.edits.Infeasible`): words to edits is the model's job, whether
the graph can take the edit is the engine's.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import random
import re
from dataclasses import dataclass

from assistant.facts import CORPORA, Facts
from assistant.prompting import prompt
from assistant.rerank import ACTS
from gnn.ir.families import NORMS

# the grammar's data: other names people (and Hugging Face configs: ``hidden_act``) give activations and norms
# (training requests draw among these; held-out and fresh ones keep the plain names), the phrasing patterns
# per intent, vague requests with the question back, the held-out first phrasings, wraps and verbs
_DATA = json.loads((CORPORA / "grammar.json").read_text())
# each name list starts with the plain name the edit language's table gives it
ACT_NAMES: dict[str, list[str]] = {k: [ACTS[k], *other] for k, other in _DATA["act_names"].items()}
NORM_NAMES: dict[str, list[str]] = {k: [NORMS[k], *other] for k, other in _DATA["norm_names"].items()}
ADAPTER_ACTS = {a: ACTS.get(a, a) for a in ("gelu", "relu", "silu", "tanh")}  # the adapter's own nonlinearity
ADAPTER_SITES: dict[str, list[str]] = _DATA["adapter_sites"]
SIMILAR = 0.85  # a training phrasing at least this close to a held-out or fresh one is dropped
PER_INTENT = 2  # training phrasings drawn per intent and graph
DRAWS = {"vague": 3}  # times PER_INTENT: vague requests come in eight kinds (VAGUE), each with its own question
WRAPPED = 0.3  # share of training phrasings said with a reason, a greeting or as a question (WRAPS)


@dataclass
class Example:
    intent: str
    request: str
    answer: dict
    held_out_phrasing: bool
    source: str = "grammar"  # grammar, first templates, independent (held out), hand-written
    written: dict | None = None  # what the model writes, where it differs from `answer` (an edit the engine refuses)
    phrasing: str = ""  # the phrasing the request was made from, before its parameters were filled in

    @property
    def target(self) -> dict:
        """The model's answer to train on."""
        return self.written or self.answer


def _edit(*edits: dict) -> dict:
    return {"action": "edit", "edits": list(edits)}


def _refuse(reason: str) -> dict:
    return {"action": "refuse", "reason": reason}


def _ask(question: str) -> dict:
    return {"action": "ask", "question": question}


# -- phrasings ----------------------------------------------------------------------------------

GRAMMAR: dict[str, list[str]] = _DATA["grammar"]

VAGUE_ANY = prompt("clarify.md")  # the question back, as the assistant asks it

# Vague requests, by what they leave open: the question back names the choices.
VAGUE: dict[str, tuple[str, list[str]]] = {k: (v["question"] or VAGUE_ANY, v["patterns"]) for k, v in _DATA["vague"].items()}

# Held out with the first templates (the rest of those templates are in the grammar).
_HELD_OUT_FIRST: dict[str, list[str]] = _DATA["held_out_first"]
INTENTS = list(_HELD_OUT_FIRST)


def expand(pattern: str) -> list[str]:
    """Every phrasing a grammar pattern spells: ``[a|b]`` is one of a or b (possibly empty)."""
    parts = re.split(r"\[([^\]]*)\]", pattern)
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return [re.sub(r"\s+", " ", "".join(c)).strip().replace(" ,", ",").replace(" ?", "?")
            for c in itertools.product(*choices)]


@functools.cache
def held_out_phrasings(intent: str) -> tuple[str, ...]:
    independent = json.loads((CORPORA / "held_out_phrasings.json").read_text())
    return tuple(_HELD_OUT_FIRST[intent] + independent[intent])


@functools.cache
def fresh_phrasings(intent: str) -> tuple[str, ...]:
    """Phrasings written after a training run, to test it (``corpora/fresh_phrasings*.json``): never trained on."""
    return tuple(t for path in sorted(CORPORA.glob("fresh_phrasings*.json"))
                 for t in json.loads(path.read_text()).get(intent, []))


def closest_training_phrasing(intent: str, text: str) -> float:
    """How close (:func:`similarity`) ``text`` comes to any training phrasing of ``intent`` (a pair that cannot
    beat the closest so far is not compared in full)."""
    best = 0.0
    for t in train_phrasings(intent):
        best = max(best, similarity(text, t, floor=best))
    return best


@functools.cache
def dev_phrasings(intent: str) -> tuple[str, ...]:
    """Development phrasings (``corpora/dev_phrasings.json``): written apart from the grammar and the held-out
    ones (any within :data:`SIMILAR` of a held-out phrasing left out), for choosing decoding settings."""
    return tuple(json.loads((CORPORA / "dev_phrasings.json").read_text())[intent])


def similarity(a: str, b: str, floor: float = 0.0) -> float:
    """difflib's ratio of two phrasings, either way round (it is not symmetric), ignoring case.  A way round whose
    cheap upper bounds (``real_quick_ratio``, ``quick_ratio``) stay under ``floor`` is not compared in full, so
    a result under ``floor`` only says the pair is under it."""
    a, b = a.lower(), b.lower()
    best = 0.0
    for x, y in ((a, b), (b, a)):
        m = difflib.SequenceMatcher(None, x, y)
        bar = max(best, floor)
        if m.real_quick_ratio() >= bar and m.quick_ratio() >= bar:
            best = max(best, m.ratio())
    return best


def too_close(text: str, held: tuple[str, ...]) -> bool:
    """Whether :func:`similarity` of ``text`` and any of ``held`` reaches :data:`SIMILAR`.  The same comparisons,
    but each string's difflib index (``set_seq2``, the costly part) is built once, not once per pair."""
    as_second = difflib.SequenceMatcher(None, "", text.lower())
    for h in held:
        for m, first in ((_matcher(h.lower()), text.lower()), (as_second, h.lower())):
            m.set_seq1(first)
            if m.real_quick_ratio() >= SIMILAR and m.quick_ratio() >= SIMILAR and m.ratio() >= SIMILAR:
                return True
    return False


@functools.lru_cache(maxsize=4096)
def _matcher(second: str) -> difflib.SequenceMatcher:
    return difflib.SequenceMatcher(None, "", second)


@functools.cache
def train_patterns(intent: str) -> tuple[tuple[str, ...], ...]:
    """The grammar's phrasings of ``intent``, one tuple per pattern, without any too close to a held-out or fresh
    one."""
    patterns = ([p for _, ps in VAGUE.values() for p in ps] if intent == "vague" else GRAMMAR[intent])
    held = held_out_phrasings(intent) + fresh_phrasings(intent)
    out = []
    for p in patterns:
        texts = tuple(t for t in dict.fromkeys(expand(p)) if not too_close(t, held))
        if texts:
            out.append(texts)
    return tuple(out)


def train_phrasings(intent: str) -> list[str]:
    return list(dict.fromkeys(t for texts in train_patterns(intent) for t in texts))


# Ways of saying any request: with a reason before it, a greeting, something after it, or (a request that starts
# with a verb) as a question. ``{}`` is the request.
WRAPS: list[str] = _DATA["wraps"]
QUESTION: str = _DATA["question"]
VERBS: set[str] = set(_DATA["verbs"])


def _lower_first(text: str) -> str:
    """``text`` to follow other words: "Use GQA" -> "use GQA", but "LoRA ..." and "MQA ..." stay."""
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first[:1].isupper() and first[1:].islower() else text


def wrap(text: str, rng: random.Random) -> str:
    """``text`` said another way: with a reason, a greeting or a tail (:data:`WRAPS`), or as a question."""
    first = text.split(" ", 1)[0].lower()
    patterns = WRAPS + ([QUESTION] if first in VERBS else [])
    pattern = rng.choice(patterns)
    body = text.rstrip(".!?") if pattern in (QUESTION, WRAPS[-1]) else text
    if not pattern.startswith("{}"):
        body = _lower_first(body)
    return rng.choice(_expanded(pattern)).replace("{}", body)


@functools.cache
def _expanded(pattern: str) -> list[str]:
    return expand(pattern)


def _draw(intent: str, rng: random.Random) -> str:
    """A training phrasing: a pattern first, so a pattern with many spellings does not crowd out the rest; a
    share (:data:`WRAPPED`) said another way (:func:`wrap`), unless that comes close to a held-out or fresh one."""
    text = rng.choice(rng.choice(train_patterns(intent)))
    if rng.random() < WRAPPED:
        wrapped = wrap(text, rng)
        if not too_close(wrapped, held_out_phrasings(intent) + fresh_phrasings(intent)):
            return wrapped
    return text


@functools.cache
def _vague_question(text: str) -> str:
    for question, patterns in VAGUE.values():
        if any(text in _expanded(p) for p in patterns):
            return question
    if text in VAGUE_QUESTIONS_HELD_OUT:
        return VAGUE_QUESTIONS_HELD_OUT[text]
    # said another way (wrap): the kind whose longest phrasing it holds
    inside = [(len(t), question) for question, patterns in VAGUE.values() for p in patterns for t in _expanded(p)
              if t in text]
    return max(inside)[1] if inside else VAGUE_ANY


VAGUE_QUESTIONS_HELD_OUT = {"make it faster": VAGUE["speed"][0], "optimize this model": VAGUE["optimize"][0]}

UNSUPPORTED: list[str] = _DATA["unsupported"]


def answer(intent: str, text: str, f: Facts, rng: random.Random, names: bool = False) -> tuple[str, dict, dict]:
    """The request ``text`` (an ``intent`` phrasing, parameters drawn from ``rng``) for facts ``f``, the answer
    the user gets, and what the model writes for it (the same, or the edit the engine refuses).  With ``names``,
    an activation or norm is called by one of its names drawn from ``rng`` (:data:`ACT_NAMES`), else by the one
    in :data:`ACTS`."""
    request, ans, *written = _answer(intent, text, f, rng, names)
    request = re.sub(r"\b1 (layer|block|transformer block|decoder layer|transformer layer)s\b", r"1 \1", request)
    return request, ans, written[0] if written else ans


def _answer(intent: str, text: str, f: Facts, rng: random.Random, names: bool = False) -> tuple[str, dict]:
    from assistant.facts import methods_corpus
    from assistant.retrieval import search

    layers = f.layers
    if intent == "lora_default":
        return text, _edit({"op": "add_lora"})
    if intent == "lora_last":
        return text, _edit({"op": "add_lora", "target": {"layers": [-1]}})
    if intent == "lora_qv_rank":
        r = rng.choice([4, 8, 16, 32, 64])
        return text.format(r=r), _edit({"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]}, "r": r})
    if intent == "remove_last":
        n = rng.choice([1, 2, 3, 4])
        edit = _edit({"op": "remove_layers", "target": {"layers": list(range(-n, 0))}})
        if n >= layers:
            return text.format(n=n), _refuse(f"The model has {layers} blocks; removing {n} would leave none. "
                                             f"I can remove up to {max(layers - 1, 0)}."), edit
        return text.format(n=n), edit
    if intent == "insert":
        n = rng.choice([1, 2, 4])
        return text.format(n=n), _edit({"op": "insert_layers", "target": {"layers": [-1]}, "count": n})
    if intent == "activation":
        act = rng.choice(sorted(ACTS))
        name = rng.choice(ACT_NAMES[act]) if names else ACTS[act]
        return text.format(act=name), _edit({"op": "replace_activation", "to": act})
    if intent == "norm":
        to = rng.choice(sorted(NORMS))
        name = rng.choice(NORM_NAMES[to]) if names else NORMS[to]
        edit = _edit({"op": "replace_norm", "to": to})
        if f.norm == NORMS[to]:
            return text.format(norm=name), _refuse(f"It already uses {NORMS[to]}."), edit
        return text.format(norm=name), edit
    if intent == "mqa":
        edit = _edit({"op": "set_kv_heads", "kv_heads": 1})
        if not f.heads:
            return text, _refuse("I cannot find the attention heads of this graph."), edit
        if f.kv_heads == 1:
            return text, _refuse("It is already multi-query: every query head shares one KV head."), edit
        return text, edit
    if intent == "gqa":
        kv = rng.choice([2, 3, 4, 8])
        edit = _edit({"op": "set_kv_heads", "kv_heads": kv})
        if not f.heads:
            return text.format(kv=kv), _refuse("I cannot find the attention heads of this graph."), edit
        if f.heads % kv:
            divisors = ", ".join(str(d) for d in range(1, f.heads + 1) if f.heads % d == 0)
            return text.format(kv=kv), _refuse(f"{kv} does not divide the {f.heads} query heads; "
                                               f"choose one of {divisors}."), edit
        if f.kv_heads == kv:
            return text.format(kv=kv), _refuse(f"It already has {kv} KV heads."), edit
        return text.format(kv=kv), edit
    if intent == "adapter":
        b = rng.choice([16, 32, 64, 128])
        edit = {"op": "insert_adapter", "bottleneck": b}
        if "{where}" not in text:
            return text.format(b=b), _edit(edit)
        role = rng.choice(sorted(ADAPTER_SITES))
        act = rng.choice(sorted(ADAPTER_ACTS))
        edit = {"op": "insert_adapter", "target": {"roles": [role]}, "bottleneck": b, "activation": act}
        return text.format(b=b, where=rng.choice(ADAPTER_SITES[role]), adapter_act=ADAPTER_ACTS[act]), _edit(edit)
    if intent == "dropout":
        p = rng.choice([0.1, 0.2, 0.3])
        return text.format(p=p), _edit({"op": "add_dropout", "target": {"roles": ["attn"]}, "p": p})
    if intent == "freeze_but_last":
        return text, _edit({"op": "freeze"}, {"op": "unfreeze", "target": {"layers": [-1]}})
    if intent == "unsupported":
        method = rng.choice(UNSUPPORTED)
        entry = methods_corpus()[search(method, 1)[0].id]
        return text.format(method=method), _refuse(f"{entry['name']}: {entry['engine_note']}"[:200])
    if intent == "vague":
        return text, _ask(_vague_question(text))
    raise ValueError(f"unknown intent `{intent}`; known: {', '.join(INTENTS)}")


def examples_for(f: Facts, rng: random.Random, held_out: bool = False, per_intent: int = PER_INTENT,
                 dev: bool = False, phrasings: dict[str, list[str]] | None = None) -> list[Example]:
    """Examples for the graph with facts ``f``: every held-out phrasing of each intent (or with ``dev``, every
    development phrasing; with ``phrasings``, each of those, by intent), or ``per_intent`` training phrasings of
    each drawn by ``rng`` (parameters too)."""
    out = []
    for intent in INTENTS:
        texts = (phrasings.get(intent, []) if phrasings is not None else dev_phrasings(intent) if dev
                 else held_out_phrasings(intent) if held_out
                 else [_draw(intent, rng) for _ in range(per_intent * DRAWS.get(intent, 1))])
        training = phrasings is None and not dev and not held_out
        for text in texts:
            request, ans, written = answer(intent, text, f, rng, names=training)
            source = ("fresh" if phrasings is not None else "dev" if dev else "grammar" if not held_out
                      else "first templates" if text in _HELD_OUT_FIRST[intent] else "independent")
            out.append(Example(intent, request, ans, held_out, source, written if written != ans else None, text))
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
    layers = edit.get("target", {}).get("layers", [])
    if any(not -f.layers <= i < f.layers for i in layers):
        return False  # no such block on this graph
    if op == "remove_layers" and (f.layers <= 1 or len(layers) >= f.layers):
        return False  # it would remove every block: the answer is a refusal
    if f.fused_qkv and roles & {"attn.q", "attn.k", "attn.v"}:
        return False
    return True


def hand_written(f: Facts) -> list[Example]:
    """The hand-written requests (``corpora/requests.jsonl``) whose answer holds for the graph with facts ``f``.

    They were written for decoder language models (a final norm, token embeddings, one stack), so other
    kinds get none."""
    if f.kind != "decoder":
        return []
    return [Example("hand_written", r["request"], r["answer"], r["held_out"], "hand-written") for r in _requests()
            if r["answer"]["action"] != "edit" or all(_fits(f, e) for e in r["answer"]["edits"])]


def examples(f: Facts, rng: random.Random, held_out: bool, hand: int = 2 * PER_INTENT) -> list[Example]:
    """Grammar and hand-written examples for the graph with facts ``f``: every held-out one, or the training
    ones (``hand`` hand-written requests drawn by ``rng``, so they do not outnumber any intent's phrasings)."""
    written = [e for e in hand_written(f) if e.held_out_phrasing == held_out]
    return examples_for(f, rng, held_out) + (written if held_out else rng.sample(written, min(hand, len(written))))
