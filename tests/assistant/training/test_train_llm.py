"""LoRA + graph-token projector training (a few steps on a few examples), the adapter in peft's format,
and the assistant using it (issue 5, section 3). Full training is `python -m assistant.training.train_llm`."""

import json
import random

import pytest
import torch

from assistant.graph_tokens import graph_tokens
from assistant.facts import facts
from assistant.training.instructions import examples_for


@pytest.fixture(scope="module")
def adapter(graphs, tmp_path_factory):
    from assistant.training.train_llm import LLMTrainConfig, train

    examples = []
    for family in ("llama", "gpt2"):
        graph = graphs[family]
        f, tokens = facts(graph), graph_tokens(graph)
        for e in examples_for(f, random.Random(0))[:4]:
            examples.append({"model_type": family, "facts": f, "tokens": tokens, "request": e.request,
                             "intent": e.intent, "answer": e.target})
    out = tmp_path_factory.mktemp("adapter") / "adapter"
    _, projector, history = train(LLMTrainConfig(steps=2, batch_size=2, out=str(out)), examples, progress=False)
    return out, history


def test_the_adapter_is_peft_format_with_peft_defaults(adapter):
    from peft import LoraConfig

    out, history = adapter
    config = json.loads((out / "adapter_config.json").read_text())
    defaults = LoraConfig()
    assert config["r"] == defaults.r and config["lora_alpha"] == defaults.lora_alpha
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]  # peft's default for llama-type models
    assert (out / "adapter_model.safetensors").exists() and (out / "projector.safetensors").exists()
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # not this machine's path
    assert not (out / "README.md").exists()  # peft's blank model card
    meta = json.loads((out / "graph_tokens.json").read_text())
    assert meta["graph_tokens"] and meta["d_graph"] == 96 and len(meta["loss"]) == 2
    assert all(loss > 0 for loss in history)


def test_graph_tokens_replace_the_placeholders(adapter, graphs):
    from assistant.interpret import Assistant
    from assistant.prompting import messages
    from assistant.graph_tokens import graph_placeholder

    out, _ = adapter
    a = Assistant(adapter=out, max_new_tokens=30, log=lambda *x: None)
    graph = graphs["llama"]
    tokens = graph_tokens(graph)
    chat = messages(facts(graph), "add LoRA", graph_placeholder=graph_placeholder(len(tokens)))
    ids = a.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert int((ids["input_ids"] == a.graph_id).sum()) == len(tokens)
    from assistant.graph_tokens import embed_with_graph

    with torch.no_grad():
        x = embed_with_graph(a.model, ids["input_ids"], a.graph_id, [tokens], a.projector)
        at = (ids["input_ids"][0] == a.graph_id).nonzero().flatten()
        assert torch.allclose(x[0, at], a.projector(tokens.float()), atol=1e-5)
    # decoding from embeddings is constrained too: every character is one the answer schema allows there
    # (an adapter trained for 2 steps rambles, so the answer is checked as a prefix)
    from lmformatenforcer import JsonSchemaParser

    from assistant.schema import answer_schema

    raw = a.generate(chat, tokens)
    parser = JsonSchemaParser(answer_schema())
    assert "x" not in parser.get_allowed_characters()  # the check can fail: an answer must open an object
    for ch in raw:
        assert ch in parser.get_allowed_characters(), raw
        parser = parser.add_character(ch)


@pytest.mark.parametrize("module, attr, named", [
    ("assistant.training.corpora", "GRAPH_TOKENS", "python -m assistant.training.corpora"),  # the full-size graphs'
    ("assistant.training.narrow", "NARROW_TOKENS", "python -m assistant.training.narrow"),  # the narrow variants' name their own build
])
def test_mad_train_llm_without_graph_tokens_says_how_to_build_them(tmp_path, monkeypatch, module, attr, named):
    import importlib

    from assistant.ui.cli import run

    monkeypatch.setattr(importlib.import_module(module), attr, tmp_path / "absent.safetensors")
    out = tmp_path / "adapter"
    with pytest.raises(SystemExit) as e:
        run(["train", "llm", "--steps", "1", "--out", str(out)])
    assert "no graph tokens for" in str(e.value) and named in str(e.value)
    assert not out.exists()


def test_the_committed_corpus_has_graph_tokens_for_every_described_type():
    from assistant.training.corpora import load_graph_tokens
    from assistant.graph_tokens import MAX_GRAPH_TOKENS
    from assistant.training.train_llm import load_corpus

    rows = load_corpus()
    assert len(rows) > 400 and all(r["tokens"] is not None for r in rows)
    assert all(0 < len(r["tokens"]) <= MAX_GRAPH_TOKENS for r in rows)
    assert set(load_graph_tokens()) == {r["model_type"] for r in rows}


def test_training_graphs_vary_in_depth_and_graph_tokens():
    """The committed corpora give training graphs of 1, 2 and 3 blocks besides full size, with graph tokens
    of their own size (issue 5: the evaluation's 2-block graphs are not a size training never saw)."""
    from assistant.training.train_llm import load_corpus

    rows = load_corpus()
    llama = {r["variant"]: r for r in rows if r["model_type"] == "llama"}
    assert {"full", "depth1", "depth2", "depth3", "mqa", "norm", "act"} <= set(llama)
    assert [llama[v]["facts"]["layers"] for v in ("depth1", "depth2", "depth3")] == [1, 2, 3]
    assert llama["mqa"]["facts"]["kv_heads"] == 1 and llama["norm"]["facts"]["norm"] == "LayerNorm"
    assert len(llama["depth2"]["tokens"]) < len(llama["depth3"]["tokens"]) < len(llama["full"]["tokens"])
    train = [r for r in rows if r["split"] == "train"]
    assert len({r["model_type"] for r in train if r["variant"] == "depth2"}) > 250
    assert not {r["model_type"] for r in rows if r["variant"] != "full" and r["split"] != "train"}

