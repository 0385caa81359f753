"""The self-supervised and supervised tasks, made from stored graph records.

Each task turns a clean graph (``torch_geometric.data.Data``) into an input with
targets, reproducibly from a ``torch.Generator``:

* :func:`mask_ops`: 15% of the nodes show ``<mask>`` instead of their op;
* :func:`hide_edges`: 10% of the data edges are removed; they and as many non-edges are to be told apart;
* :func:`corrupt`: half the graphs lose a node or a whole composite (a block, an embedding) with
  its edges: incomplete or not.  The structural features the tokenizer derives from the wiring
  (degrees, topological depth, random-walk encodings) are recomputed on what is left, as the
  tokenizer would on a graph that really lacks the part: a stale degree must not give the cut away;
* :func:`complete`: one node loses its op, features and edges; its op and its edges are to be recovered.

Role labels and the architecture kind come with every graph.
"""

from __future__ import annotations

import torch

from gnn.nn.tokens import MASK, wiring_features
from gnn.vocab import KINDS


def to_data(record: dict):
    from torch_geometric.data import Data

    return Data(op=record["op"], feats=record["feats"], pe=record["pe"], edge_index=record["edge_index"],
                role=record["role"], composite=record["composite"], kind=torch.tensor([KINDS.index(record["kind"])]),
                num_nodes=len(record["op"]))


def mask_ops(data, gen: torch.Generator, rate: float = 0.15):
    data = data.clone()
    mask = torch.rand(data.num_nodes, generator=gen) < rate
    if not mask.any():
        mask[torch.randint(data.num_nodes, (1,), generator=gen)] = True
    data.op_target = data.op.clone()
    data.op = data.op.masked_fill(mask, MASK)
    data.masked = mask
    return data


def _negatives(edge_index: torch.Tensor, n: int, count: int, gen: torch.Generator,
               sources: torch.Tensor | None = None) -> torch.Tensor:
    """``count`` node pairs that are not edges (from ``sources`` when given)."""
    existing = set((edge_index[0] * n + edge_index[1]).tolist())
    pairs = []
    for _ in range(4):
        src = sources if sources is not None else torch.randint(n, (count * 2,), generator=gen)
        dst = torch.randint(n, (len(src),), generator=gen)
        for s, d in zip(src.tolist(), dst.tolist()):
            if s != d and s * n + d not in existing:
                pairs.append((s, d))
        if len(pairs) >= count:
            break
    pairs = pairs[:count] or [(0, 0)]
    return torch.tensor(pairs, dtype=torch.long).t()


def hide_edges(data, gen: torch.Generator, rate: float = 0.1):
    data = data.clone()
    e = data.edge_index.shape[1]
    hidden = torch.rand(e, generator=gen) < rate
    if e and not hidden.any():
        hidden[torch.randint(e, (1,), generator=gen)] = True
    data.pos_edge_index = data.edge_index[:, hidden]
    data.neg_edge_index = _negatives(data.edge_index, data.num_nodes, int(hidden.sum()), gen)
    data.edge_index = data.edge_index[:, ~hidden]
    return data


def _keep(data, keep: torch.Tensor):
    """The sub-graph on the nodes in ``keep`` (bool), edges to dropped nodes gone."""
    from torch_geometric.utils import subgraph

    out = data.clone()
    out.edge_index, _ = subgraph(keep, data.edge_index, relabel_nodes=True, num_nodes=data.num_nodes)
    for key in ("op", "feats", "pe", "role", "composite"):
        out[key] = data[key][keep]
    out.num_nodes = int(keep.sum())
    return restructure(out)


def restructure(data):
    """Recompute the wiring-derived features (in/out degree, topological depth, random-walk PE) of
    ``data`` from its ``edge_index``, as :func:`gnn.nn.tokens.tokenize` computes them."""
    data.feats = data.feats.clone()
    data.pe = wiring_features(data.feats, data.edge_index, data.pe.shape[1] - 1)
    return data


def corrupt(data, gen: torch.Generator, p: float = 0.5):
    """With probability ``p``, cut out one node (half the time) or a whole composite; ``incomplete`` says which."""
    if torch.rand(1, generator=gen).item() >= p or data.num_nodes < 4:
        out = data.clone()
        out.incomplete = torch.tensor([0.0])
        return out
    keep = torch.ones(data.num_nodes, dtype=torch.bool)
    if torch.rand(1, generator=gen).item() < 0.5:
        keep[torch.randint(data.num_nodes, (1,), generator=gen)] = False
    else:
        comps = data.composite.unique()
        chosen = comps[torch.randint(len(comps), (1,), generator=gen)]
        keep &= data.composite != chosen
        if keep.sum() < 2:  # a one-composite graph: cut a run of nodes instead
            keep = torch.ones(data.num_nodes, dtype=torch.bool)
            start = int(torch.randint(data.num_nodes - 2, (1,), generator=gen))
            keep[start:start + max(2, data.num_nodes // 8)] = False
    out = _keep(data, keep)
    out.incomplete = torch.tensor([1.0])
    return out


def complete(data, gen: torch.Generator):
    """One node with at least one edge loses its op, features and edges: recover the op and the edges."""
    data = data.clone()
    ei = data.edge_index
    has = torch.zeros(data.num_nodes, dtype=torch.bool)
    has[ei.flatten()] = True
    candidates = has.nonzero().flatten()
    node = candidates[torch.randint(len(candidates), (1,), generator=gen)] if len(candidates) else torch.tensor([0])
    touching = (ei[0] == node) | (ei[1] == node)
    data.completion_op = data.op[node].clone()
    data.op = data.op.clone()
    data.op[node] = MASK
    data.feats = data.feats.clone()
    data.feats[node] = 0.0
    data.completion_index = node
    data.comp_pos_edge_index = ei[:, touching]
    # non-edges of the same node, in the same directions as its true edges
    n_out = int((ei[0, touching] == node).sum())
    out_neg = _negatives(ei, data.num_nodes, max(n_out, 1), gen, sources=node.repeat(max(n_out, 1) * 2))
    in_neg = _negatives(ei.flip(0), data.num_nodes, max(int(touching.sum()) - n_out, 1), gen,
                        sources=node.repeat(max(int(touching.sum()) - n_out, 1) * 2)).flip(0)
    data.comp_neg_edge_index = torch.cat([out_neg, in_neg], dim=1)
    data.edge_index = ei[:, ~touching]
    return data
