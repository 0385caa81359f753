"""NAS-Bench-Graph's cells in MAD's IR, its tables, and the search space's moves."""

import random

import numpy as np
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


def test_isomorphic_cells_share_a_structure_and_different_cells_do_not():
    a = nbg.Arch((0, 0, 1, 2), ("gcn", "gat", "skip", "sage"))
    b = nbg.Arch((0, 0, 2, 1), ("gat", "gcn", "skip", "sage"))  # the branches listed the other way round
    f = nbg.structure
    assert a.key == b.key
    paths = len(f(a)) - len(nbg.LINKS) - nbg.NODES * len(nbg.OPS)  # the path part; the one-hot part follows
    assert (f(a)[:paths] == f(b)[:paths]).all()
    c = nbg.Arch((0, 0, 1, 2), ("gcn", "gat", "skip", "gin"))
    assert (f(a)[:paths] != f(c)[:paths]).any()
    # two branches (gcn -> skip, gat -> sage): two paths, the longest of two operations, none empty, both distinct
    assert list(f(a)[paths - 4:paths]) == [2, 2, 0, 2]


def test_transfer_reads_only_the_other_datasets(monkeypatch):
    read = []
    real = nbg.scores
    monkeypatch.setattr(nbg, "scores", lambda d, split="valid": read.append(d) or real(d, split))
    cols = nbg.transfer("photo")
    assert cols.shape == (26206, 14) and "photo" not in read and set(read) == set(nbg.DATASETS) - {"photo"}


def test_the_trees_head_ranks_as_a_resumed_search_would():
    from assistant.search.predictor import Online

    archs = nbg.space()
    keys = [a.key for a in archs]
    y = nbg.scores("cora")
    feats = nbg.structures()
    seen = [keys[i] for i in range(0, 2000, 50)]  # 40 results
    ys = [float(y[keys.index(k)]) for k in seen]
    grown, fresh = Online(keys, feats, head="trees"), Online(keys, feats, head="trees")
    for n in range(5, 40):
        grown.scores(seen[:n], ys[:n], keys[:10])
    assert (grown.scores(seen, ys, keys[:500]) == fresh.scores(seen, ys, keys[:500])).all()
    # and it learns: better than chance on the architectures it did not see
    from assistant.search.predictor import kendall_tau

    rng = np.random.default_rng(0)
    idx = rng.permutation(len(keys))
    train, test = idx[:150], idx[150:5150]
    full = Online(keys, feats, head="trees", refit=None)
    pred = full.scores([keys[i] for i in train], y[train].tolist(), [keys[i] for i in test])
    assert kendall_tau(pred, y[test]) > 0.3
