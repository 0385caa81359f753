"""From a request to a validated graph: prompt, constrained decoding, execution, one retry.

1. The prompt (``prompts/edit.md`` and ``prompts/edit_user.md``) carries a one-line
   outline of the graph (its facts), the methods the request names (retrieval over
   the methods corpus, with what the engine can do for each) and the request.
2. The answer is decoded under :func:`assistant.schema.answer_schema` with
   lm-format-enforcer, so only well-formed answers come out: an edit program, a
   question, or a refusal.
3. A program runs through the edit engine and the result is validated.  If the
   engine refuses it, its one-line reason goes back to the model for one more try;
   a second failure is reported as it is, and the graph is left unchanged.  An edit
   this graph cannot take or already has (:class:`gnn.edits.Infeasible`: GQA groups
   that do not divide the heads, RMSNorm on a model that has it, removing every block)
   is the answer itself, a refusal with the engine's reason: the model writes what the
   request asks for, and whether the graph can take it is the engine's call, not a
   number a 135M model should check.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

from assistant.facts import facts
from assistant.prompting import messages
from gnn.ir.graph import Graph

DECODING = "decoding.json"  # beside an adapter: its Decoding


@dataclass
class Decoding:
    """How an adapter's answers are decoded: chosen on development requests by
    ``python -m assistant.training.evaluate_llm --tune-rerank`` and kept in ``decoding.json`` beside it."""

    beams: int = 1  # beams searched (1: greedy)
    rerank_weight: float = 0.0  # weight of how close an answer's reading is to the request (assistant.rerank)
    chosen_on: str = ""  # the requests and families the settings were chosen on
    tried: list[dict] = field(default_factory=list)  # every setting tried, with its right answers

    @classmethod
    def of(cls, adapter: str | pathlib.Path | None) -> "Decoding":
        """The adapter's decoding (greedy where it has none)."""
        path = pathlib.Path(adapter) / DECODING if adapter else None
        if not (path and path.exists()):
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}  # an older file's other settings (ask_below) are not read
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in names})


def tokenizer_data(tokenizer):
    """lm-format-enforcer's view of a tokenizer: each regular token's text, and whether it starts a word.

    (lm-format-enforcer's own transformers integration imports a module transformers 5 moved;
    this is the same table, built from the tokenizer the same way.)"""
    from lmformatenforcer import TokenEnforcerTokenizerData

    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for i in range(len(tokenizer)):
        if i in special:
            continue
        after_zero = tokenizer.decode([zero, i])[1:]  # "0" first: a word-start token keeps its leading space
        regular.append((i, after_zero, len(after_zero) > len(tokenizer.decode([i]))))
    decode = lambda tokens: tokenizer.decode(tokens).rstrip("\ufffd")  # noqa: E731
    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, len(tokenizer))


def modules_as_roles(program: dict) -> dict | None:
    """``program`` with the projection names its targets give as ``modules`` (peft's ``target_modules``:
    ``q_proj``, ``v_proj``) given as roles instead, or None where a target names a module that is no projection."""
    from gnn.roles.rules import projection_role

    out, changed = copy.deepcopy(program), False
    for e in out["edits"]:
        target = e.get("target") or {}
        if not target.get("modules") or target.get("roles"):
            continue
        roles = [projection_role(m) for m in target["modules"]]
        if None in roles:
            return None
        target["roles"] = list(dict.fromkeys(roles))
        del target["modules"]
        changed = True
    return out if changed else None


def _with_roles(graph: Graph, program: dict) -> tuple[dict, Any]:
    """A program the engine refused, run again with its module names read as roles (:func:`modules_as_roles`):
    Llama's names on GPT-2, whose query and value live in one fused ``c_attn``.  The program that ran and its
    result, or ``program`` and None where that changes nothing or fails too."""
    from gnn.edits import EditError, apply_program

    other = modules_as_roles(program)
    if other is None:
        return program, None
    try:
        return other, apply_program(graph, other)
    except EditError:
        return program, None


@dataclass
class Outcome:
    action: str  # edit | ask | refuse | failed (and, inside interpret, offer: an edit to ask about)
    message: str  # what to tell the user
    program: dict | None = None
    result: Any = None  # gnn.edits.EditResult for a done edit
    answers: list[str] = field(default_factory=list)  # the model's raw answers, one per try
    error: str = ""  # a failed edit: the engine's reason (what a retry tells the model)
    seconds: float = 0.0
    reading: Any = None  # assistant.reading.Statement: the program in plain words, linked to the request

    @property
    def done(self) -> bool:
        return self.action == "edit" and self.result is not None


class Assistant:
    """The language model behind requests; ``llm`` is a path or cached hub id (default SmolLM2-135M-Instruct).

    ``adapter`` is a folder written by ``python -m assistant.training.train_llm`` (default: the shipped
    ``assistant/adapter`` for the default model, none for another ``llm``; ``None``: none): its LoRA weights are loaded
    with peft and, if it was trained with graph tokens, its projector puts the graph model's
    composite embeddings at the prompt's ``<graph>`` placeholders."""

    def __init__(self, llm: str | None = None, adapter: str | pathlib.Path | None | bool = True,
                 max_new_tokens: int = 120, log=print, beams: int | None = None, rerank_weight: float | None = None):
        from assistant.llm import ADAPTER, is_default, load

        if adapter is True:  # the shipped adapter was trained on the default model: only that model gets it
            adapter = ADAPTER if is_default(llm) and (ADAPTER / "adapter_config.json").exists() else None
        self.projector = None
        self.graph_id = None
        if adapter:
            self.model, self.tokenizer = self._with_adapter(llm, pathlib.Path(adapter), log)
        else:
            self.model, self.tokenizer = load(llm, log=log)
        self.adapter = adapter or None
        self._system = None  # (system prompt, its token ids, its cache): see _system_cache
        self.max_new_tokens = max_new_tokens
        # reranked beam search where the adapter says so (``decoding.json``, written by the tuning), else greedy
        decoding = Decoding.of(adapter)
        self.beams = decoding.beams if beams is None else beams
        self.rerank_weight = decoding.rerank_weight if rerank_weight is None else rerank_weight

    def _with_adapter(self, llm, adapter: pathlib.Path, log):
        from peft import PeftModel
        from safetensors.torch import load_file

        from assistant.graph_tokens import Projector, add_graph_token
        from assistant.llm import load
        from gnn.errors import MadError

        if not (adapter / "adapter_config.json").exists():
            raise MadError(f"`{adapter}` is not an adapter folder (no adapter_config.json); build one with "
                           "`python -m assistant.training.train_llm`")
        base, tokenizer = load(llm, log=log, fresh=True)
        model = PeftModel.from_pretrained(base, str(adapter)).eval()
        meta = json.loads((adapter / "graph_tokens.json").read_text())
        if meta.get("graph_tokens"):
            self.graph_id = add_graph_token(tokenizer)
            self.projector = Projector(meta["d_graph"], base.config.hidden_size)
            self.projector.load_state_dict(load_file(str(adapter / "projector.safetensors")))
            self.projector.eval()
        return model, tokenizer

    @functools.cached_property
    def _tokenizer_data(self):
        return tokenizer_data(self.tokenizer)

    @functools.cached_property
    def _layout_tokens(self) -> frozenset[int]:
        """Tokens that are only layout: line breaks, tabs, or more than one space."""
        out = set()
        for i, text, _ in self._tokenizer_data.regular_tokens:
            if text and not text.strip() and (len(text) > 1 or text in "\n\r\t"):
                out.add(i)
        return frozenset(out)

    def _system_cache(self, chat: list[dict], prompt) -> tuple[int, Any]:
        """How many of ``prompt``'s tokens a fresh cache already holds, and the cache: the system message's,
        run once per system prompt and copied for each request, when the prompt starts with it."""
        import torch
        from transformers import DynamicCache

        if chat[0]["role"] == "system":
            if self._system is None or self._system[0] != chat[0]["content"]:
                ids = self.tokenizer.apply_chat_template(chat[:1], return_tensors="pt", return_dict=True)["input_ids"]
                cache = DynamicCache(config=self.model.config)
                with torch.no_grad():
                    self.model(input_ids=ids, cache=cache)
                self._system = (chat[0]["content"], ids, cache)
            _, ids, cache = self._system
            n = ids.shape[1]
            if prompt.shape[1] > n and torch.equal(prompt[:, :n], ids):  # else a template that does not start so
                return n, copy.deepcopy(cache)
        return 0, DynamicCache(config=self.model.config)

    def generate_kwargs(self, beams: int = 1, schema: dict | None = None) -> dict:
        """transformers ``generate`` arguments for one answer under the answer schema (or ``schema``; a fresh
        constraint each call): greedy, or with ``beams`` > 1 a beam search returning every beam with its score."""
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer

        from assistant.schema import answer_schema

        enforcer = TokenEnforcer(self._tokenizer_data, JsonSchemaParser(schema or answer_schema()))
        layout = self._layout_tokens

        def allowed(batch_id, sent):
            # compact JSON: no newlines or runs of spaces (they cost a token each and say nothing)
            tokens = enforcer.get_allowed_tokens(sent.tolist()).allowed_tokens
            return [t for t in tokens if t not in layout] or tokens

        kwargs = dict(max_new_tokens=self.max_new_tokens, do_sample=False, prefix_allowed_tokens_fn=allowed,
                      pad_token_id=self.tokenizer.pad_token_id)
        if beams > 1:
            kwargs.update(num_beams=beams, num_return_sequences=beams, output_scores=True, return_dict_in_generate=True)
        return kwargs

    def candidates(self, chat: list[dict], graph_tokens=None, beams: int = 1,
                   schema: dict | None = None) -> list[tuple[str, float]]:
        """The model's answers to ``chat`` decoded under the answer schema: greedy (``beams`` 1), or the
        ``beams`` best of a beam search, each with its length-normalised log-probability; ``graph_tokens``
        (composite embeddings) fill the prompt's ``<graph>`` placeholders when the adapter has a projector."""
        import torch

        from assistant.graph_tokens import embed_with_graph

        ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        kwargs = self.generate_kwargs(beams, schema)
        prompt, mask = ids["input_ids"], ids["attention_mask"]
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        with torch.no_grad():
            if not base._supports_default_dynamic_cache():  # a cache of its own kind (RWKV, xLSTM): plain generate
                out = self.model.generate(**ids, **kwargs)
            else:
                # The prompt runs once, here, and every beam starts from its cache (generate alone would run it
                # once per beam); the system prompt, the same for every request, comes from a cache of its own.
                # Graph tokens sit only in the prompt: generate needs just its last token.
                done, cache = self._system_cache(chat, prompt)
                if self.projector is not None and graph_tokens is not None:
                    embeds = embed_with_graph(self.model, prompt, self.graph_id, [graph_tokens], self.projector)
                    self.model(inputs_embeds=embeds[:, done:-1], attention_mask=mask[:, :-1], cache=cache)
                else:
                    self.model(input_ids=prompt[:, done:-1], attention_mask=mask[:, :-1], cache=cache)
                if beams > 1:
                    cache.batch_repeat_interleave(beams)
                out = self.model.generate(input_ids=prompt, attention_mask=mask, cache=cache, **kwargs)
        start = prompt.shape[1]
        sequences = out.sequences if beams > 1 else out
        scores = out.sequences_scores.tolist() if beams > 1 else [0.0]
        found: dict[str, float] = {}
        for seq, score in zip(sequences, scores):  # best first; beams that differ only in special tokens: once
            found.setdefault(self.tokenizer.decode(seq[start:], skip_special_tokens=True).strip(), score)
        return list(found.items())

    def generate(self, chat: list[dict], graph_tokens=None, request: str | None = None,
                 schema: dict | None = None) -> str:
        """The model's answer to ``chat`` (under ``schema`` where given): greedy, or with :attr:`beams` > 1 the
        beam candidate :func:`assistant.rerank.choose` keeps for ``request``."""
        if schema is not None:
            return self.candidates(chat, graph_tokens, schema=schema)[0][0]
        if self.beams <= 1 or request is None:
            return self.candidates(chat, graph_tokens)[0][0]
        from assistant.rerank import choose

        found = self.candidates(chat, graph_tokens, self.beams)
        return found[choose(request, found, self.rerank_weight)][0]

    def interpret(self, graph: Graph, request: str, tries: int = 2) -> Outcome:
        """``request`` on ``graph``: each clause (:func:`assistant.reading.clauses`) read, decoded, held to its
        words and run on the graph the clauses before it left; the whole program applied at once at the end.
        ``graph`` is never changed."""
        from assistant import reading
        from gnn.edits import EditError, Infeasible, apply_program

        start = time.perf_counter()
        done = lambda action, message, **kw: Outcome(action, message, seconds=time.perf_counter() - start, **kw)  # noqa: E731
        question = reading.language_question(request)
        if question:
            return done("ask", question)
        current, edits, wants, answers = graph, [], [], []
        f = facts(graph)
        parts = reading.clauses(request, reading.depth_of(f))
        for k, clause in enumerate(parts):
            if k:
                f = facts(current)
                clause = reading.reread(clause, f)
            w = reading.read_clause(clause, f)
            self._new_blocks(w, edits, f)
            if w.refuse:
                return done("refuse", w.refuse, answers=answers)
            if w.ask:
                return done("ask", w.ask, answers=answers)
            out = self._clause(current, clause.text if len(parts) > 1 else request, w, tries)
            if out.action == "edit" and w.confirm:  # the words fix it, but leave the reader a choice: offered
                out = Outcome("offer", w.confirm, program=out.program, answers=out.answers)
            answers += out.answers
            if out.action == "offer":  # the whole request so far, one "yes" away
                whole = {"edits": edits + out.program["edits"]}
                said = reading.statement(whole, None, reading.depth_of(facts(graph))).text
                return done("ask", f"Did you mean: {said}?" + (f" If not: {out.message}" if out.message else
                                                               " If not, say which layers or parts."),
                            answers=answers, program=whole)
            if out.action != "edit":
                return done(out.action, out.message, answers=answers, program=out.program)
            try:
                current = reading.advance(out.program, current)
            except Infeasible as e:
                return done("refuse", str(e), answers=answers, program=out.program)
            except EditError as e:
                return done("failed", f"could not turn that into a valid edit: {e}", answers=answers,
                            program=out.program)
            edits += out.program["edits"]
            wants.append(w)
        program = {"edits": edits}
        try:
            result = apply_program(graph, program)
        except EditError as e:  # pragma: no cover - each clause ran above; the whole runs the same edits
            return done("failed", f"could not turn that into a valid edit: {e}", answers=answers, program=program)
        said = reading.statement(program, wants, reading.depth_of(facts(graph)) if len(parts) == 1 else None)
        return done("edit", f"{said.text}\n{result.diff}", program=program, result=result, answers=answers,
                    reading=said)

    @staticmethod
    def _new_blocks(w, edits: list[dict], f) -> None:
        """"the new block(s)" in a clause after an insertion: the blocks that insertion made; "that layer" after
        an edit on given layers: those layers."""
        from assistant import reading

        k = w.refers
        if not edits or not w.ops or (k, "target.layers") in w.fields:
            return
        last = (edits[-1].get("target") or {}).get("layers")
        if reading._SAME_BLOCKS.search(w.clause.text) and last and edits[-1]["op"] not in ("remove_layers",
                                                                                          "insert_layers"):
            w.fields[(k, "target.layers")] = (list(last), [])  # "then freeze that layer"
            return
        at = max((i for i, e in enumerate(edits) if e["op"] == "insert_layers"), default=None)
        original = reading._ORIGINAL.search(w.clause.text)
        if at is None or not (original or reading._NEW_BLOCK.search(w.clause.text)):
            return
        blocks = _new_block_indices(edits[at:], reading.depth_of(f))
        if original or w.others:  # "the original four", "all layers except the new ones": the other blocks
            blocks = [b for b in range(reading.depth_of(f)) if b not in blocks]
        if blocks:
            w.fields[(k, "target.layers")] = (blocks, [])
        else:
            w.ask = "The blocks that were inserted are gone after the later edits; which layers do you mean?"

    def _clause(self, graph: Graph, request: str, w, tries: int) -> Outcome:
        """One clause: decoded (under the edits its words name, where they name any), then held to its words.
        Where the words fix every field the model is not asked: whatever it answered would be held to them whole."""
        from assistant import reading

        if w.ops and not w.open:  # the words fix every field: a decoded answer would be held to them whole
            held, mismatch = reading.hold(reading.skeleton(w), w)
            if mismatch:
                return Outcome("ask", mismatch.question)  # not a yes/no question: no edit is offered
            return self._run(graph, held, [], words=True)
        f = facts(graph)
        tokens, placeholder = None, ""
        if self.projector is not None:
            from assistant.graph_tokens import graph_placeholder, graph_tokens

            tokens = graph_tokens(graph)
            placeholder = graph_placeholder(len(tokens)) if tokens is not None else ""
        schema = reading.constrained_schema(w) if w.ops else None
        answers: list[str] = []
        error = None
        for _ in range(tries):
            chat = messages(f, request, graph_placeholder=placeholder, error=error,
                            previous=answers[-1] if answers else None)
            raw = self.generate(chat, tokens, request=request, schema=schema)
            answers.append(raw)
            try:
                answer = json.loads(raw)
            except json.JSONDecodeError:  # the token budget ran out mid-answer
                if w.ops:  # the words fix the edits: what they give stands in for the cut-off answer
                    answer = {"action": "edit", "edits": reading.skeleton(w)["edits"]}
                else:
                    error = "the answer was cut off; give a shorter one."
                    continue
            if answer["action"] == "ask":
                return Outcome("ask", answer["question"], answers=answers)
            if answer["action"] == "refuse":
                return Outcome("refuse", answer["reason"], answers=answers)
            program = {"edits": answer["edits"]}
            if not w.ops:  # the words name no edit: the model's guess is offered, never made
                return Outcome("offer", prompt_text("clarify.md"), program=program, answers=answers)
            held, mismatch = reading.hold(program, w)
            if mismatch:
                return Outcome("ask", mismatch.question, answers=answers)
            question = reading.missing(w) if not _has_open(held, w) else None
            if question:
                return Outcome("ask", question, answers=answers)
            out = self._run(graph, held, answers)
            if out.action == "edit":  # what the model chose where the words left a field open: offered, not made
                return Outcome("offer", "", program=held, answers=answers)
            if out.action != "failed":  # the engine's refusal: no retry would be right for that
                return out
            error = out.error
        return Outcome("failed", f"could not turn that into a valid edit: {error}", answers=answers)

    @staticmethod
    def _run(graph: Graph, program: dict, answers: list[str], words: bool = False) -> Outcome:
        """``program`` checked on ``graph``: an edit, the engine's refusal, or its error (where the ``words`` alone
        made the program, a target this model lacks is a refusal: no other answer would be right)."""
        from gnn.edits import EditError, Infeasible, apply_program

        try:
            apply_program(graph, program)
        except Infeasible as e:
            return Outcome("refuse", str(e), program=program, answers=answers)
        except EditError as e:
            other, result = _with_roles(graph, program)
            if result is None and words and "matches nothing" in str(e):  # a part the words name that it lacks
                return Outcome("refuse", str(e), program=program, answers=answers)
            if result is None:
                return Outcome("failed", f"could not turn that into a valid edit: {e}", program=program,
                               answers=answers, error=str(e))
            program = other
        return Outcome("edit", "", program=program, answers=answers)


def _new_block_indices(edits: list[dict], depth: int) -> list[int]:
    """Where the blocks ``edits[0]`` (an insertion) made sit once the later ``edits`` ran, on a graph now ``depth``
    blocks deep (removals and insertions after it move them; a removed one is gone)."""
    def size(e):
        n = len((e.get("target") or {}).get("layers") or [-1])
        return -n if e["op"] == "remove_layers" else e.get("count", 1) * n if e["op"] == "insert_layers" else 0

    d = depth - sum(size(e) for e in edits)  # before the insertion
    first, *later = edits
    n = first.get("count", 1)
    after = sorted(i % d for i in ((first.get("target") or {}).get("layers") or [-1]))
    blocks = [a + 1 + j + i * n for i, a in enumerate(after) for j in range(n)]
    d += size(first)
    for e in later:
        layers = sorted(i % d for i in ((e.get("target") or {}).get("layers") or [-1]))
        if e["op"] == "remove_layers":
            blocks = [b - sum(r < b for r in layers) for b in blocks if b not in layers]
        elif e["op"] == "insert_layers":
            blocks = [b + e.get("count", 1) * sum(a < b for a in layers) for b in blocks]
        d += size(e)
    return blocks


def prompt_text(name: str) -> str:
    from assistant.prompting import prompt

    return prompt(name)


def _has_open(program: dict, w) -> bool:
    """Whether the model filled the open fields :func:`assistant.reading.missing` would ask about."""
    e = program["edits"][0]
    t = e.get("target") or {}
    if e["op"] == "remove_layers":
        return bool(t.get("layers"))
    if e["op"] == "add_dropout":
        return bool(t)
    return True
