"""`mad describe`: every fact in a description is checked against the Hugging Face config, the real
model's parameters and what transformers' code for the family does (issue 5, section 5)."""

import re

import pytest
import torch
import transformers

from assistant.describe import describe
from assistant.facts import facts
from tests.conftest import TINY

# What each family's transformers code does (norm, activation, positions, kind, fused q/k/v, gated MLP,
# pre/post norm, tied embeddings): known from the modelling files, not from the graph.
KNOWN = {
    "llama": ("RMSNorm", "SiLU", "rotary", "decoder-only", False, True, "pre-norm", False),
    "mistral": ("RMSNorm", "SiLU", "rotary", "decoder-only", False, True, "pre-norm", False),
    "gpt2": ("LayerNorm", "GELU (tanh approximation)", "learned absolute", "decoder-only", True, False, "pre-norm", True),
    "bert": ("LayerNorm", "GELU", "learned absolute", "encoder-only", False, False, "post-norm", True),
    "t5": ("RMSNorm", "ReLU", "relative", "encoder-decoder", False, False, "pre-norm", True),
    "vit": ("LayerNorm", "GELU", "learned absolute", "vision", False, False, "pre-norm", False),
    "whisper": ("LayerNorm", "GELU", "learned absolute", "encoder-decoder", False, False, "pre-norm", True),
    "bloom": ("LayerNorm", "GELU (tanh approximation)", "ALiBi", "decoder-only", True, False, "pre-norm", True),
}
POSITIONS = {"rotary": "rotary embeddings", "learned absolute": "learned absolute position embedding",
             "relative": "relative-position bias", "ALiBi": "(ALiBi)"}


def _truth(graph, family):
    config = transformers.AutoConfig.for_model(family, **TINY[family])
    layers = config.num_hidden_layers
    if family == "t5":
        layers = config.num_layers + config.num_decoder_layers
    if family == "whisper":
        layers = config.encoder_layers + config.decoder_layers
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "d_kv", None) or config.hidden_size // heads
    with torch.device("meta"):
        model = getattr(transformers, graph.meta["model_class"])(config)
    params = sum(p.numel() for p in model.parameters())  # shared (tied) tensors once
    return dict(layers=layers, width=config.hidden_size, heads=heads, kv=kv, head_dim=head_dim, params=params,
                vocab=getattr(config, "vocab_size", None))


def _parse(text):
    grab = lambda pattern: (m.group(1) if (m := re.search(pattern, text)) else None)  # noqa: E731
    num = lambda s: int(s.replace(",", "")) if s else None  # noqa: E731
    heads = grab(r"(\d+) query heads") or grab(r"multi-head attention with (\d+) heads")
    kv = grab(r"share (\d+) key/value head")
    return dict(
        layers=num(grab(r"with (\d+) repeated blocks")), width=num(grab(r"width (\d+)")),
        vocab=num(grab(r"vocabulary of ([\d,]+) tokens")), heads=num(heads),
        kv=num(kv) if kv else num(heads), head_dim=num(grab(r"head size (\d+)")),
        params=num(grab(r"Parameters: ([\d,]+)")), norm=grab(r"Normalization: (\w+)"),
        activation=grab(r"\bwith ([^,]+), inner width"), inner=num(grab(r"inner width (\d+)")),
        kind=grab(r" is an? ([\w-]+(?: transformer| model))"),
        fused="one fused q/k/v projection" in text, gated="gated feed-forward" in text,
        norm_position=grab(r"\((pre-norm|post-norm)\)"), tied="embeddings tied" in text,
    )


@pytest.mark.parametrize("family", sorted(KNOWN))
def test_every_fact_in_a_description_is_true(graphs, family):
    graph = graphs[family]
    text = describe(facts(graph))
    got, truth = _parse(text), _truth(graph, family)
    norm, act, positions, kind, fused, gated, norm_position, tied = KNOWN[family]
    assert got["layers"] == truth["layers"], text
    assert got["width"] == truth["width"], text
    assert got["heads"] == truth["heads"] and got["kv"] == truth["kv"] and got["head_dim"] == truth["head_dim"], text
    assert got["params"] == truth["params"], text
    if got["vocab"] is not None:
        assert got["vocab"] == truth["vocab"], text
    assert got["norm"] == norm and got["activation"] == act, text
    assert POSITIONS[positions] in text, text
    assert got["kind"].startswith(kind), text
    assert (got["fused"], got["gated"], got["norm_position"], got["tied"]) == (fused, gated, norm_position, tied), text
    attention = "grouped-query" if 1 < truth["kv"] < truth["heads"] else "multi-query" if truth["kv"] == 1 else \
        "multi-head"
    assert f"{attention} attention" in text
    for m in facts(graph).methods:  # references come from the methods corpus
        assert m["paper"] in text and (m["arxiv"] is None or m["arxiv"] in text)


def test_edits_show_in_the_description(graphs):
    from gnn.edits import apply_program

    edited = apply_program(graphs["llama"], [{"op": "set_kv_heads", "kv_heads": 1}, {"op": "add_lora"}]).graph
    text = describe(facts(edited))
    assert "multi-query attention: 4 query heads share 1 key/value head" in text
    assert "LoRA adapters" in text and "LoRA: \"LoRA: Low-Rank Adaptation of Large Language Models\"" in text
    trainable = int(re.search(r"\(([\d,]+) trainable\)", text).group(1).replace(",", ""))
    assert trainable == edited.num_trainable_parameters < edited.num_parameters


def test_mad_describe(capsys):
    from assistant.ui.cli import run

    sets = [a for k, v in TINY["mistral"].items() for a in ("--set", f"{k}={v}")]
    assert run(["describe", "hf:mistral", *sets]) == 0
    out = capsys.readouterr().out
    assert "MistralForCausalLM is a decoder-only transformer with 2 repeated blocks, width 64" in out
    assert run(["describe", "hf:mistral", *sets, "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["kv_heads"] == 2
    assert run(["describe", "hf:not-a-model"]) == 2
    assert "not-a-model" in capsys.readouterr().err


def test_a_stripped_onnx_file_is_described_from_its_rebuilt_structure(graphs, tmp_path):
    """No names at all: the learned labeler's roles rebuild projections and blocks (as for edits); what the
    graph still shows is described, what it does not is said to be unknown, never guessed."""
    import onnx

    from gnn.training.scramble import scramble
    from gnn.exporters.onnx import save_onnx
    from gnn.importers.onnx import import_onnx

    save_onnx(graphs["llama"], tmp_path / "named.onnx")
    onnx.save(scramble(onnx.load(tmp_path / "named.onnx")), tmp_path / "blank.onnx")
    text = describe(facts(import_onnx(tmp_path / "blank.onnx")))
    got = _parse(text)
    assert (got["layers"], got["width"], got["inner"], got["activation"], got["gated"]) == (2, 64, 128, "SiLU", True)
    assert "rotary embeddings" in text and "model of unknown kind" in text


@pytest.mark.parametrize("family", ["llama", "mistral", "gpt2", "bert", "bloom"])
def test_the_evaluation_checks_each_stated_fact_against_the_config(graphs, family):
    """`python -m assistant.training.evaluate_llm` scores the corpus's descriptions this way; here on tiny configs."""
    from assistant.training.evaluate_llm import check_description

    f = facts(graphs[family])
    text = describe(f)
    c = check_description(family, f.to_dict(), text, TINY[family])
    assert not c["wrong"], c
    assert {"blocks", "width", "heads", "kv heads", "head size", "params", "tied"} <= set(c["right"]), c
    wrong = check_description(family, f.to_dict(), text.replace(f"width {f.hidden}", f"width {f.hidden + 1}"),
                              TINY[family])
    assert [w["fact"] for w in wrong["wrong"]] == ["width"]


def test_vocabulary_is_what_the_head_predicts_and_stage_widths_are_both_stated(graphs):
    """Molmo2's text model embeds 8 image tokens beyond the 128 its config's vocab_size counts: imported as the
    base model, with no head, it has token embeddings of 136 rows and no vocabulary to state; with a head, the
    vocabulary is what the head predicts. Swin's stages widen from embed_dim to hidden_size (the config's
    width is the last stage's)."""
    from assistant.training.evaluate_llm import check_description
    from gnn.importers.hf import HFOptions, import_hf

    tiny = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=128, additional_vocab_size=8, head_dim=16)
    f = facts(import_hf("hf:molmo2_text", HFOptions(overrides=tiny, seq_len=8)))
    assert (f.vocab, f.vocab_source) == (136, "embedding") and "token embeddings for 136 ids" in describe(f)
    assert "vocab" not in check_description("molmo2_text", f.to_dict(), describe(f), tiny)["right"]
    f = facts(graphs["llama"])
    assert (f.vocab, f.vocab_source) == (TINY["llama"]["vocab_size"], "logits")
    assert f"a vocabulary of {f.vocab} tokens" in describe(f)
    tiny = dict(embed_dim=16, depths=[1, 1], num_heads=[2, 4], image_size=32, patch_size=4, window_size=2)
    f = facts(import_hf("hf:swin", HFOptions(overrides=tiny)))
    text = describe(f)
    assert (f.hidden, f.hidden_last) == (16, 32) and "width 16 in the first stage to 32 in the last" in text, text
    c = check_description("swin", f.to_dict(), text, tiny)
    assert "width" in c["right"] and not c["wrong"], c


# -- what the config sets that a short trace cannot show (issue 21) -------------------------------------------------

def _tiny(model_type, seq_len=8, **overrides):
    from gnn.importers.hf import HFOptions, import_hf

    shape = dict(TINY["llama"], pad_token_id=0) if model_type == "phi3" else TINY.get(model_type, TINY["llama"])
    return import_hf(f"hf:{model_type}", HFOptions(overrides={**shape, **overrides}, seq_len=seq_len))


def test_a_sliding_window_is_said_from_the_config_and_only_where_it_is_set(graphs):
    """Mistral's window (4096 by default) is longer than the 8 tokens traced, so only the config shows it;
    Llama has none, and a Mistral config without one says nothing of it."""
    f = facts(graphs["mistral"])
    assert (f.sliding_window, f.sliding_window_layers, f.from_config) == (4096, None, ["sliding_window"])
    assert "Sliding-window attention: in every layer, each query attends to the last 4,096 tokens only " \
           "(from the config)." in describe(f)
    assert "Longformer" in describe(f)  # the method's paper
    assert facts(_tiny("mistral", sliding_window=32)).sliding_window == 32
    for graph in (graphs["llama"], _tiny("mistral", sliding_window=None)):
        f = facts(graph)
        assert f.sliding_window is None and "Sliding-window" not in describe(f) and not f.from_config


def test_alternating_sliding_and_full_attention_layers_are_said(graphs):
    """Gemma 3: five sliding-window layers to one full one (its layer_types); Qwen2 with the window switched
    off says none, whatever its sliding_window."""
    f = facts(_tiny("gemma3_text", num_hidden_layers=12, head_dim=16, sliding_window=64))
    assert (f.sliding_window, f.sliding_window_layers, f.config_layers) == (64, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10], 12)
    assert "Sliding-window attention: in 5 of every 6 layers, each query attends to the last 64 tokens only, in " \
           "the others to the whole context (from the config)." in describe(f)
    f = facts(_tiny("qwen2", use_sliding_window=False, sliding_window=32))
    assert f.sliding_window is None and "Sliding-window" not in describe(f)


@pytest.mark.parametrize("key", ["rope_parameters", "rope_scaling"])
def test_rope_scaling_says_its_type_and_factor(key):
    """transformers 5 names the rope settings rope_parameters and still takes rope_scaling; the default
    (unscaled) rope says nothing."""
    f = facts(_tiny("llama", **{key: {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                                      "rope_theta": 10000.0}}))
    assert f.rope_scaling == {"type": "yarn", "factor": 4.0} and "rope_scaling" in f.from_config
    text = describe(f)
    assert "RoPE scaling: yarn, factor 4 (from the config)." in text and "YaRN" in text
    f = facts(_tiny("llama", rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}))
    assert "RoPE scaling: linear, factor 2 (from the config)." in describe(f)


def test_no_rope_scaling_no_window_no_experts_on_plain_llama(graphs):
    f = facts(graphs["llama"])
    assert (f.rope_scaling, f.sliding_window, f.softcapping, f.experts, f.experts_per_token) == (None,) * 5
    assert not any(w in describe(f) for w in ("RoPE scaling", "Soft-capping", "Mixture of experts", "config"))


def test_gemma2_says_its_soft_capping_read_off_the_graph():
    """cap * tanh(x / cap) is in the traced ops (on the scores, and on the logits): said unmarked, with the
    values the config has; where only the config has them, they are marked."""
    graph = _tiny("gemma2", head_dim=16)
    f = facts(graph)
    assert f.softcapping == {"attention": 50.0, "final": 30.0} and "softcapping" not in f.from_config
    assert graph.meta["config"]["attn_logit_softcapping"] == 50.0
    assert graph.meta["config"]["final_logit_softcapping"] == 30.0
    text = describe(f)
    assert "Soft-capping (cap * tanh(x / cap)): attention scores at 50 and final logits at 30." in text
    assert "in layer 0 of 2, each query attends to the last 4,096 tokens only" in text  # layer_types
    plain = _tiny("llama")
    plain.meta["config"] = {"attn_logit_softcapping": 20.0}  # a config setting the graph does not show
    assert "Soft-capping (cap * tanh(x / cap)): attention scores at 20 (from the config)." in describe(facts(plain))


def test_mixture_of_experts_says_experts_and_top_k():
    """Mixtral's expert count is its batched expert weights' first dim and its top-k the router's topk, both
    in the graph; Qwen2-MoE's shared expert comes from the config."""
    f = facts(_tiny("mixtral", num_local_experts=4, num_experts_per_tok=2))
    assert (f.experts, f.experts_per_token, f.shared_experts, f.from_config) == (4, 2, None, [])
    assert "Mixture of experts: 4 experts, each token routed to 2 of them." in describe(f)
    f = facts(_tiny("qwen2_moe", num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                    shared_expert_intermediate_size=64))
    assert (f.experts, f.experts_per_token, f.shared_experts, f.from_config) == (4, 2, 1, ["shared_experts"])
    assert "Mixture of experts: 4 experts, each token routed to 2 of them, 1 shared expert " \
           "every token goes through (from the config)." in describe(f)


def test_phi3_fused_gate_up_is_a_gated_feed_forward():
    """One gate_up_proj of width 2 x 128, split in halves: a gated feed-forward of inner width 128."""
    from gnn.roles import label

    graph = _tiny("phi3")
    f = facts(graph)
    assert (f.gated_mlp, f.fused_gate_up, f.mlp_hidden, f.activation) == (True, True, 128, "SiLU")
    got = _parse(describe(f))
    assert (got["gated"], got["inner"], got["activation"]) == (True, 128, "SiLU")
    assert "both halves of one fused projection" in describe(f)
    assert "model.layers.0.mlp.gate_up_proj" in label(graph).paths("mlp.gate")
    assert any(m["id"] == "swiglu" for m in f.methods)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gemma"])
def test_separate_gate_and_up_projections_read_as_before(family):
    f = facts(_tiny(family, **({"head_dim": 16} if family == "gemma" else {})))
    assert (f.gated_mlp, f.fused_gate_up, f.mlp_hidden) == (True, False, 128)
    assert "a gated feed-forward (the activation of a gate projection times an up projection) with" in describe(f)


def test_config_facts_survive_the_graph_json_and_edits(graphs):
    from gnn.edits import apply_program
    from gnn.ir.serialize import from_json, to_json

    graph = graphs["mistral"]
    again = from_json(to_json(graph))
    assert again.meta["config"] == graph.meta["config"] and describe(facts(again)) == describe(facts(graph))
    edited = apply_program(graph, [{"op": "add_lora"}, {"op": "remove_layers", "target": {"layers": [0]}}]).graph
    assert "last 4,096 tokens only (from the config)" in describe(facts(edited))
