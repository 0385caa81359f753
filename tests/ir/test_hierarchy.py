import pytest

from tests.conftest import real_model


def test_composites_follow_module_paths(graphs):
    h = graphs["llama"].hierarchy
    layer = h["model.layers.1"]
    assert layer.module_class == "LlamaDecoderLayer"
    assert "model.layers.1.self_attn" in layer.children
    assert h["model.layers.1.self_attn.q_proj"].module_class == "Linear"
    # a layer reads the residual stream from outside and hands one back
    assert layer.inputs and layer.outputs
    assert set(h["model.layers.1.self_attn.q_proj"].nodes) <= set(layer.nodes)


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "t5"])
def test_composite_parameter_counts_match_the_modules(graphs, family):
    graph = graphs[family]
    model = real_model(family)
    tied = set(graph.meta["tied_parameters"])
    h = graph.hierarchy
    for path, module in model.named_modules():
        if path not in h:
            continue
        expected = sum(p.numel() for name, p in module.named_parameters(prefix=path) if name not in tied)
        assert h[path].num_parameters == expected, path


def test_repeated_blocks_are_recognised(graphs):
    h = graphs["llama"].hierarchy
    (rep,) = h.top_repeats()
    assert rep.label == "model.layers.0-1" and rep.module_class == "LlamaDecoderLayer"
    assert rep.variants == 1
    t5 = graphs["t5"].hierarchy
    labels = {r.label for r in t5.top_repeats()}
    assert {"encoder.block.0-1", "decoder.block.0-1"} <= labels
