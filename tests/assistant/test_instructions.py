"""Instruction data: every answer is well-formed, every edit answer runs on the graph it was made for,
and answers follow the graph (issue 5, section 2)."""

import random

import pytest

from assistant.facts import facts
from assistant.instructions import HELD_OUT, PHRASINGS, examples_for
from assistant.schema import validate_answer
from gnn.edits import apply_program


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_every_edit_answer_runs_on_its_graph(graphs, family):
    graph = graphs[family]
    examples = examples_for(facts(graph), random.Random(0))
    assert {e.intent for e in examples} == set(PHRASINGS)
    for e in examples:
        validate_answer(e.answer)
        if e.answer["action"] == "edit":
            apply_program(graph, {"edits": e.answer["edits"]})  # raises if the engine refuses
    held = [e for e in examples if e.held_out_phrasing]
    assert len(held) == HELD_OUT * len(PHRASINGS)


def test_answers_follow_the_graph(graphs):
    f = facts(graphs["llama"])  # 2 blocks, 4 heads (2 KV), RMSNorm
    by_request = {e.request: e.answer for seed in range(6) for e in examples_for(f, random.Random(seed))}
    assert by_request["switch to RMSNorm"] == {"action": "refuse", "reason": "It already uses RMSNorm."}
    assert by_request["switch to LayerNorm"]["action"] == "edit"
    assert by_request["use GQA with 3 KV heads"]["reason"].startswith("3 does not divide the 4 query heads; "
                                                                      "choose one of 1, 2, 4")
    assert by_request["remove the last 2 layers"]["action"] == "refuse"
    assert by_request["remove the last 1 layers"]["edits"] == [{"op": "remove_layers", "target": {"layers": [-1]}}]
    assert by_request["make it smaller"]["action"] == "ask"


def test_hand_written_requests_are_well_formed_and_run(graphs):
    import json
    import pathlib

    rows = [json.loads(line) for line in
            (pathlib.Path(__file__).resolve().parents[2] / "corpora" / "requests.jsonl").read_text().splitlines()]
    assert len(rows) >= 30 and any(r["held_out"] for r in rows)
    assert {r["answer"]["action"] for r in rows} == {"edit", "ask", "refuse"}
    for r in rows:
        validate_answer(r["answer"])
        if r["answer"]["action"] == "edit":
            apply_program(graphs["llama"], {"edits": r["answer"]["edits"]})


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_hand_written_requests_kept_for_a_graph_run_on_it(graphs, family):
    from assistant.instructions import hand_written

    graph = graphs[family]
    kept = hand_written(facts(graph))
    assert any(e.held_out_phrasing for e in kept) and any(not e.held_out_phrasing for e in kept)
    for e in kept:
        if e.answer["action"] == "edit":
            apply_program(graph, {"edits": e.answer["edits"]})


def test_hand_written_requests_that_mean_something_else_on_a_graph_are_left_out(graphs):
    from assistant.instructions import hand_written

    llama = {e.request for e in hand_written(facts(graphs["llama"]))}  # RMSNorm, SiLU, separate q/k/v
    gpt2 = {e.request for e in hand_written(facts(graphs["gpt2"]))}  # LayerNorm, tanh GELU, fused q/k/v
    assert "Replace all layer norms with RMS norms" not in llama  # it already has them: the answer is a refusal
    assert "Replace all layer norms with RMS norms" in gpt2
    assert "I'd like the nonlinearities to be SiLU" not in llama and "I'd like the nonlinearities to be SiLU" in gpt2
    assert "put lora (r=32, alpha=64) on q and v in the last two layers" in llama
    assert "put lora (r=32, alpha=64) on q and v in the last two layers" not in gpt2  # no separate q and v
    assert "Add prefix tuning" in llama and "Add prefix tuning" in gpt2  # refusals hold everywhere
    assert hand_written(facts(graphs["bert"])) == []  # written for decoders: BERT has no final norm
