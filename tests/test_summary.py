from gnn.analysis.summary import flops, op_histogram, outline, summarize


def test_summary_fields(graphs):
    s = summarize(graphs["llama"])
    assert s["params"] == graphs["llama"].num_parameters
    assert s["layers"] == 2
    assert s["ops"]["aten.mm.default"] == sum(1 for n in graphs["llama"].nodes if n.op == "aten.mm.default")
    assert s["params_by_module"]["model"] + s["params_by_module"]["lm_head"] == s["params"]
    assert s["params_by_module"]["model.layers.0.self_attn.q_proj"] == 64 * 64


def test_outline_folds_repeats(graphs):
    lines = outline(graphs["llama"])
    assert any("model.layers.0-1 × LlamaDecoderLayer  (2 blocks" in line for line in lines)
    assert not any("model.layers.1 ×" in line for line in lines)


def test_flops_of_a_linear_layer(graphs):
    """q_proj on (8 tokens, 64) x (64, 64): 2 * 8 * 64 * 64 multiply-adds."""
    from gnn.analysis.summary import node_flops

    graph = graphs["llama"]
    mm = next(n for n in graph.nodes if n.op == "aten.mm.default" and n.module == "model.layers.0.self_attn.q_proj")
    assert node_flops(graph, mm) == 2 * 8 * 64 * 64
    assert flops(graph) > 2 * 8 * 64 * 64 * 4 * 2


def test_op_histogram_sorted(graphs):
    counts = list(op_histogram(graphs["gpt2"]).values())
    assert counts == sorted(counts, reverse=True)
