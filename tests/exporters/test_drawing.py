"""The drawn graph (issue 21): folded stacks, frames opened by path, data-flow arrows with shapes, marks coloured,
and Graphviz's SVG carrying the ids a viewer clicks."""

import re

import pytest

from gnn.edits import apply_program
from gnn.exporters.drawing import MAX_OWN, Marks, default_open, to_dot, to_svg


def _boxes(dot: str) -> set[str]:
    return set(re.findall(r'^\s*"([a-z]+:[^"]*)" \[id=', dot, re.M))


def test_a_first_drawing_folds_the_stack(graphs):
    g = graphs["llama"]
    assert default_open(g) == {"", "model"}
    dot = to_dot(g, default_open(g))
    assert _boxes(dot) >= {"c:model.embed_tokens", "f:model.layers", "c:model.norm", "c:lm_head"}
    assert "layers 0-1 × LlamaDecoderLayer" in dot and "2 blocks" in dot and "peripheries=2" in dot
    assert not any(b.startswith("c:model.layers.") for b in _boxes(dot))  # the blocks are inside the fold
    # arrows carry the shape of the value that crosses: the embedding's output into the stack
    assert re.search(r'"c:model.embed_tokens" -> "f:model.layers" \[label=" \[1, 8, 64\]', dot)
    assert f"ops of LlamaModel" in dot  # the mask's many small ops are one box until opened (> {MAX_OWN})


def test_opening_down_to_single_ops(graphs):
    g = graphs["llama"]
    opened = {"", "model", "model.layers", "model.layers.1", "model.layers.1.self_attn", "ops:model.layers.1.self_attn"}
    dot = to_dot(g, opened)
    boxes = _boxes(dot)
    assert {"c:model.layers.0", "c:model.layers.1.mlp"} <= boxes  # unfolded stack: each block; the MLP closed
    assert {f"c:model.layers.1.self_attn.{p}_proj" for p in "qkvo"} <= boxes
    assert 'subgraph "cluster_model.layers.1.self_attn"' in dot and 'id="o:model.layers.1.self_attn"' in dot
    ops = {b for b in boxes if b.startswith("n:")}
    assert any("softmax" in g.node_by_id[b[2:]].op for b in ops)  # attention's own ops drawn one by one
    residual = [b for b in ops if g.node_by_id[b[2:]].module == "model.layers.1" and "add" in g.node_by_id[b[2:]].op]
    assert len(residual) == 2  # the block's two residual adds


def test_marks_colour_the_box_holding_them(graphs):
    g = graphs["llama"]
    edited = apply_program(g, {"edits": [{"op": "add_lora", "target": {"layers": [-1], "roles": ["attn.q"]}}]})
    d = edited.diff
    marks = Marks(nodes={n: "added" for n in d.added_nodes}, composites={p: "added" for p in d.added_composites})
    folded = to_dot(edited.graph, default_open(edited.graph), marks)
    assert re.search(r'"f:model.layers" \[[^\n]*fillcolor="#dafbe1"', folded)  # the fold holds the change
    assert not re.search(r'"c:model.norm" \[[^\n]*fillcolor="#dafbe1"', folded)
    opened = to_dot(edited.graph, {"", "model", "model.layers", "model.layers.1", "model.layers.1.self_attn"}, marks)
    assert re.search(r'"c:model.layers.1.self_attn.q_proj" \[[^\n]*fillcolor="#dafbe1"', opened)
    assert not re.search(r'"c:model.layers.0" \[[^\n]*fillcolor="#dafbe1"', opened)
    errors = Marks(nodes={d.added_nodes[0]: "error"}, messages={d.added_nodes[0]: ["shape: expected [1, 8, 64]"]})
    red = to_dot(edited.graph, default_open(edited.graph), errors)
    assert re.search(r'"f:model.layers" \[[^\n]*shape: expected \[1, 8, 64\][^\n]*fillcolor="#ffebe9"', red)
    gone = to_dot(g, default_open(g), Marks(removed=["model.layers.1"]))
    assert '"removed" [id="removed", label="removed:\\nmodel.layers.1"' in gone


def test_too_many_ops_are_counted_not_drawn(graphs):
    g = graphs["llama"]
    opened = {"", "model", "ops:model", "model.layers", "model.layers.0", "model.layers.0.self_attn",
              "ops:model.layers.0.self_attn"}
    dot = to_dot(g, opened, max_drawn=10)
    assert len([b for b in _boxes(dot) if b.startswith("n:")]) == 10
    assert re.search(r'"more" \[label="\d+ more ops not drawn', dot)


@pytest.mark.parametrize("family", ["gpt2", "bert", "t5"])
def test_svg_has_the_ids_a_click_needs(graphs, family):
    g = graphs[family]
    svg = to_svg(to_dot(g, default_open(g)))
    assert svg.startswith("<svg")
    folds = re.findall(r'<g id="(f:[^"]+)" class="node', svg)
    assert folds, svg[:500]  # every family's stack is one folded box at first
    assert re.search(r'<g id="o:[^"]*" class="cluster', svg)  # open frames close on a click


def test_a_long_unfolded_stack_shows_its_ends_and_folds_the_middle():
    """50k-op graphs stay drawable: 20 blocks unfold into the first and last two, any opened one, and runs."""
    from assistant.ui.graph_view import toggled
    from tests.conftest import TINY
    from gnn.importers.hf import HFOptions, import_hf

    g = import_hf("hf:llama", HFOptions(overrides={**TINY["llama"], "num_hidden_layers": 20}, seq_len=8))
    opened = default_open(g) | {"model.layers", "model.layers.10"}
    boxes = _boxes(to_dot(g, opened))
    blocks = {b for b in boxes if re.fullmatch(r"c:model\.layers\.\d+", b)}
    assert blocks == {"c:model.layers.0", "c:model.layers.1", "c:model.layers.18", "c:model.layers.19"}
    assert {"r:model.layers.2-9", "r:model.layers.11-17", "c:model.layers.10.self_attn"} <= boxes
    assert "layers 2-9 × LlamaDecoderLayer" in to_dot(g, opened)
    # a click on a run opens its first block, and the run starts one later
    boxes = _boxes(to_dot(g, toggled(opened, "r:model.layers.2-9")))
    assert "r:model.layers.3-9" in boxes and "c:model.layers.2.mlp" in boxes
