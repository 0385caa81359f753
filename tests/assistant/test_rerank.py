"""Reranking beam candidates by what they say back (assistant.rerank) and the development phrasings it is tuned on."""

import json

import pytest

from assistant.rerank import choose, render


def test_answers_read_back_as_plain_english():
    edit = lambda *e: {"action": "edit", "edits": list(e)}  # noqa: E731
    assert render(edit({"op": "set_kv_heads", "kv_heads": 2})) == "use grouped-query attention with 2 key/value heads"
    assert "multi-query" in render(edit({"op": "set_kv_heads", "kv_heads": 1}))
    assert render(edit({"op": "insert_layers", "target": {"layers": [-1]}, "count": 2})) == \
        "add 2 more layers on top of the last layer, making the model 2 layers deeper"
    assert render(edit({"op": "insert_layers", "target": {"layers": [-2, -1]}})) == \
        "insert 1 layer after each of the last 2 layers"
    assert render(edit({"op": "remove_layers", "target": {"layers": [-3, -2, -1]}})) == \
        "remove the last 3 layers, making the model shallower"
    assert render(edit({"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]}, "r": 16})) == \
        "add LoRA adapters with rank 16 to the query projection and the value projection"
    assert render(edit({"op": "add_lora"})) == "add LoRA adapters with the default settings"
    assert render(edit({"op": "replace_activation", "to": "gelu_new"})) == \
        "replace the activation function with tanh-approximated GELU"
    assert render(edit({"op": "freeze"}, {"op": "unfreeze", "target": {"layers": [-1]}})) == \
        "freeze everything except the last layer, which stays trainable"
    # a parameter left out reads as the engine's default
    assert render(edit({"op": "replace_norm"})) == "replace the normalization layers with RMSNorm"
    assert render(edit({"op": "insert_layers", "target": {"layers": [-1]}})).startswith("add 1 more layer on top")
    assert render({"action": "ask", "question": "Which layers?"}) == "ask a question: Which layers?"
    assert render({"action": "refuse", "reason": "No ALiBi."}) == "refuse: No ALiBi."


def test_the_reading_closest_to_the_request_wins_when_the_model_is_nearly_as_sure():
    insert = json.dumps({"action": "edit", "edits": [{"op": "insert_layers", "target": {"layers": [-1]}, "count": 2}]})
    kv = json.dumps({"action": "edit", "edits": [{"op": "set_kv_heads", "kv_heads": 2}]})
    candidates = [(insert, -0.07), (kv, -0.09)]
    assert choose("use 2 key-value heads", candidates, weight=0.0) == 0  # no weight: the model's best
    assert choose("use 2 key-value heads", candidates, weight=1.0) == 1
    assert choose("grow the depth by 2 layers", candidates, weight=1.0) == 0
    assert choose("use 2 key-value heads", [(insert, -0.07), (kv, -5.0)], weight=1.0) == 0  # far less likely: no
    assert choose("use 2 key-value heads", [('{"action":"ed', -0.01), (kv, -0.09)], weight=1.0) == 1  # cut off


def test_development_phrasings_are_apart_from_the_held_out_ones():
    from assistant.training.instructions import INTENTS, dev_phrasings, held_out_phrasings, similarity

    for intent in INTENTS:
        dev = dev_phrasings(intent)
        assert len(dev) >= 3, intent
        for text in dev:
            assert max(similarity(text, h) for h in held_out_phrasings(intent)) < 0.85, (intent, text)


def test_n_layers_on_top_and_one_after_each_of_the_last_n_read_apart():
    edit = lambda layers, **kw: json.dumps({"action": "edit", "edits": [  # noqa: E731
        {"op": "insert_layers", "target": {"layers": layers}, **kw}]})
    each, on_top = edit([-4, -3, -2, -1]), edit([-1], count=4)
    # beam scores as the shipped adapter gave them: the model slightly preferred the wrong one
    assert choose("grow the depth by 4 layers", [(each, -0.052), (on_top, -0.067)], weight=0.5) == 1
    assert choose("insert a layer after each of the last 4 layers", [(on_top, -0.052), (each, -0.067)],
                  weight=0.5) == 1


def test_a_refusal_that_only_repeats_the_request_does_not_read_as_close_to_it():
    from assistant.rerank import similarities

    request = ("I'd like the attention layers changed to MQA, i.e. keep all the Q heads but collapse K and V "
               "to one head.")
    parrot = {"action": "refuse", "reason": request}
    mqa = {"action": "edit", "edits": [{"op": "set_kv_heads", "kv_heads": 1}]}
    assert similarities(request, [parrot])[0] < 0.3 < similarities(request, [mqa])[0]
    assert choose(request, [(json.dumps(parrot), -0.15), (json.dumps(mqa), -0.2)], weight=0.5) == 1
    # a refusal's own words still count
    alibi = {"action": "refuse", "reason": "ALiBi: the engine cannot change positional encodings."}
    assert similarities("add alibi", [alibi])[0] > 0.3


def test_shorthand_is_spelt_out_before_it_is_compared():
    """"convert attn to mqa" reads as close to "use multi-query attention" as the spelt-out request does."""
    from assistant.rerank import similarities, spelt_out

    assert spelt_out("convert attn to mqa pls") == "convert attention to multi-query attention please"
    assert spelt_out("LoRA r=8 on q_proj, v_proj w/ num_key_value_heads=1") \
        == "LoRA r=8 on query projection, value projection with number of key/value heads=1"
    assert spelt_out("attention and quantization") == "attention and quantization"  # words that merely contain them
    mqa = {"action": "edit", "edits": [{"op": "set_kv_heads", "kv_heads": 1}]}
    assert similarities("convert attn to mqa", [mqa])[0] == pytest.approx(
        similarities("convert attention to multi-query attention", [mqa])[0], abs=1e-5)
