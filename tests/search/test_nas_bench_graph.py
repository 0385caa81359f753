"""NAS-Bench-Graph's cells in MAD's IR, its tables, and the search space's moves."""

import random

import pytest

from assistant.search import nas_bench_graph as nbg
from gnn.validate import validate


def test_the_space_is_the_benchmarks_26206_cells():
    archs = nbg.space()
    assert len(archs) == 26206 == len(nbg.table("cora"))
    assert len({a.key for a in archs}) == 26206


def test_isomorphic_cells_share_a_key_and_a_score():
    a = nbg.Arch((0, 0, 0, 0), ("gcn", "gat", "skip", "skip"))
    b = nbg.Arch((0, 0, 0, 0), ("gat", "gcn", "skip", "skip"))  # the same two branches, listed the other way
    assert a.key == b.key
    s = nbg.Space("citeseer")
    ra, rb = s.evaluate(a.params), s.evaluate(b.params)
    assert ra.pop("arch") != rb.pop("arch") and ra == rb


@pytest.mark.parametrize("op", [op for op in nbg.OPS if op != "skip"])
def test_every_operation_is_a_valid_graph_with_its_module(op):
    arch = nbg.Arch((0, 1, 2, 3), (op, "skip", op, "fc"))
    g = nbg.to_graph(arch)
    assert validate(g).errors == []
    assert g.modules["cell.node0.conv"] == nbg.MODULES[op].__name__
    assert not any(n.module.startswith("cell.node1") for n in g.nodes)  # skip: no computation
    assert g.outputs[0].name == "logits" and g.values[g.outputs[0].value].shape == [8, 4]


def test_unread_nodes_are_summed_into_the_output():
    # every node reads the input: four branches, three adds
    g = nbg.to_graph(nbg.Arch((0, 0, 0, 0), ("gcn", "gin", "sage", "fc")))
    assert sum(n.module == "cell" and n.op == "aten.add.Tensor" for n in g.nodes) == 3
    g = nbg.to_graph(nbg.Arch((0, 1, 2, 3), ("gcn", "gin", "sage", "fc")))  # a chain: only the last is read out
    assert sum(n.module == "cell" for n in g.nodes) == 0


def test_moves_stay_in_the_space():
    s, rng = nbg.Space("cora"), random.Random(0)
    p = s.random(rng)
    for _ in range(50):
        q = s.mutate(p, rng)
        assert s.evaluate(q) is not None and sum(q[k] != p[k] for k in p) == 1  # one change
        p = s.crossover(p, q, rng)
        assert s.evaluate(p) is not None


def test_all_skip_is_not_a_cell():
    assert nbg.Space("cora").evaluate(nbg.Arch((0, 1, 2, 3), ("skip",) * 4).params) is None


def test_unknown_dataset_says_which_exist():
    from gnn.errors import MadError

    with pytest.raises(MadError, match="unknown NAS-Bench-Graph dataset `mnist`; datasets are: cora, citeseer"):
        nbg.table("mnist")


def test_the_predictor_reads_each_cell_node_as_a_graph_token():
    import torch

    from assistant.search import predictor

    archs = [nbg.Arch((0, 1, 2, 3), ("gcn", "skip", "gat", "fc")), nbg.Arch((0, 0, 0, 0), ("sage",) * 4)]
    f = predictor.features(predictor.tokens([nbg.to_graph(a) for a in archs], nbg.PARTS), len(nbg.PARTS))
    hidden = (f.shape[1]) // 6  # pooled mean and max, then one token per cell node
    assert f.shape == (2, 6 * hidden)
    tokens = f[0, 2 * hidden:].view(4, hidden)
    assert torch.all(tokens[1] == 0) and tokens[0].abs().sum() > 0  # a skip node computes nothing
    assert not torch.allclose(f[0], f[1])
