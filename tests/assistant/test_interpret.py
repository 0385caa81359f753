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
    from assistant.prompting import messages

    raw = assistant.generate(messages(facts(graphs["llama"]), "add LoRA to the last layer"))
    validate_answer(json.loads(raw))


def test_an_engine_refusal_goes_back_for_one_more_try(assistant, graphs, monkeypatch):
    """Where the words leave a field to the model (where dropout goes) and its choice fails, the engine's reason
    goes back to it once; the rate the words fixed stays, and what the model chose is offered, not made."""
    graph = graphs["llama"]
    before = graph.copy()
    replies = iter([json.dumps({"action": "edit", "edits": [{"op": "add_dropout", "p": 0.5,
                                                             "target": {"roles": ["attn.qkv"]}}]}),
                    json.dumps({"action": "edit", "edits": [{"op": "add_dropout", "p": 0.5,
                                                             "target": {"roles": ["mlp"]}}]})])
    seen = []
    monkeypatch.setattr(assistant, "generate", lambda chat, tokens=None, request=None, schema=None:
                        (seen.append((chat, schema)), next(replies))[1])
    out = assistant.interpret(graph, "add dropout with p=0.1")
    assert out.action == "ask" and not out.done
    assert out.program == {"edits": [{"op": "add_dropout", "p": 0.1, "target": {"roles": ["mlp"]}}]}  # one yes away
    assert out.message.startswith("Did you mean: dropout p=0.1 after feed-forward (MLP)?") and len(out.answers) == 2
    assert "attn.qkv" in seen[1][0][-1]["content"] and "The engine refused that" in seen[1][0][-1]["content"]
    ops = [i["properties"]["op"]["const"] for i in seen[0][1]["properties"]["edits"]["items"]["anyOf"]]
    assert ops == ["add_dropout"]  # decoded under the edit the words name
    assert graph == before


def test_an_edit_the_words_fix_whole_is_not_decoded(assistant, graphs, monkeypatch):
    """Words that fix every field ("LoRA on the fused qkv projection") leave the model nothing to choose: it is
    not asked, and the engine's reason (Llama has no fused projection) comes back as a refusal, graph unchanged."""
    graph = graphs["llama"]
    before = graph.copy()
    monkeypatch.setattr(assistant, "generate", lambda *a, **k: pytest.fail("the model was asked"))
    out = assistant.interpret(graph, "add LoRA to the fused qkv projection")
    assert out.action == "refuse" and not out.done and "attn.qkv" in out.message and out.answers == []
    assert graph == before


@pytest.mark.parametrize("request_, reason", [
    ("use 3 key/value heads", ("`kv_heads` must divide the 4 attention heads of `model.layers.0.self_attn`, "
                               "got 3; choose one of 1, 2, 4")),
    ("GQA with 2 kv heads", "the attention already has 2 key/value heads; nothing to change"),
    ("swap the norms to RMSNorm", "every norm it selects (5) is already RMSNorm; nothing to change"),
    ("remove the last two layers", "would remove every block of `model.layers` (2); it can remove up to 1"),
])
def test_an_edit_the_graph_cannot_take_is_refused_without_a_retry(assistant, graphs, monkeypatch, request_, reason):
    """The words ask for GQA with 3 groups, RMSNorm...; that this graph (4 heads, 2 KV heads, RMSNorm, 2 blocks)
    cannot take it is the engine's answer, not a reason to try another program."""
    graph = graphs["llama"]
    before = graph.copy()
    monkeypatch.setattr(assistant, "generate", lambda chat, tokens=None, request=None, schema=None: "{")
    out = assistant.interpret(graph, request_)
    assert out.action == "refuse" and not out.done and len(out.answers) <= 1
    assert reason in out.message
    assert graph == before


def test_a_question_from_the_model_passes_through(assistant, graphs, monkeypatch):
    """Words that name no edit leave the answer to the model; its question comes back as it is."""
    monkeypatch.setattr(assistant, "generate", lambda chat, tokens=None, request=None, schema=None:
                        '{"action": "ask", "question": "Which layers?"}')
    out = assistant.interpret(graphs["llama"], "something for long documents")
    assert (out.action, out.message, out.result) == ("ask", "Which layers?", None)


def test_beams_share_one_run_of_the_prompt(assistant, graphs, monkeypatch):
    """Beam search starts every beam from one cached run of the prompt: the answers and their scores are the
    ones transformers' own beam search gives from the whole prompt (the first 40 tokens of each: enough to
    compare, not a whole answer of the base model's)."""
    import torch

    from assistant.facts import facts
    from assistant.prompting import messages

    monkeypatch.setattr(assistant, "max_new_tokens", 40)

    chat = messages(facts(graphs["llama"]), "use 2 key-value heads")
    ours = assistant.candidates(chat, beams=2)
    ids = assistant.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)
    with torch.no_grad():  # the same constraint and settings, the whole prompt given to generate
        out = assistant.model.generate(**ids, **assistant.generate_kwargs(beams=2))
    n = ids["input_ids"].shape[1]
    theirs = [(assistant.tokenizer.decode(s[n:], skip_special_tokens=True).strip(), score)
              for s, score in zip(out.sequences, out.sequences_scores.tolist())]
    assert [a for a, _ in ours] == [a for a, _ in theirs]
    assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], abs=1e-4)


def test_the_shipped_adapter_turns_requests_into_the_right_answers(graphs):
    """The committed adapter (graph tokens and all) on requests in phrasings it was trained with, on a graph
    of a size it never saw; held-out phrasings and families are scored by `python -m assistant.training.evaluate_llm`."""
    import os

    from assistant.interpret import Assistant
    from assistant.llm import ADAPTER

    size = sum(p.stat().st_size for p in ADAPTER.iterdir())
    assert size < 20 * 2**20 and {"adapter_config.json", "adapter_model.safetensors", "projector.safetensors"} \
        <= set(os.listdir(ADAPTER))
    a = Assistant(log=lambda *x: None)
    assert a.adapter == ADAPTER and a.projector is not None
    decoding = json.loads((ADAPTER / "decoding.json").read_text())  # chosen on the development requests
    assert (a.beams, a.rerank_weight) == (decoding["beams"], decoding["rerank_weight"])
    graph = graphs["llama"]
    out = a.interpret(graph, "add LoRA to the last layer")
    assert out.done and out.program == {"edits": [{"op": "add_lora", "target": {"layers": [1]}}]}, out.answers
    assert out.reading.text == "LoRA r=8 (peft's default) on peft's default target modules of layer 1"
    out = a.interpret(graph, "LoRA r=8 on q and v")
    assert out.done and out.program == {"edits": [{"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]},
                                                   "r": 8}]}, out.answers
    out = a.interpret(graph, "make it multi-query")
    assert out.done and out.program == {"edits": [{"op": "set_kv_heads", "kv_heads": 1}]}, out.answers
    # where the words leave a field open the adapter fills it, decoded under the edit the words name, and offers it
    out = a.interpret(graph, "add dropout with p=0.1")
    assert out.action == "ask" and out.message.startswith("Did you mean: dropout p=0.1 after"), out.answers
    assert out.program["edits"][0]["p"] == 0.1 and out.program["edits"][0].get("target"), out.answers


def test_another_model_does_not_get_the_shipped_adapter():
    """The shipped adapter was trained on SmolLM2-135M-Instruct; `--llm PATH` runs that model as it is."""
    from assistant.interpret import Assistant
    from assistant.llm import converted_path, load

    load(log=lambda *x: None)  # converts the default model on a fresh cache
    a = Assistant(llm=str(converted_path()), log=lambda *x: None)
    assert a.adapter is None and a.projector is None
    assert Assistant(llm="smollm2", log=lambda *x: None).adapter is not None  # the default, by its name


def test_a_kept_eval_result_is_tied_to_the_prompt_it_had(graphs, monkeypatch):
    """`evaluate_llm --keep-base` keeps the base model's rows only while each request's prompt is the same: a
    changed methods corpus (what retrieval puts in the prompt) means running it again."""
    import assistant.prompting as prompting
    from assistant.training.evaluate_llm import prompt_digest
    from assistant.facts import facts

    f, request = facts(graphs["llama"]), "use the tanh approximation of GELU"
    before = prompt_digest(f, request)
    assert prompt_digest(facts(graphs["llama"]), request) == before
    assert prompt_digest(f, "use GELU") != before
    monkeypatch.setattr(prompting, "methods_text", lambda request, k=2: "GELU (tanh approximation) -> []")
    assert prompt_digest(f, request) != before


def test_module_names_the_graph_lacks_are_read_as_roles(assistant, graphs, monkeypatch):
    """Llama's `q_proj`/`v_proj` on GPT-2 (one fused c_attn) mean its query and value projections, as a
    person means them; where the model chose modules the graph lacks and no role matches, its answer goes back
    to it and the graph stays unchanged."""
    from assistant.interpret import modules_as_roles

    program = {"edits": [{"op": "add_lora", "target": {"modules": ["q_proj", "v_proj"]}, "r": 64}]}
    assert modules_as_roles(program) == {"edits": [{"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]},
                                                    "r": 64}]}
    assert modules_as_roles({"edits": [{"op": "add_lora", "target": {"modules": ["c_proj"]}}]}) is None  # two roles
    graph = graphs["llama"]
    before = graph.copy()
    monkeypatch.setattr(assistant, "generate", lambda chat, tokens=None, request=None, schema=None: json.dumps(
        {"action": "edit", "edits": [{"op": "add_dropout", "target": {"modules": ["q_proj", "v_proj"]}}]}))
    out = assistant.interpret(graph, "add dropout, p=0.2")  # where it goes is the model's offer: q and v
    assert out.action == "ask" and out.program["edits"][0]["target"] == {"modules": ["q_proj", "v_proj"]}
    monkeypatch.setattr(assistant, "generate", lambda chat, tokens=None, request=None, schema=None: json.dumps(
        {"action": "edit", "edits": [{"op": "add_dropout", "target": {"modules": ["c_attn"]}}]}))
    out = assistant.interpret(graph, "add dropout, p=0.2")  # GPT-2's name on Llama: no such module, no role
    assert out.action == "failed" and len(out.answers) == 2 and graph == before
