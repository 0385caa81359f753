"""`mad ask`: questions matched to the fact they ask about, answers made from the graph's facts, and
an honest "what I can answer" for anything else (issue 5, section 5). The questions here are not the
phrasings the matcher was given (assistant/ask.py)."""

import json

import pytest

from assistant.ask import ask
from assistant.facts import facts
from tests.assistant.test_describe import _truth
from tests.conftest import TINY

HELD_OUT = {
    "kv_heads": "How many key and value heads are there?",
    "layers": "What's the depth of this network?",
    "hidden": "What is the size of the residual stream?",
    "norm": "What normalisation layer is used?",
    "activation": "Which activation does the MLP use?",
    "positions": "How does the model know token order?",
    "params": "What's the total number of weights?",
    "head_dim": "How large is each attention head?",
}
# more held-out phrasings: (question, fact key)
MORE = [("How many blocks are stacked?", "layers"), ("What's d_model?", "hidden"), ("Is this GQA or MHA?", "attention"),
        ("Which norm layers does it have?", "norm"), ("Is the MLP a GLU variant?", "activation"),
        ("Does it use learned position embeddings?", "positions"), ("How many params in total?", "params"),
        ("Are input and output embeddings shared?", "tied_embeddings"), ("How many tokens can it embed?", "vocab"),
        ("What is the FFN's inner size?", "mlp_hidden"), ("Is it an encoder-only model?", "kind"),
        ("Has LoRA been added?", "lora")]
EXPECTED = {k: "attention" if k in ("kv_heads", "head_dim") else k for k in HELD_OUT}


def test_held_out_phrasings_find_their_fact(graphs):
    f = facts(graphs["llama"])
    questions = [(q, EXPECTED[k]) for k, q in HELD_OUT.items()] + MORE
    found = [ask(f, q)[1] for q, _ in questions]
    right = sum(got == want for got, (_, want) in zip(found, questions))
    wrong = [(q, got) for got, (q, want) in zip(found, questions) if got not in (want, None)]
    print(f"{right} of {len(questions)} held-out questions matched their fact")
    assert right >= 0.85 * len(questions)  # measured: 18 of 20; the two misses say what can be asked
    assert not wrong  # a miss says what can be asked; it never answers a different question


@pytest.mark.parametrize("family", ["llama", "gpt2", "t5"])
def test_questions_get_true_answers(graphs, family):
    graph = graphs[family]
    f, truth = facts(graph), _truth(graph, family)
    answers = {key: ask(f, q) for key, q in HELD_OUT.items() if key != "hidden"}
    answers["hidden"] = ask(f, "what is the model's hidden dimension?")
    assert f"{truth['kv']} key/value head" in answers["kv_heads"][0]
    assert f"head size {truth['head_dim']}" in answers["head_dim"][0]
    assert f"{truth['layers']} repeated blocks" in answers["layers"][0]
    assert f"is {truth['width']}." in answers["hidden"][0]
    assert f"{truth['params']:,} parameters" in answers["params"][0]
    assert answers["norm"][0].startswith({"llama": "RMSNorm", "gpt2": "LayerNorm", "t5": "RMSNorm"}[family])
    assert answers["activation"][0].startswith({"llama": "SiLU", "gpt2": "GELU (tanh", "t5": "ReLU"}[family])
    assert ("Rotary" if family == "llama" else "absolute" if family == "gpt2" else "relative") in answers["positions"][0]


def test_questions_no_fact_answers_get_what_can_be_asked(graphs):
    f = facts(graphs["llama"])
    for q in ("What is the weather in Paris?", "Who trained this model?", "Write me a poem"):
        text, key = ask(f, q)
        assert key is None and text.startswith("I can answer about its layers")


def test_mad_ask(capsys):
    from assistant.ui.cli import run

    sets = [a for k, v in TINY["llama"].items() for a in ("--set", f"{k}={v}")]
    assert run(["ask", "hf:llama", *sets, "how many KV heads does it have?"]) == 0
    assert capsys.readouterr().out.strip() == "Grouped-query attention: 4 query heads, 2 key/value heads, head size 16."
    assert run(["ask", "hf:llama", *sets, "what is the weather?"]) == 1
    assert "I can answer about" in capsys.readouterr().out


def test_mad_edit_by_request(tmp_path, capsys, monkeypatch):
    """The command prints its reading and the program it chose and writes the graph; a question comes back with exit 1
    and nothing written. (The model's answers are fixed here; the model itself is tested in test_interpret.)"""
    from assistant import interpret
    from assistant.ui.cli import run

    sets = [a for k, v in TINY["llama"].items() for a in ("--set", f"{k}={v}")]
    program = {"action": "edit", "edits": [{"op": "add_lora", "target": {"layers": [-1]}}]}
    monkeypatch.setattr(interpret.Assistant, "generate", lambda self, chat, tokens=None, request=None, schema=None: json.dumps(program))
    out = tmp_path / "out.json"
    assert run(["edit", "hf:llama", *sets, "--request", "add LoRA to the last layer", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    # the words fix the layer (the last of two is layer 1), said back in plain words before the program
    assert "reading: LoRA r=8 (peft's default) on peft's default target modules of layer 1\n" in printed
    assert 'program: {"edits": [{"op": "add_lora", "target": {"layers": [1]}}]}' in printed
    assert "trainable" in printed and out.exists()
    monkeypatch.setattr(interpret.Assistant, "generate",
                        lambda self, chat, tokens=None, request=None, schema=None: '{"action": "ask", "question": "Which layers should get adapters?"}')
    other = tmp_path / "other.json"
    assert run(["edit", "hf:llama", *sets, "--request", "something for long documents", "-o", str(other)]) == 1
    assert capsys.readouterr().out.strip() == "question: Which layers should get adapters?"
    assert not other.exists()
