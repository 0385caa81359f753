"""Explicit mentions in requests: numbers, layer positions on the graph's depth, named parts, with their spans."""

import pytest

from assistant.mentions import mentions


def _read(text: str, depth: int = 4) -> list[tuple]:
    return [(m.kind, m.value, text[m.start:m.end]) for m in mentions(text, depth)]


@pytest.mark.parametrize("text, expected", [
    ("add lora to the last layer", [("layers", (3,), "last layer")]),
    ("remove the final 3 blocks", [("layers", (1, 2, 3), "final 3 blocks")]),
    ("LoRA on the top two layers", [("layers", (2, 3), "top two layers")]),
    ("only the first three decoder layers", [("layers", (0, 1, 2), "first three decoder layers")]),
    ("freeze all but the last layer", [("layers", (0, 1, 2), "all but the last layer")]),
    ("every layer except the first two", [("layers", (2, 3), "every layer except the first two")]),
    ("LoRA on layers 0 and 2", [("layers", (0, 2), "layers 0 and 2")]),
    ("dropout in layers 1-3", [("layers", (1, 2, 3), "layers 1-3")]),
    ("blocks 0, 1 and 3", [("layers", (0, 1, 3), "blocks 0, 1 and 3")]),
    ("the second-to-last block", [("layers", (2,), "second-to-last block")]),
    ("the penultimate layer", [("layers", (2,), "penultimate layer")]),
    ("the third layer", [("layers", (2,), "third layer")]),
    ("all layers", [("layers", (0, 1, 2, 3), "all layers")]),
    ("layer 7", [("layers", (7,), "layer 7")]),  # past the end stays in: the check refuses it
    ("the last five layers", [("layers", (-1, 0, 1, 2, 3), "last five layers")]),  # more than there are: likewise
    ("the last remaining block", [("layers", (3,), "last remaining block")]),
    ("layer 2 (1-indexed)", [("layers", (1,), "layer 2")]),  # the request counts from one
    ("model.layers.1 and h.3", [("layers", (1,), "layers.1"), ("layers", (3,), "h.3")]),
])
def test_positions_are_read_on_the_graphs_depth(text, expected):
    assert [m for m in _read(text) if m[0] == "layers"] == expected


def test_the_same_words_mean_other_blocks_on_a_deeper_graph():
    assert _read("the top two layers", depth=32) == [("layers", (30, 31), "top two layers")]
    assert _read("all but the last", depth=3) == [("layers", (0, 1), "all but the last")]


@pytest.mark.parametrize("text, expected", [
    ("rank sixteen", [("param", ("r", 16), "rank sixteen")]),
    ("use twenty-four heads", [("number", 24, "twenty-four")]),
    ("one hundred and twenty eight", [("number", 128, "one hundred and twenty eight")]),
    ("lora_alpha=32, lora_dropout=0.05", [("param", ("alpha", 32), "lora_alpha=32"),
                                          ("param", ("lora_dropout", 0.05), "lora_dropout=0.05")]),
    ("insert one block after block 0", [("method", "insert", "insert"), ("param", ("count", 1), "one block"),
                                        ("layers", (0,), "block 0")]),
    ("2 kv heads", [("param", ("kv_heads", 2), "2 kv heads")]),
    ("a 16-dim bottleneck", [("param", ("bottleneck", 16), "16-dim"), ("method", "adapter", "bottleneck")]),
    ("three more layers", [("param", ("count", 3), "three more layers")]),
    ("dropout of 10%", [("param", ("p", 0.1), "dropout of 10%")]),
    ("LoRA r16 on c_proj", [("method", "lora", "LoRA"), ("param", ("r", 16), "r16"), ("module", "c_proj", "c_proj")]),
    ("num_hidden_layers=6", [("param", ("depth", 6), "num_hidden_layers=6")]),
    ("remove layer 2 (0-indexed)", [("method", "remove", "remove"), ("layers", (2,), "layer 2")]),
])
def test_numbers_as_digits_and_words(text, expected):
    assert _read(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("replace SiLU with GELU", [("activation", "silu", "SiLU"), ("direction", "to", "with"),
                                ("activation", "gelu", "GELU")]),
    ("ReLU instead of gelu_new", [("activation", "relu", "ReLU"), ("direction", "instead", "instead of"),
                                  ("activation", "gelu_new", "gelu_new")]),
    ("back to full MHA", [("direction", "back", "back to"), ("method", "kv", "MHA")]),
    ("swap LayerNorm for RMSNorm", [("norm", "layernorm", "LayerNorm"), ("direction", "to", "for"),
                                    ("norm", "rmsnorm", "RMSNorm")]),
    ("remvoe layer 0", [("method", "remove", "remvoe"), ("layers", (0,), "layer 0")]),  # one letter slipped
    ("the remote layer", []),  # a word of its own is no typo
    ("quantize to int8", [("unsupported", "quantization", "quantize"), ("direction", "to", "to"),
                          ("unsupported", "quantization", "int8")]),
    ("a mixture of experts", [("unsupported", "mixture of experts", "mixture of experts")]),
])
def test_names_directions_and_what_cannot_be_built(text, expected):
    assert _read(text) == expected


@pytest.mark.parametrize("text, roles", [
    ("LoRA on q and v", ["attn.q", "attn.v"]),
    ("q_proj, k_proj, v_proj and o_proj", ["attn.q", "attn.k", "attn.v", "attn.o"]),
    ("the query and value matrices", ["attn.q", "attn.v"]),
    ("the MLP gate, up and down projections", ["mlp", "mlp.gate", "mlp.up", "mlp.down"]),
    ("dropout after the feed-forward", ["mlp"]),
    ("dropout on the position embeddings", ["embed.positions"]),
    ("freeze the token embeddings and the lm head", ["embed.tokens", "lm_head"]),
    ("LoRA on GPT-2's c_attn", ["attn.qkv"]),
    ("set up LoRA on the attention", ["attn"]),  # "set up" is no up projection
    ("scale down the learning rate", []),
    ("only token and position embeddings", ["embed.tokens", "embed.positions"]),  # one noun for two parts
    ("the final norm (model.norm)", ["norm.final", "norm.final"]),
])
def test_parts_are_named_many_ways(text, roles):
    assert [v for k, v, _ in _read(text) if k == "role"] == roles


def test_every_mention_keeps_its_words():
    text = "LoRA r=sixteen on q and v of the top two layers"
    assert _read(text) == [("method", "lora", "LoRA"), ("param", ("r", 16), "r=sixteen"), ("role", "attn.q", "q"),
                           ("role", "attn.v", "v"), ("layers", (2, 3), "top two layers")]
