"""Reranking beam candidates by what they say back (assistant.rerank) and the development phrasings it is tuned on."""

import json

from assistant.rerank import choose, render


def test_answers_read_back_as_plain_english():
    edit = lambda *e: {"action": "edit", "edits": list(e)}  # noqa: E731
    assert render(edit({"op": "set_kv_heads", "kv_heads": 2})) == "use grouped-query attention with 2 key/value heads"
    assert "multi-query" in render(edit({"op": "set_kv_heads", "kv_heads": 1}))
    assert render(edit({"op": "insert_layers", "target": {"layers": [-1]}, "count": 2})) == \
        "add 2 more layers after the last layer, making the model deeper"
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
    assert render(edit({"op": "insert_layers", "target": {"layers": [-1]}})).startswith("add 1 more layer after")
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
    from assistant.instructions import INTENTS, dev_phrasings, held_out_phrasings, similarity

    for intent in INTENTS:
        dev = dev_phrasings(intent)
        assert len(dev) >= 3, intent
        for text in dev:
            assert max(similarity(text, h) for h in held_out_phrasings(intent)) < 0.85, (intent, text)
