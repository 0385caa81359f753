"""The rule-based role labeler, family by family: each test lists what it finds."""

import pytest

from gnn.importers.hf import HFOptions, import_hf
from gnn.roles import ROLES, label

DECODER = {"act", "attn", "attn.k", "attn.o", "attn.q", "attn.v", "block", "embed.tokens", "lm_head", "mlp",
           "mlp.down", "mlp.up", "norm.attn", "norm.final", "norm.mlp"}
GATED = DECODER | {"mlp.gate"}
FUSED_QKV = DECODER - {"attn.q", "attn.k", "attn.v"} | {"attn.qkv"}
POST_NORM_ENCODER = DECODER - {"norm.final"} | {"embed.positions"}

FOUND = {
    "llama": GATED, "mistral": GATED, "qwen2": GATED, "qwen3": GATED, "gemma": GATED, "gemma2": GATED,
    "olmo": GATED, "granite": GATED, "cohere": GATED, "stablelm": GATED,
    "mixtral": DECODER, "qwen3_moe": DECODER,  # experts: fused gate_up and down weights
    "phi3": FUSED_QKV | {"mlp.gate"}, "gpt_neox": FUSED_QKV, "bloom": FUSED_QKV, "falcon": FUSED_QKV,
    "gpt2": FUSED_QKV | {"embed.positions"}, "gptj": DECODER, "phi": DECODER, "starcoder2": DECODER,
    "opt": DECODER | {"embed.positions"},
    "bert": POST_NORM_ENCODER, "roberta": POST_NORM_ENCODER, "electra": POST_NORM_ENCODER,
    "deberta-v2": POST_NORM_ENCODER, "distilbert": DECODER | {"embed.positions"},
    "t5": DECODER, "mt5": GATED, "bart": POST_NORM_ENCODER, "pegasus": DECODER | {"embed.positions"},
    "whisper": DECODER | {"embed.positions"},
    "vit": DECODER - {"embed.tokens", "lm_head"}, "swin": DECODER - {"embed.tokens", "lm_head"},
    "clip": DECODER - {"lm_head"} | {"embed.positions"},
    "wav2vec2": {"act", "attn", "attn.k", "attn.o", "attn.q", "attn.v", "block", "mlp", "mlp.down", "mlp.up",
                 "norm.attn", "norm.mlp"},
    "llava": GATED,
}


def _graph(family):
    return import_hf(f"hf:{family}", HFOptions(overrides={"num_hidden_layers": 2}, seq_len=8))


@pytest.mark.parametrize("family", sorted(FOUND))
def test_labeler_finds_each_familys_roles(family):
    found = label(_graph(family)).found()
    assert set(found) == FOUND[family], sorted(found)
    assert set(found) <= set(ROLES)


def test_llama_paths(graphs):
    roles = label(graphs["llama"])
    assert roles.paths("attn.q") == ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"]
    assert roles.paths("norm.attn") == ["model.layers.0.input_layernorm", "model.layers.1.input_layernorm"]
    assert roles.paths("norm.mlp") == ["model.layers.0.post_attention_layernorm", "model.layers.1.post_attention_layernorm"]
    assert roles.paths("norm.final") == ["model.norm"] and roles.paths("lm_head") == ["lm_head"]
    assert roles.blocks == {"model.layers.0": ("model.layers", 0), "model.layers.1": ("model.layers", 1)}


def test_post_norm_is_told_from_pre_norm(graphs):
    """BERT normalises after each sublayer, Llama before: data flow, not position, decides."""
    roles = label(graphs["bert"])
    assert "bert.encoder.layer.0.attention.output.LayerNorm" in roles.paths("norm.attn")
    assert "bert.encoder.layer.0.output.LayerNorm" in roles.paths("norm.mlp")
    assert roles.paths("mlp")[:2] == ["bert.encoder.layer.0.intermediate", "bert.encoder.layer.0.output"]


def test_cross_attention_and_two_stacks(graphs):
    roles = label(graphs["t5"])
    assert "decoder.block.0.layer.1.EncDecAttention" in roles.paths("attn")
    assert roles.paths("norm.final") == ["encoder.final_layer_norm", "decoder.final_layer_norm"]
    assert {b for b, _ in roles.blocks.values()} == {"encoder.block", "decoder.block"}


def test_expert_weights_and_router():
    roles = label(import_hf("hf:mixtral", HFOptions(overrides={"num_hidden_layers": 1}, seq_len=4)))
    assert roles.parameters == {"model.layers.0.mlp.experts.gate_up_proj": "mlp.up",
                                "model.layers.0.mlp.experts.down_proj": "mlp.down"}
    assert not roles.paths("mlp.gate")  # the router is not a gated MLP's gate


def test_a_fused_gate_up_projection_is_the_gate_and_the_up_projection():
    """Phi-3's one ``gate_up_proj`` is split in halves, ``act(gate) * up``: it has both roles, as GPT-2's c_attn
    is attn.qkv, so LoRA on the gate (or the up) projection goes to it, as peft's target_modules would; its
    ops keep the label mlp.up."""
    from gnn.edits import apply_program
    from gnn.roles.labels import node_roles

    graph = import_hf("hf:phi3", HFOptions(overrides=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                          num_attention_heads=4, num_key_value_heads=2,
                                                          vocab_size=100, pad_token_id=0), seq_len=8))
    roles = label(graph)
    fused = ["model.layers.0.mlp.gate_up_proj", "model.layers.1.mlp.gate_up_proj"]
    assert roles.paths("mlp.gate") == roles.paths("mlp.up") == fused
    assert roles.composites[fused[0]] == ["mlp.up", "mlp.gate"]
    labels = dict(zip((n.id for n in graph.nodes), node_roles(graph, roles)))
    assert {labels[n] for n in graph.hierarchy[fused[0]].nodes} == {"mlp.up"}
    result = apply_program(graph, [{"op": "add_lora", "target": {"roles": ["mlp.gate"], "layers": [-1]}}])
    assert result.extras["peft_config"]["target_modules"] == ["gate_up_proj"]
    assert result.extras["peft_config"]["layers_to_transform"] == [1]


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gemma", "gpt2", "bert"])
def test_separate_or_ungated_projections_keep_one_role(family):
    """Only a projection whose halves gate each other is both: Llama's up_proj is not its gate_proj, and GPT-2's
    c_fc or BERT's intermediate (no gate) are up projections only."""
    roles = label(_graph(family))
    assert not set(roles.paths("mlp.gate")) & set(roles.paths("mlp.up"))


def test_functional_activation_is_labelled_on_the_op():
    roles = label(_graph("bloom"))
    assert roles.nodes and all(r == ["act"] for r in roles.nodes.values())


def test_graph_read_back_from_onnx(tmp_path, graphs):
    from gnn.exporters.onnx import save_onnx
    from gnn.importers.onnx import import_onnx

    graph = import_onnx(save_onnx(graphs["llama"], tmp_path / "m.onnx"))
    found = label(graph).found()
    assert {"attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down", "norm.attn", "norm.mlp",
            "block"} <= set(found)
