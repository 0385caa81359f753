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
