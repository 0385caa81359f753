"""Node role labels made from the rule labeler, per family."""

from collections import Counter

import pytest

from gnn.roles.labels import node_roles
from gnn.vocab import NODE_ROLES


@pytest.mark.parametrize("family, residuals", [("llama", 4), ("gpt2", 4), ("bert", 4), ("t5", 10)])
def test_node_roles(graphs, family, residuals):
    graph = graphs[family]
    labels = node_roles(graph)
    assert len(labels) == len(graph.nodes) and set(labels) <= set(NODE_ROLES)
    counts = Counter(labels)
    blocks = 6 if family == "t5" else 2  # t5: encoder and decoder self-attention plus decoder cross-attention
    assert counts["attn.softmax"] == counts["attn.scores"] == counts["attn.context"] == blocks
    assert counts["residual"] == residuals  # x + f(x) after every attention and feed-forward
    assert counts["embed.tokens"] >= 1 and counts["lm_head"] >= 1
    projections = ("attn.qkv",) if family == "gpt2" else ("attn.q", "attn.k", "attn.v")
    for role in projections + ("attn.o", "mlp.down"):
        assert counts[role] > 0, role
    # every matmul of a query projection is labelled as one
    by_id = dict(zip((n.id for n in graph.nodes), labels))
    for node in graph.nodes:
        if node.module.endswith(("q_proj", ".query", ".q")) and node.op in ("aten.mm.default", "aten.addmm.default"):
            assert by_id[node.id] == "attn.q"
