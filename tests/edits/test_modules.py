"""replace_norm, insert_adapter, add_dropout, and every edit on every ground-truth family."""

import pytest
import torch

from gnn.edits import EditError, apply_program
from gnn.exporters.fx import to_graph_module
from gnn.exporters.onnx import example_inputs
from gnn.importers.hf import HFOptions, import_hf
from gnn.ir.serialize import to_json
from tests.edits.test_lora import CONFIGS


def _graph(family):
    return import_hf(f"hf:{family}", HFOptions(overrides=CONFIGS[family], seq_len=8))


def test_replace_norm_rmsnorm_to_layernorm():
    graph = _graph("llama")
    result = apply_program(graph, [{"op": "replace_norm", "to": "layernorm"}])
    norms = 3 * 2 + 1  # two per block and the final one
    assert result.diff.params_after - result.diff.params_before == norms * 64  # a bias each
    assert result.graph.modules["model.layers.0.input_layernorm"] == "LayerNorm"
    ops = [n.op for n in result.graph.nodes if n.module == "model.norm"]
    assert ops == ["aten.native_layer_norm.default"]


def test_replace_norm_layernorm_to_rmsnorm_in_one_layer():
    graph = _graph("gpt2")
    result = apply_program(graph, [{"op": "replace_norm", "to": "rmsnorm", "target": {"layers": [0]}}])
    assert result.graph.modules["transformer.h.0.ln_1"] == "RMSNorm"
    assert result.graph.modules["transformer.h.1.ln_1"] == "LayerNorm"
    assert result.diff.params_before - result.diff.params_after == 2 * 64  # two biases gone


def test_insert_adapter_after_the_last_mlp():
    graph = _graph("llama")
    result = apply_program(graph, [{"op": "insert_adapter", "bottleneck": 8, "target": {"layers": [-1], "roles": ["mlp"]}}])
    assert result.diff.params_after - result.diff.params_before == 64 * 8 + 8 + 8 * 64 + 64
    assert result.graph.modules["model.layers.2.mlp.adapter"] == "Adapter"
    assert "model.layers.2.mlp.adapter.down" in result.graph.hierarchy


def test_add_dropout_records_training_dropout():
    graph = _graph("bert")
    result = apply_program(graph, [{"op": "add_dropout", "p": 0.2, "target": {"roles": ["attn"]}}])
    drops = [n for n in result.graph.nodes if n.op == "aten.native_dropout.default"]
    assert len(drops) == 3 and all(n.args[1] == 0.2 for n in drops)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"op": "replace_norm", "to": "batchnorm"}, "unknown norm `batchnorm` for `to`; choose one of layernorm, rmsnorm"),
        ({"op": "insert_adapter", "bottleneck": 0}, "`bottleneck` must be a positive integer, got 0"),
        ({"op": "add_dropout", "p": 1.0, "target": {"roles": ["mlp"]}}, "`p` must be in (0, 1), got 1.0"),
        ({"op": "add_dropout"}, "`add_dropout` needs a target"),
        ({"op": "replace_norm", "target": {"roles": ["attn.q"]}}, "holds no normalisation"),
    ],
)
def test_bad_module_edits(edit, message):
    graph = _graph("llama")
    before = to_json(graph)
    with pytest.raises(EditError) as info:
        apply_program(graph, [edit])
    assert message in str(info.value)
    assert to_json(graph) == before


EVERY_EDIT = [
    {"op": "add_lora", "target": {"layers": [-1]}},
    {"op": "remove_layers", "target": {"layers": [-1]}},
    {"op": "insert_layers", "target": {"layers": [-1]}},
    {"op": "replace_activation", "to": "gelu_tanh"},
    {"op": "replace_norm", "to": "rmsnorm"},
    {"op": "insert_adapter", "bottleneck": 4},
    {"op": "add_dropout", "p": 0.1, "target": {"roles": ["mlp"]}},
    {"op": "freeze", "target": {"roles": ["embed.tokens"]}},
]


RMS_NORM = {"llama", "mistral", "qwen2", "t5"}


@pytest.mark.parametrize("family", sorted(RMS_NORM))
def test_replace_norm_to_the_norm_it_has_is_refused(family):
    from gnn.edits import Infeasible

    graph = _graph(family)
    before = graph.copy()
    with pytest.raises(Infeasible, match=r"is already RMSNorm; nothing to change"):
        apply_program(graph, [{"op": "replace_norm", "to": "rmsnorm"}])
    assert graph == before


@pytest.mark.parametrize("family", sorted(CONFIGS))
@pytest.mark.parametrize("edit", EVERY_EDIT, ids=[e["op"] for e in EVERY_EDIT])
def test_every_edit_on_every_family(family, edit):
    """Each edit applies, validates (apply_program re-validates) and the result runs."""
    if edit["op"] == "replace_norm" and family in RMS_NORM:  # RMSNorm to RMSNorm changes nothing: refused
        edit = {**edit, "to": "layernorm"}
    result = apply_program(_graph(family), [edit])
    module = to_graph_module(result.graph, seed=1)
    out = module(**example_inputs(result.graph))
    assert all(torch.isfinite(v).all() for v in out.values())


def test_block_that_feeds_later_blocks_is_not_removed():
    """T5's first block computes the relative position bias every later block reads."""
    with pytest.raises(EditError, match="block `decoder.block.0` hands on 3 values; only single-stream blocks"):
        apply_program(_graph("t5"), [{"op": "remove_layers", "target": {"layers": [0]}}])


@pytest.mark.parametrize("op, depth", [("remove_layers", 1), ("insert_layers", 3)])
def test_layers_skip_a_convolutional_stack(op, depth):
    """wav2vec2's feature extractor is a stack too, but its blocks change the stream's shape."""
    from tests.edits.ground_truth import assert_same_architecture

    graph = import_hf("hf:wav2vec2", HFOptions(overrides={"num_hidden_layers": 2}, seq_len=8))
    result = apply_program(graph, [{"op": op, "target": {"layers": [-1]}}])
    reference = import_hf("hf:wav2vec2", HFOptions(overrides={"num_hidden_layers": depth}, seq_len=8))
    assert_same_architecture(result.graph, reference)
