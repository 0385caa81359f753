import pytest

from gnn.errors import GraphValidationError
from gnn.ir.graph import Node
from gnn.validate import check, validate


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "t5", "vit", "whisper"])
def test_imported_graphs_validate(graphs, family):
    report = validate(graphs[family])
    assert report.ok, report.errors[:3]
    assert report.checked_nodes == len(graphs[family].nodes)


def _first(graph, op):
    return next(n for n in graph.nodes if n.op == op)


def test_shape_error_is_reported_where_it_happens(graphs):
    graph = graphs["llama"].copy()
    mm = next(n for n in graph.nodes if n.op == "aten.mm.default" and n.module.endswith("k_proj"))
    graph.values[mm.outputs[0]].shape = [8, 48]  # k_proj really gives (8, 32)
    report = validate(graph)
    first = report.errors[0]
    assert first.rule == "shape" and first.node == mm.id and first.module == "model.layers.0.self_attn.k_proj"
    assert "expected [8, 48], got [8, 32]" in str(first)
    assert str(first).startswith("model.layers.0.self_attn.k_proj (")


def test_dtype_error(graphs):
    graph = graphs["gpt2"].copy()
    node = _first(graph, "aten.addmm.default")
    graph.values[node.outputs[0]].dtype = "float16"
    (issue,) = [e for e in validate(graph).errors if e.rule == "dtype"]
    assert "expected float16, got float32" in str(issue)


def test_cycle_is_named(graphs):
    graph = graphs["gpt2"].copy()
    a, b = graph.nodes[5], graph.nodes[6]
    a.args = [{"value": b.outputs[0]}] + a.args[1:] if a.args else a.args
    graph.invalidate()
    errors = validate(graph).errors
    assert errors[0].rule in ("cycle", "order")
    if errors[0].rule == "cycle":
        assert "the graph has a cycle" in errors[0].message


def test_dangling_value_and_unknown_op(graphs):
    graph = graphs["gpt2"].copy()
    graph.nodes[3].args[0] = {"value": "nowhere"}
    graph.nodes.append(Node("bad", "aten.not_an_op.default", [], {}, [], "transformer", "GPT2Model"))
    graph.invalidate()
    rules = {e.rule for e in validate(graph).errors}
    assert {"dangling", "op"} <= rules


def test_arity(graphs):
    graph = graphs["llama"].copy()
    mm = _first(graph, "aten.mm.default")
    mm.args = mm.args[:1]
    graph.invalidate()
    issue = next(e for e in validate(graph).errors if e.rule == "arity")
    assert "expected 2..2, got 1" in str(issue)


def test_check_raises_one_error_type(graphs):
    graph = graphs["gpt2"].copy()
    graph.values[graph.nodes[-1].outputs[0]].shape = [1]
    with pytest.raises(GraphValidationError) as info:
        check(graph)
    assert info.value.issues and "[shape]" in str(info.value)


def test_validation_does_not_change_the_graph(graphs):
    from gnn.ir.serialize import to_json

    before = to_json(graphs["t5"])
    validate(graphs["t5"])
    assert to_json(graphs["t5"]) == before
