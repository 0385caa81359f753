"""The graph transformer (GraphGPS) and the baselines that share its inputs and heads.

``GraphModel`` encodes each node from its op id, its name-free features
(:mod:`gnn.nn.tokens`) and its positional encodings, runs a backbone, and puts one
head on top per task:

* ``op``: the op of a masked node (masked-op prediction, graph completion);
* ``role``: the node's structural role (:data:`gnn.vocab.NODE_ROLES`);
* ``link``: whether there is a data edge between two nodes (masked edges, completion wiring);
* ``incomplete``: whether a node or block was cut out of the graph (per graph);
* ``kind``: the architecture kind (decoder, encoder, encoder-decoder, vision, audio, multimodal).

Backbones (``GraphModelConfig.arch``): ``gps`` is torch_geometric's ``GPSConv``
(local GINE message passing, plus global linear "performer" attention so 50k-node graphs fit),
``gin``/``gcn`` are the message-passing baselines and ``mlp`` sees no structure at all.

GPS's message passing has two parts (:class:`PathConv`): a GINE sum over the data edges
(both directions, with the direction and argument slot as edge feature), and a GINE mean
over *path edges*: every pair of nodes joined by a data path of at most ``hops`` edges,
with the path's length, its direction and the argument slot it enters its end by.  Which projection is the query
and which the key shows only where their paths meet, several ops (reshapes, rotary
embeddings) after the projections, as argument 0 or 1 of the score product: with
plain one-edge messages a few layers never see that far, and a matmul's arguments
look alike (``matmul(q, k)`` is not ``matmul(k, q)``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import torch
from torch import nn

from gnn.nn.tokens import NUM_FEATS
from gnn.vocab import KINDS, NODE_ROLES


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class GraphModelConfig:
    vocab_size: int = _help("op ids the embedding knows (the op vocabulary's size; set when training starts)", 0)
    arch: str = _help("backbone: gps (GraphGPS), or the baselines gin, gcn, mlp (no structure)", "gps")
    hidden: int = _help("width of every node embedding", 96)
    layers: int = _help("backbone layers", 3)
    heads: int = _help("global attention heads per GPS layer", 4)
    dropout: float = _help("dropout in the GPS layers: thousands of distinct graphs need none, and it costs ~30%% "
                           "on padded attention batches", 0.0)
    attn_type: str = _help("GPSConv's global attention: performer (linear, so 50k-node graphs fit) or multihead",
                           "performer")
    walk_steps: int = _help("random-walk steps of the positional encoding", 8)
    slots: int = _help("argument positions told apart on edges; later ones share the last", 4)
    hops: int = _help("path edges up to this length (1: data edges only)", 6)
    num_feats: int = _help("name-free node features (gnn.nn.tokens)", NUM_FEATS)
    num_roles: int = _help("node roles the role head tells apart", len(NODE_ROLES))
    num_kinds: int = _help("architecture kinds the kind head tells apart", len(KINDS))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "GraphModelConfig":
        return cls(**json.loads(text))


class PathConv(nn.Module):
    """GPS's local part: a GINE sum over data edges (``near``) plus a GINE mean over all path edges."""

    def __init__(self, d: int):
        super().__init__()
        from torch_geometric.nn import GINEConv

        self.edges = GINEConv(_mlp(d, d, d), edge_dim=d)
        self.paths = GINEConv(_mlp(d, d, d), edge_dim=d, aggr="mean")

    def forward(self, x, edge_index, edge_attr, near):
        return self.edges(x, edge_index[:, near], edge_attr[near]) + self.paths(x, edge_index, edge_attr)


def _mlp(d_in: int, d_out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class GraphModel(nn.Module):
    def __init__(self, config: GraphModelConfig):
        super().__init__()
        from torch_geometric.nn import GCNConv, GINConv, GPSConv

        self.config = c = config
        d = c.hidden
        self.op_embed = nn.Embedding(c.vocab_size, d)
        self.feat_proj = nn.Sequential(nn.LayerNorm(c.num_feats), nn.Linear(c.num_feats, d))
        self.pe_proj = nn.Sequential(nn.LayerNorm(c.walk_steps + 1), nn.Linear(c.walk_steps + 1, d))
        # (direction, path length, argument slot of the path's last edge)
        self.edge_embed = nn.Embedding(2 * c.hops * c.slots, d)
        self.layers = nn.ModuleList()
        for _ in range(c.layers):
            if c.arch == "gps":
                local = PathConv(d)
                attn_kwargs = {"dropout": c.dropout} if c.attn_type == "multihead" else {"head_channels": d // c.heads}
                self.layers.append(GPSConv(d, local, heads=c.heads, dropout=c.dropout, attn_type=c.attn_type,
                                           attn_kwargs=attn_kwargs))
            elif c.arch == "gin":
                self.layers.append(GINConv(_mlp(d, d, d)))
            elif c.arch == "gcn":
                self.layers.append(GCNConv(d, d))
            elif c.arch == "mlp":
                self.layers.append(_mlp(d, d, d))
            else:
                raise ValueError(f"unknown arch `{c.arch}`; choose gps, gin, gcn or mlp")
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(c.layers))
        self.op_head = _mlp(d, c.vocab_size, d)
        self.role_head = _mlp(d, c.num_roles, d)
        self.link_head = _mlp(2 * d, 1, d)
        self.incomplete_head = _mlp(2 * d, 1, d)
        self.kind_head = _mlp(2 * d, c.num_kinds, d)

    def forward(self, data):
        """Node embeddings of a graph, or, given a dict of task batches, the training losses (so a
        distributed wrapper sees one forward call per step)."""
        if isinstance(data, dict):
            from gnn.nn.heads import losses

            return losses(self, data)
        return self.encode(data)

    def encode(self, data) -> torch.Tensor:
        """Node embeddings (N, hidden) for a (batched) graph with ``op``, ``feats``, ``pe``, ``edge_index``."""
        x = self.op_embed(data.op) + self.feat_proj(data.feats) + self.pe_proj(data.pe)
        c = self.config
        ei = data.edge_index
        if c.arch == "gps":
            ei, code = path_edges(ei, x.shape[0], c.hops, c.slots)
            kind = torch.cat([code, code + c.hops * c.slots])
        both = torch.cat([ei, ei.flip(0)], dim=1)
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if c.arch == "gps":
            attr = self.edge_embed(kind)
            near = torch.cat([code < c.slots, code < c.slots])  # data edges: path length 1
        for layer, norm in zip(self.layers, self.norms):
            if self.config.arch == "gps":
                h = layer(x, both, batch, edge_attr=attr, near=near)
            elif self.config.arch == "mlp":
                h = x + layer(x)
            else:
                h = x + torch.relu(layer(x, both))
            x = norm(h)
        return x

    # -- heads -------------------------------------------------------------------------------
    def pooled(self, x: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        from torch_geometric.nn import global_max_pool, global_mean_pool

        return torch.cat([global_mean_pool(x, batch, num_graphs), global_max_pool(x, batch, num_graphs)], dim=1)

    def link_logits(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Edge scores for ``pairs`` (2, P): producer, consumer."""
        return self.link_head(torch.cat([x[pairs[0]], x[pairs[1]]], dim=1)).squeeze(-1)

    def composite_tokens(self, x: torch.Tensor, composite: torch.Tensor) -> torch.Tensor:
        """One embedding per composite (mean of its nodes): the graph tokens handed to the language model."""
        from torch_geometric.nn import global_mean_pool

        return global_mean_pool(x, composite)


def edge_slots(edge_index: torch.Tensor) -> torch.Tensor:
    """Each edge's argument position at its consumer: the tokenizer lists a node's incoming edges in
    argument order, so the k-th edge into a node (in ``edge_index`` order) feeds its k-th produced input."""
    dst = edge_index[1]
    if dst.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=dst.device)
    order = torch.sort(dst, stable=True).indices
    sorted_dst = dst[order]
    pos = torch.arange(len(dst), device=dst.device)
    first = torch.ones_like(sorted_dst, dtype=torch.bool)
    first[1:] = sorted_dst[1:] != sorted_dst[:-1]
    start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), 0).values
    out = torch.empty_like(dst)
    out[order] = pos - start
    return out


def _binary(index: torch.Tensor, n: int) -> torch.Tensor:
    return torch.sparse_coo_tensor(index, torch.ones(index.shape[1], device=index.device), (n, n),
                                   check_invariants=False)


def path_edges(edge_index: torch.Tensor, n: int, hops: int, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair ``(u, v)`` joined by a directed data path of at most ``hops`` edges, with a code
    ``(length - 1) * slots + slot`` for the shortest such path (the smallest slot among those) where
    ``slot`` is the argument position of its last edge.  Data edges come first (length 1)."""
    import warnings

    slot = edge_slots(edge_index).clamp(max=slots - 1)
    if hops <= 1 or edge_index.shape[1] == 0:
        return edge_index, slot
    per_slot = [_binary(edge_index[:, slot == s], n) for s in range(slots)]
    pairs, codes = [edge_index], [slot]
    reach = _binary(edge_index, n).coalesce()
    with warnings.catch_warnings():  # torch notes that its sparse kernels are in beta
        warnings.simplefilter("ignore", UserWarning)
        for d in range(2, hops + 1):
            found = []
            for s, a in enumerate(per_slot):
                idx = torch.sparse.mm(reach, a).coalesce().indices()
                found.append(idx)
                codes.append(torch.full((idx.shape[1],), (d - 1) * slots + s, device=idx.device))
            pairs += found
            reach = _binary(torch.cat(found, 1), n).coalesce()
    pairs, codes = torch.cat(pairs, 1), torch.cat(codes)
    key, order = ((pairs[0] * n + pairs[1]) * (hops * slots) + codes).sort()
    pair = key // (hops * slots)
    first = torch.ones_like(pair, dtype=torch.bool)
    first[1:] = pair[1:] != pair[:-1]
    keep = order[first]
    return pairs[:, keep], codes[keep]
