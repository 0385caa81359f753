"""The graph model's edge coding: argument slots and path edges (what tells matmul(q, k) from matmul(k, q))."""

import torch

from gnn.nn.model import GraphModel, GraphModelConfig, edge_slots, path_edges


def test_slots_follow_argument_order_per_consumer():
    # node 2 reads (0, 1), node 3 reads (2, 0), node 4 reads 3: edges listed per consumer in argument order
    ei = torch.tensor([[0, 1, 2, 0, 3], [2, 2, 3, 3, 4]])
    assert edge_slots(ei).tolist() == [0, 1, 0, 1, 0]
    # only the order among a consumer's own edges counts: interleaving other consumers' edges changes nothing
    interleaved = ei[:, [0, 2, 1, 3, 4]]  # (0->2), (2->3), (1->2), (0->3), (3->4)
    assert edge_slots(interleaved).tolist() == [0, 0, 1, 1, 0]


def test_path_edges_carry_length_and_entry_slot():
    # q -> a -> s(arg 0), k -> s(arg 1): q reaches s in 2 hops entering slot 0, k in 1 hop at slot 1
    q, a, k, s = 0, 1, 2, 3
    ei = torch.tensor([[q, a, k], [a, s, s]])
    pairs, codes = path_edges(ei, 4, hops=3, slots=4)
    found = {(int(u), int(v)): int(c) for (u, v), c in zip(pairs.t(), codes)}
    assert found == {(q, a): 0, (a, s): 0, (k, s): 1, (q, s): 4 + 0}  # code = (length - 1) * slots + slot
    same, plain = path_edges(ei, 4, hops=1, slots=4)
    assert torch.equal(same, ei) and plain.tolist() == [0, 0, 1]


def test_swapping_a_products_arguments_changes_the_embeddings():
    torch.manual_seed(0)
    model = GraphModel(GraphModelConfig(vocab_size=10, hidden=16, layers=2, heads=2)).eval()
    from torch_geometric.data import Data

    def graph(order):
        ei = torch.tensor([[0, 1, order[0], order[1]], [2, 3, 4, 4]])  # 0->2, 1->3, then 4 = f(2, 3) or f(3, 2)
        return Data(op=torch.tensor([2, 2, 3, 4, 5]), feats=torch.zeros(5, 12), pe=torch.zeros(5, 9), edge_index=ei)

    with torch.no_grad():
        a, b = model.encode(graph([2, 3])), model.encode(graph([3, 2]))
    assert not torch.allclose(a[0], b[0], atol=1e-4)  # the projection feeding argument 0 sees which slot it fills
