"""Instruction data: every answer is well-formed, every edit answer runs on the graph it was made for,
and answers follow the graph (issue 5, section 2)."""

import dataclasses
import json
import random

import pytest

from assistant.facts import facts
from assistant.training.instructions import INTENTS, answer, examples_for, expand, held_out_phrasings, train_phrasings
from assistant.schema import validate_answer
from gnn.edits import Infeasible, apply_program


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_every_edit_answer_runs_on_its_graph(graphs, family):
    graph = graphs[family]
    for held_out in (False, True):
        examples = examples_for(facts(graph), random.Random(0), held_out=held_out)
        assert {e.intent for e in examples} == set(INTENTS)
        ran = set()
        for e in examples:
            assert "{" not in e.request and "[" not in e.request  # every parameter and alternative filled in
            validate_answer(e.answer)
            validate_answer(e.target)
            key = json.dumps(e.answer.get("edits"), sort_keys=True)
            if e.answer["action"] == "edit" and key not in ran:  # each distinct program once
                ran.add(key)
                apply_program(graph, {"edits": e.answer["edits"]})  # raises if the engine refuses
            elif e.written is not None:  # the model writes the edit asked for; the engine's refusal is the answer
                assert e.answer["action"] == "refuse" and e.written["action"] == "edit"
                with pytest.raises(Infeasible):
                    apply_program(graph, {"edits": e.written["edits"]})
    held = examples_for(facts(graph), random.Random(0), held_out=True)
    assert len(held) == sum(len(held_out_phrasings(i)) for i in INTENTS) == 6 * len(INTENTS)
    assert {e.source for e in held} == {"first templates", "independent"}


def test_the_grammar_spells_every_combination():
    assert expand("[add|apply] LoRA[| to it]") == ["add LoRA", "add LoRA to it", "apply LoRA", "apply LoRA to it"]
    assert expand("use {act}[| please]") == ["use {act}", "use {act} please"]


def test_held_out_phrasings_are_never_trained_on():
    from assistant.training.instructions import closest_training_phrasing, similarity, too_close

    for intent in INTENTS:
        train = train_phrasings(intent)
        assert len(train) >= 50, intent  # many ways to ask, not five
        for held in held_out_phrasings(intent):
            assert held not in train
            assert not too_close(held, train), (intent, held)  # none within SIMILAR (0.85)
    for held in held_out_phrasings("activation"):  # the pruned search finds what comparing every pair does
        assert closest_training_phrasing("activation", held) == max(similarity(held, t)
                                                                    for t in train_phrasings("activation"))


def _answers(intent: str, text: str, f) -> dict:
    return {request: a for request, a, _ in (answer(intent, text, f, random.Random(seed)) for seed in range(40))}


def _written(intent: str, text: str, f) -> dict:
    return {request: w for request, _, w in (answer(intent, text, f, random.Random(seed)) for seed in range(40))}


def test_answers_follow_the_graph(graphs):
    f = facts(graphs["llama"])  # 2 blocks, 4 heads (2 KV), RMSNorm
    assert _answers("norm", "switch to {norm}", f)["switch to RMSNorm"] == {"action": "refuse",
                                                                          "reason": "It already uses RMSNorm."}
    assert _answers("norm", "switch to {norm}", f)["switch to LayerNorm"]["action"] == "edit"
    gqa = _answers("gqa", "use GQA with {kv} KV heads", f)
    assert gqa["use GQA with 3 KV heads"]["reason"].startswith("3 does not divide the 4 query heads; choose one of 1, 2, 4")
    remove = _answers("remove_last", "remove the last {n} layers", f)
    assert remove["remove the last 2 layers"]["action"] == "refuse"
    # the model writes the edit asked for; the engine refuses it (test_every_edit_answer_runs_on_its_graph)
    assert _written("norm", "switch to {norm}", f)["switch to RMSNorm"] == {
        "action": "edit", "edits": [{"op": "replace_norm", "to": "rmsnorm"}]}
    assert _written("remove_last", "remove the last {n} layers", f)["remove the last 2 layers"]["edits"] == [
        {"op": "remove_layers", "target": {"layers": [-2, -1]}}]
    assert gqa["use GQA with 2 KV heads"] == {"action": "refuse", "reason": "It already has 2 KV heads."}
    assert _written("gqa", "use GQA with {kv} KV heads", f)["use GQA with 2 KV heads"] == {
        "action": "edit", "edits": [{"op": "set_kv_heads", "kv_heads": 2}]}
    assert _written("gqa", "use GQA with {kv} KV heads", f)["use GQA with 4 KV heads"] == gqa["use GQA with 4 KV heads"]
    assert remove["remove the last 1 layer"]["edits"] == [{"op": "remove_layers", "target": {"layers": [-1]}}]
    assert "remove the last 1 layers" not in remove  # numbers agree with their nouns
    assert answer("vague", "make it smaller", f, random.Random(0))[1]["action"] == "ask"
    deeper = dataclasses.replace(f, layers=12)
    assert _answers("remove_last", "remove the last {n} layers", deeper)["remove the last 2 layers"]["action"] == "edit"


def test_training_draws_few_hand_written_requests(graphs):
    from assistant.training.instructions import examples

    train = examples(facts(graphs["llama"]), random.Random(0), held_out=False)
    written = [e for e in train if e.source == "hand-written"]
    assert 0 < len(written) <= len(train) // len(INTENTS) * 2
    assert not any(e.held_out_phrasing for e in train)
    held = examples(facts(graphs["llama"]), random.Random(0), held_out=True)
    assert all(e.held_out_phrasing for e in held) and any(e.source == "hand-written" for e in held)


def test_hand_written_requests_are_well_formed_and_run(graphs):
    import json
    import pathlib

    rows = [json.loads(line) for line in
            (pathlib.Path(__file__).resolve().parents[3] / "corpora" / "requests.jsonl").read_text().splitlines()]
    assert len(rows) >= 30 and any(r["held_out"] for r in rows)
    assert {r["answer"]["action"] for r in rows} == {"edit", "ask", "refuse"}
    for r in rows:
        validate_answer(r["answer"])
        if r["answer"]["action"] == "edit":  # on Llama, or on GPT-2 where Llama already has it (RMSNorm, SiLU)
            try:
                apply_program(graphs["llama"], {"edits": r["answer"]["edits"]})
            except Infeasible:
                apply_program(graphs["gpt2"], {"edits": r["answer"]["edits"]})


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_hand_written_requests_kept_for_a_graph_run_on_it(graphs, family):
    from assistant.training.instructions import hand_written

    graph = graphs[family]
    kept = hand_written(facts(graph))
    assert any(e.held_out_phrasing for e in kept) and any(not e.held_out_phrasing for e in kept)
    for e in kept:
        if e.answer["action"] == "edit":
            apply_program(graph, {"edits": e.answer["edits"]})


def test_hand_written_requests_that_mean_something_else_on_a_graph_are_left_out(graphs):
    from assistant.training.instructions import hand_written

    llama = {e.request for e in hand_written(facts(graphs["llama"]))}  # RMSNorm, SiLU, separate q/k/v
    gpt2 = {e.request for e in hand_written(facts(graphs["gpt2"]))}  # LayerNorm, tanh GELU, fused q/k/v
    assert "Replace all layer norms with RMS norms" not in llama  # it already has them: the answer is a refusal
    assert "Replace all layer norms with RMS norms" in gpt2
    assert "I'd like the nonlinearities to be SiLU" not in llama and "I'd like the nonlinearities to be SiLU" in gpt2
    assert "put lora (r=32, alpha=64) on q and v in the last two layers" in llama
    assert "put lora (r=32, alpha=64) on q and v in the last two layers" not in gpt2  # no separate q and v
    assert "Add prefix tuning" in llama and "Add prefix tuning" in gpt2  # refusals hold everywhere
    assert hand_written(facts(graphs["bert"])) == []  # written for decoders: BERT has no final norm


@pytest.mark.parametrize("name", ["fresh_phrasings.json", "fresh_phrasings_2.json", "fresh_phrasings_3.json"])
def test_fresh_phrasings_make_answerable_cases_that_remember_their_phrasing(graphs, name):
    """`evaluate_llm --fresh NAME` scores phrasings written after training: each fills in like a held-out one,
    and the training grammar keeps none of its phrasings close to them."""
    import json

    from assistant.training.evaluate_llm import FRESH, ROOT, fresh_results
    from assistant.training.instructions import too_close

    assert name in FRESH and fresh_results(name).parent == ROOT / "bench" / "results"
    phrasings = json.loads((ROOT / "corpora" / name).read_text())
    assert set(phrasings) == set(INTENTS) and all(len(v) >= 4 for v in phrasings.values())
    f = facts(graphs["llama"])
    fresh = examples_for(f, random.Random(0), held_out=True, phrasings=phrasings)
    assert len(fresh) == sum(map(len, phrasings.values()))
    for e in fresh:
        assert e.source == "fresh" and e.phrasing in phrasings[e.intent] and "{" not in e.request
        validate_answer(e.answer)
        assert not too_close(e.phrasing, train_phrasings(e.intent))
    lora = next(e for e in fresh if e.intent == "lora_qv_rank")
    assert lora.answer["edits"][0]["target"] == {"roles": ["attn.q", "attn.v"]} \
        and f"{lora.answer['edits'][0]['r']}" in lora.request


def test_the_eval_scores_the_ablation_given_and_the_shipped_adapter(tmp_path):
    from assistant.training.evaluate_llm import _adapters
    from assistant.llm import ADAPTER

    assert _adapters(None) == {"LoRA + graph tokens": ADAPTER}
    assert list(_adapters(str(tmp_path))) == ["LoRA, no graph tokens", "LoRA + graph tokens"]


def test_training_requests_are_said_many_ways_and_held_out_ones_as_written(graphs):
    """Training draws call activations and norms by their other names (``gelu_new``, Swish, RMS norm) and say a
    share of requests with a reason, a greeting or as a question, none of them close to a held-out or fresh
    phrasing; held-out requests keep the names and words they were written with."""
    from assistant.training.instructions import ACT_NAMES, ACTS, SIMILAR, fresh_phrasings, similarity, wrap

    f = facts(graphs["llama"])
    rng = random.Random(0)
    train = [e for _ in range(60) for e in examples_for(f, rng)]
    acts = {e.request for e in train if e.intent == "activation"}
    assert any(n in r for r in acts for n in ("gelu_new", "Swish", "gelu_pytorch_tanh", "relu2", "approximate GELU"))
    wrapped = [e for e in train if e.phrasing not in train_phrasings(e.intent)]
    assert 0.15 < len(wrapped) / len(train) < 0.45
    for e in wrapped:
        held = held_out_phrasings(e.intent) + fresh_phrasings(e.intent)
        assert max(similarity(e.phrasing, h) for h in held) < SIMILAR
    held = examples_for(f, random.Random(0), held_out=True)
    assert all(e.request.count("{") == 0 for e in held)
    assert all(any(name in e.request for name in ACTS.values()) for e in held if e.intent == "activation")
    assert set(ACT_NAMES) == set(ACTS)
    assert wrap("Add LoRA to the last layer.", random.Random(3)) != "Add LoRA to the last layer."
    assert all(not wrap("LoRA on q and v", random.Random(s)).startswith(("Could", "Can", "Would", "Is"))
               for s in range(30))  # not a verb: never made a question
