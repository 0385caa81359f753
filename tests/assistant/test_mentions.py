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
])
def test_positions_are_read_on_the_graphs_depth(text, expected):
    assert _read(text) == expected


def test_the_same_words_mean_other_blocks_on_a_deeper_graph():
    assert _read("the top two layers", depth=32) == [("layers", (30, 31), "top two layers")]
    assert _read("all but the last", depth=3) == [("layers", (0, 1), "all but the last")]


@pytest.mark.parametrize("text, expected", [
    ("rank sixteen", [("number", 16, "sixteen")]),
    ("use twenty-four heads", [("number", 24, "twenty-four")]),
    ("one hundred and twenty eight", [("number", 128, "one hundred and twenty eight")]),
    ("lora_alpha=32, lora_dropout=0.05", [("number", 32, "32"), ("number", 0.05, "0.05")]),
    ("insert one block after block 0", [("number", 1, "one"), ("layers", (0,), "block 0")]),
])
def test_numbers_as_digits_and_words(text, expected):
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
])
def test_parts_are_named_many_ways(text, roles):
    assert [v for k, v, _ in _read(text) if k == "role"] == roles


def test_every_mention_keeps_its_words():
    text = "LoRA r=sixteen on q and v of the top two layers"
    assert _read(text) == [("number", 16, "sixteen"), ("role", "attn.q", "q"), ("role", "attn.v", "v"),
                           ("layers", (2, 3), "top two layers")]
