"""The graph tokenizer reads no names: a scrambled ONNX file tokenizes exactly like the named one."""

import onnx
import pytest
import torch

from gnn.training.scramble import scramble
from gnn.exporters.onnx import save_onnx
from gnn.importers.onnx import import_onnx
from gnn.nn.tokens import MASK, NUM_FEATS, UNK, OpVocab, random_walk_pe, tokenize


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory, graphs):
    d = tmp_path_factory.mktemp("onnx")
    named = save_onnx(graphs["llama"], d / "named.onnx")
    onnx.save(scramble(onnx.load(named)), d / "blank.onnx")
    return import_onnx(named), import_onnx(d / "blank.onnx")


def test_tokens_of_a_llama(graphs):
    graph = graphs["llama"]
    t = tokenize(graph)
    n = len(graph.nodes)
    assert t.op.shape == (n,) and t.feats.shape == (n, NUM_FEATS) and t.pe.shape == (n, 9)
    assert (t.op >= 2).all()  # every op of an imported graph is in the vocabulary
    assert t.edge_index.shape[0] == 2 and t.edge_index.max() < n
    assert (t.edge_index[0] < t.edge_index[1]).all()  # nodes are in topological order
    # one token per block, plus the embedding, the final norm, the head, ...
    assert {"model.layers.0", "model.layers.1", "model.embed_tokens", "model.norm", "lm_head"} <= set(t.composites)
    assert len(t.composites) < 12 and t.composite.max() == len(t.composites) - 1


def test_unknown_ops_get_the_unknown_id(graphs):
    vocab = OpVocab(["aten.mm.default"])
    t = tokenize(graphs["llama"], vocab)
    assert set(t.op.unique().tolist()) == {UNK, vocab.id("aten.mm.default")}
    assert vocab.name(UNK) == "<unk>" and vocab.name(MASK) == "<mask>"


def test_scrambled_names_change_nothing(onnx_pair):
    named, blank = onnx_pair
    assert not any(n.module for n in blank.nodes) and any(n.module for n in named.nodes)
    a, b = tokenize(named), tokenize(blank)
    for key in ("op", "feats", "pe", "edge_index"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert b.composites[0] == "chunk.0"  # no module paths: runs of nodes in topological order


def test_random_walk_encoding_matches_dense_powers():
    edges = torch.tensor([[0, 1, 1, 2, 3], [1, 2, 3, 3, 4]])
    pe = random_walk_pe(edges, 5, 6)
    adj = torch.zeros(5, 5)
    adj[edges[0], edges[1]] = 1
    adj = ((adj + adj.t()) > 0).float()
    walk = adj / adj.sum(1, keepdim=True)
    dense = torch.stack([torch.linalg.matrix_power(walk, k).diagonal() for k in range(1, 7)], dim=1)
    torch.testing.assert_close(pe, dense)
