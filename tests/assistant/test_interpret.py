"""Requests to validated edits: constrained decoding with the real default model, and the
execute / report-back / retry loop (issue 5, section 4)."""

import json

import pytest

from assistant.schema import answer_schema, validate_answer


@pytest.fixture(scope="module")
def assistant():
    """The base model without the adapter: these tests are about decoding and the loop around it."""
    from assistant.interpret import Assistant

    return Assistant(adapter=None, max_new_tokens=60, log=lambda *a: None)


def test_the_answer_schema_accepts_programs_questions_and_refusals_only():
    import jsonschema

    validate_answer({"action": "edit", "edits": [{"op": "add_lora", "target": {"layers": [-1]}, "r": 16}]})
    validate_answer({"action": "edit", "edits": [{"op": "replace_norm", "to": "rmsnorm"}]})
    validate_answer({"action": "ask", "question": "Which layers?"})
    validate_answer({"action": "refuse", "reason": "The engine cannot add ALiBi."})
    for bad in ({"action": "edit", "edits": [{"op": "add_lora", "rank": 8}]},  # peft says r
                {"action": "edit", "edits": [{"op": "replace_norm", "to": "batchnorm"}]},
                {"action": "edit", "edits": [{"op": "add_lora", "target": {"roles": ["query"]}}]},
                {"action": "edit", "edits": []}, {"action": "maybe"}):
        with pytest.raises(jsonschema.ValidationError):
            validate_answer(bad)
    ops = {e["properties"]["op"]["const"] for e in answer_schema()["anyOf"][0]["properties"]["edits"]["items"]["anyOf"]}
    assert {"add_lora", "remove_layers", "set_kv_heads", "replace_norm", "insert_adapter"} <= ops


def test_constrained_decoding_gives_a_well_formed_answer(assistant, graphs):
    """Whatever the untuned model answers, it is JSON the schema accepts."""
    from assistant.facts import facts
    from assistant.interpret import messages

    raw = assistant.generate(messages(facts(graphs["llama"]), "add LoRA to the last layer"))
    validate_answer(json.loads(raw))


def test_an_engine_refusal_goes_back_for_one_more_try(assistant, graphs, monkeypatch):
    graph = graphs["llama"]
    before = graph.to_json() if hasattr(graph, "to_json") else len(graph.nodes)
    replies = iter([json.dumps({"action": "edit", "edits": [{"op": "set_kv_heads", "kv_heads": 3}]}),
                    json.dumps({"action": "edit", "edits": [{"op": "set_kv_heads", "kv_heads": 1}]})])
    seen = []
    monkeypatch.setattr(assistant, "generate", lambda chat, tokens=None: (seen.append(chat), next(replies))[1])
    out = assistant.interpret(graph, "make it multi-query")
    assert out.done and out.program == {"edits": [{"op": "set_kv_heads", "kv_heads": 1}]}
    assert len(out.answers) == 2
    assert "`kv_heads` must divide the 4 attention heads" in seen[1][-1]["content"]  # the engine's reason, verbatim
    assert (graph.to_json() if hasattr(graph, "to_json") else len(graph.nodes)) == before


def test_two_refusals_leave_the_graph_as_it_was(assistant, graphs, monkeypatch):
    graph = graphs["llama"]
    count = len(graph.nodes)
    monkeypatch.setattr(assistant, "generate",
                        lambda chat, tokens=None: json.dumps({"action": "edit", "edits": [{"op": "remove_layers",
                                                                              "target": {"layers": [7]}}]}))
    out = assistant.interpret(graph, "remove layer 7")
    assert out.action == "failed" and not out.done and "layer" in out.message
    assert len(graph.nodes) == count


def test_questions_and_refusals_pass_through(assistant, graphs, monkeypatch):
    monkeypatch.setattr(assistant, "generate", lambda chat, tokens=None: '{"action": "ask", "question": "Which layers?"}')
    out = assistant.interpret(graphs["llama"], "add some adapters somewhere maybe")
    assert (out.action, out.message, out.result) == ("ask", "Which layers?", None)


def test_the_shipped_adapter_turns_requests_into_the_right_answers(graphs):
    """The committed adapter (graph tokens and all) on requests in phrasings it was trained with, on a graph
    of a size it never saw; held-out phrasings and families are scored by `python -m assistant.evaluate_llm`."""
    import os

    from assistant.interpret import Assistant
    from assistant.train_llm import ADAPTER

    size = sum(p.stat().st_size for p in ADAPTER.iterdir())
    assert size < 20 * 2**20 and {"adapter_config.json", "adapter_model.safetensors", "projector.safetensors"} \
        <= set(os.listdir(ADAPTER))
    a = Assistant(log=lambda *x: None)
    assert a.adapter == ADAPTER and a.projector is not None
    graph = graphs["llama"]
    out = a.interpret(graph, "add LoRA to the last layer")
    assert out.done and out.program == {"edits": [{"op": "add_lora", "target": {"layers": [-1]}}]}, out.answers
    out = a.interpret(graph, "LoRA r=8 on q and v")
    assert out.done and out.program == {"edits": [{"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]},
                                                   "r": 8}]}, out.answers
    out = a.interpret(graph, "make it multi-query")
    assert out.done and out.program == {"edits": [{"op": "set_kv_heads", "kv_heads": 1}]}, out.answers


def test_another_model_does_not_get_the_shipped_adapter():
    """The shipped adapter was trained on SmolLM2-135M-Instruct; `--llm PATH` runs that model as it is."""
    from assistant.interpret import Assistant
    from assistant.llm import converted_path, load

    load(log=lambda *x: None)  # converts the default model on a fresh cache
    a = Assistant(llm=str(converted_path()), log=lambda *x: None)
    assert a.adapter is None and a.projector is None
    assert Assistant(llm="smollm2", log=lambda *x: None).adapter is not None  # the default, by its name
