"""Two architectures compared block by block (issue 21): the facts describe reads, parts matched by role."""

import json

import pytest

from assistant.compare import compare
from assistant.ui.cli import run
from gnn.edits import apply_program
from gnn.importers.hf import HFOptions, import_hf
from tests.conftest import TINY

LLAMA = TINY["llama"]
BERT = TINY["bert"]


def _g(model_type, **overrides):
    return import_hf(f"hf:{model_type}", HFOptions(overrides=overrides, seq_len=8))


def test_llama_vs_mistral_of_one_size_differ_in_the_sliding_window_only():
    c = compare(_g("llama", **LLAMA), _g("mistral", **LLAMA), "hf:llama", "hf:mistral")
    assert c.facts == [("sliding_window", None, 4096)]  # mistral's default config sets it; the graphs are alike
    assert all(p.same for p in c.blocks) and not c.only_a and not c.only_b
    assert ("attention", "grouped-query") in c.same and len(c.matched) > 20
    assert "- sliding window (config): none vs 4096" in c.text()


def test_mistral_with_a_sliding_window_differs_in_it_from_the_config():
    c = compare(_g("llama", **LLAMA), _g("mistral", **LLAMA, sliding_window=4), "hf:llama", "hf:mistral")
    assert [(k, a, b) for k, a, b in c.facts] == [("sliding_window", None, 4)]
    assert "- sliding window (config): none vs 4" in c.text()


def test_gpt2_vs_gpt_neox_matches_fused_projections_by_role():
    gpt2 = _g("gpt2", **TINY["gpt2"])
    neox = _g("gpt_neox", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
              vocab_size=100)
    c = compare(gpt2, neox, "hf:gpt2", "hf:gpt_neox")
    said = {k: (a, b) for k, a, b in c.facts}
    assert said["positions"] == ("learned absolute", "rotary")
    assert said["activation"] == ("GELU (tanh approximation)", "GELU")
    assert said["tied_embeddings"] == (True, False)
    pairs = {(a.path, b.path) for a, b in c.matched}
    assert ("transformer.h.0.attn.c_attn", "gpt_neox.layers.0.attention.query_key_value") in pairs
    assert [p.path for p in c.only_a] == ["transformer.wpe"]  # the learned position table, only in GPT-2
    assert c.stacks == [("transformer.h", "gpt_neox.layers")]
    assert "positions: learned absolute vs rotary" in c.text()


def test_bert_vs_roberta_blocks_alike():
    c = compare(_g("bert", **BERT), _g("roberta", **BERT), "hf:bert", "hf:roberta")
    assert all(p.same for p in c.blocks) and len(c.blocks) == 2
    assert ("norm_position", "post-norm") in c.same


def test_a_model_vs_its_own_edit():
    llama = _g("llama", **LLAMA)
    edited = apply_program(llama, {"edits": [{"op": "add_lora", "target": {"layers": [-1], "roles": ["attn.q"]}, "r": 4},
                                             {"op": "set_kv_heads", "kv_heads": 1}]}).graph
    c = compare(llama, edited, "hf:llama", "edited")
    said = {k: (a, b) for k, a, b in c.facts}
    assert said["kv_heads"] == (2, 1) and said["lora"] == (False, True) and said["attention"][1] == "multi-query"
    last = [p for p in c.blocks if p.index == 1][0]
    parts = {role: (a, b) for role, a, b in last.parts}
    assert parts["attn.k"] == (64 * 32, 64 * 16) and parts["attn.q"] == (64 * 64, 64 * 64 + 4 * 64 * 2)
    assert "attn.q" not in {role for role, _, _ in c.blocks[0].parts}  # LoRA on the last block only
    marks = c.marks()
    assert marks.composites["model.layers.1"] == "changed"
    assert any(p.endswith("lora_A") and m == "added" for p, m in marks.composites.items())


def test_t5_pairs_encoder_with_encoder_and_a_shorter_decoder_is_unmatched():
    t5 = _g("t5", **TINY["t5"])
    short = apply_program(t5, {"edits": [{"op": "remove_layers", "target": {"modules": ["decoder.block.1"]}}]}).graph
    c = compare(t5, short, "hf:t5", "edited")
    assert c.stacks == [("encoder.block", "encoder.block"), ("decoder.block", "decoder.block")]
    enc = [p for p in c.blocks if p.stack == 0]
    dec = [p for p in c.blocks if p.stack == 1]
    assert all(p.same for p in enc) and dec[-1].b is None and dec[-1].a == "decoder.block.1"
    assert "only in a: decoder.block.1 (T5Block)" in c.text()


def test_mad_diff(capsys, tmp_path):
    sets = [a for k, v in LLAMA.items() for a in ("--set", f"{k}={v}")]
    assert run(["diff", "hf:llama", "hf:mistral", *sets, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["facts"] == [{"fact": "sliding_window", "a": None, "b": 4096}] and out["a"] == "hf:llama"
    assert all(b["same"] for b in out["blocks"]) and out["from_config"] == ["sliding_window"]
    program = '{"edits": [{"op": "remove_layers", "target": {"layers": [-1]}}]}'
    assert run(["diff", "hf:llama", *sets, "--program", program]) == 0
    text = capsys.readouterr().out
    assert "hf:llama vs hf:llama edited" in text and "- layers: 2 vs 1" in text


@pytest.mark.parametrize("argv, message", [
    (["diff", "hf:llama"], "mad diff needs B: a second SOURCE, or --program"),
    (["diff", "hf:llama", "hf:nonexistent_type"], "nonexistent_type"),
])
def test_mad_diff_refusals(capsys, argv, message):
    assert run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mad: error: ") and message in err[0]
