"""The graph tokenizer: a graph becomes tensors a graph transformer reads, and tokens per composite.

For every primitive node (names are never read, so a graph whose names were
scrambled tokenizes the same as the original):

* ``op``: its op's id in :class:`OpVocab` (``0`` is ``<unk>`` for ops the vocabulary
  does not know, ``1`` is ``<mask>`` for masked-op training);
* ``feats``: output rank, log sizes (elements, last dim), dtype, in/out degree,
  parameter inputs and their size, normalised topological depth;
* ``edge_index``: data flow, producer -> consumer;
* ``pe``: random-walk return probabilities on the *undirected* graph
  (``k = 1..walk_steps``, the RWSE of GraphGPS) plus topological depth, positional
  encodings that work on DAGs;
* ``composite``: the composite each node is pooled into: one token per repeated
  block (an 8B Llama's ~2,400 nodes become 35 tokens: embedding, 32 layers, final
  norm, head), one per other top-level module.  A graph without module paths is
  cut into runs of ``chunk`` nodes in topological order.

``hier_depth`` (how deep the node's module path is) is kept apart from ``feats``:
it exists only where names do.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import torch

from gnn.ir import ops
from gnn.ir.graph import Graph

DTYPES = ["float32", "float16", "bfloat16", "float64", "int64", "int32", "bool", "uint8", "int8", "complex64"]
NUM_FEATS = 12
UNK, MASK = 0, 1


@functools.cache
def _default_ops() -> tuple[str, ...]:
    import onnx.defs

    onnx_ops = {f"{ops.PREFIX_ONNX}{s.name}" for s in onnx.defs.get_all_schemas() if s.domain == ""}
    return tuple(sorted(ops.vocabulary()) + sorted(onnx_ops))


@dataclass
class OpVocab:
    """Op name <-> id; ids 0 and 1 are ``<unk>`` and ``<mask>``."""

    ops: list[str] = field(default_factory=lambda: list(_default_ops()))

    def __post_init__(self):
        self.index = {op: i + 2 for i, op in enumerate(self.ops)}

    def __len__(self) -> int:
        return len(self.ops) + 2

    def id(self, op: str) -> int:
        return self.index.get(op, UNK)

    def name(self, i: int) -> str:
        return "<unk>" if i == UNK else "<mask>" if i == MASK else self.ops[i - 2]


@dataclass
class Tokens:
    """A tokenized graph (all tensors on the CPU); ``node_ids[i]`` is the IR node of row ``i``."""

    op: torch.Tensor  # (N,) long
    feats: torch.Tensor  # (N, NUM_FEATS) float
    pe: torch.Tensor  # (N, walk_steps + 1) float
    edge_index: torch.Tensor  # (2, E) long
    composite: torch.Tensor  # (N,) long
    hier_depth: torch.Tensor  # (N,) long
    node_ids: list[str]
    composites: list[str]  # a name per composite token (module path, or "chunk.<i>")

    @property
    def num_nodes(self) -> int:
        return len(self.node_ids)

    def to_data(self, **extra):
        """As a ``torch_geometric.data.Data`` (extra per-graph or per-node tensors attached)."""
        from torch_geometric.data import Data

        return Data(op=self.op, feats=self.feats, pe=self.pe, edge_index=self.edge_index,
                    composite=self.composite, hier_depth=self.hier_depth, num_nodes=self.num_nodes,
                    num_composites=len(self.composites), **extra)


def _log2(x: float) -> float:
    return math.log2(1.0 + max(float(x), 0.0))


def tokenize(graph: Graph, vocab: OpVocab | None = None, walk_steps: int = 8, chunk: int = 64) -> Tokens:
    vocab = vocab or OpVocab()
    hints = graph.dim_hints
    n = len(graph.nodes)
    row = {node.id: i for i, node in enumerate(graph.nodes)}
    producer = {o: i for i, node in enumerate(graph.nodes) for o in node.outputs if o}
    src, dst = [], []
    feats = torch.zeros(n, NUM_FEATS)
    for i, node in enumerate(graph.nodes):
        reads = list(dict.fromkeys(node.inputs))
        params = [graph.values[r] for r in reads if r not in producer and graph.values[r].kind in ("parameter", "buffer")]
        preds = [producer[r] for r in reads if r in producer]
        for p in preds:
            src.append(p)
            dst.append(i)
        out = graph.values[node.outputs[0]] if node.outputs and node.outputs[0] else None
        shape = out.concrete_shape(hints) if out else []
        numel = math.prod(shape) if shape else 1
        feats[i, 0] = len(shape)
        feats[i, 1] = _log2(numel)
        feats[i, 2] = _log2(shape[-1]) if shape else 0.0
        feats[i, 3] = DTYPES.index(out.dtype) + 1 if out and out.dtype in DTYPES else 0
        feats[i, 6] = len(params)
        feats[i, 7] = _log2(sum(p.numel(hints) for p in params))
        feats[i, 8] = _log2(max((len(p.shape) for p in params), default=0))
        feats[i, 9] = len([o for o in node.outputs if o])
    edge_index = torch.tensor([src, dst], dtype=torch.long) if src else torch.zeros(2, 0, dtype=torch.long)
    pe = wiring_features(feats, edge_index, walk_steps)
    composite, names = composite_index(graph, chunk)
    return Tokens(
        op=torch.tensor([vocab.id(node.op) for node in graph.nodes], dtype=torch.long),
        feats=feats, pe=pe, edge_index=edge_index, composite=composite,
        hier_depth=torch.tensor([len(node.module.split(".")) if node.module else 0 for node in graph.nodes]),
        node_ids=list(row), composites=names,
    )


def wiring_features(feats: torch.Tensor, edge_index: torch.Tensor, walk_steps: int) -> torch.Tensor:
    """Fill the columns of ``feats`` that come from the wiring alone (in/out degree, topological depth) from
    ``edge_index`` (edges point forward in node order), and return the positional encodings."""
    n = feats.shape[0]
    feats[:, 4] = torch.bincount(edge_index[1], minlength=n).float()
    feats[:, 5] = torch.bincount(edge_index[0], minlength=n).float()
    incoming: list[list[int]] = [[] for _ in range(n)]
    for s, d in edge_index.t().tolist():
        incoming[d].append(s)
    depth = [0] * n
    for i in range(n):
        depth[i] = 1 + max((depth[p] for p in incoming[i]), default=-1)
    feats[:, 10] = torch.tensor([_log2(d) for d in depth])
    feats[:, 11] = torch.tensor(depth, dtype=torch.float) / (max(depth, default=0) or 1)
    return torch.cat([random_walk_pe(edge_index, n, walk_steps), feats[:, 11:12]], dim=1)


def random_walk_pe(edge_index: torch.Tensor, n: int, steps: int) -> torch.Tensor:
    """``diag(P^k)``, k = 1..steps, for the random walk ``P`` on the undirected graph.

    Computed from sparse powers up to ``ceil(steps / 2)`` only:
    ``diag(P^(a+b))_i = sum_j P^a_ij P^b_ji``, so no dense ``n x n`` matrix is formed.
    """
    if n == 0:
        return torch.zeros(0, steps)
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    ones = torch.ones(both.shape[1])
    adj = torch.sparse_coo_tensor(both, ones, (n, n), check_invariants=False).coalesce()
    idx, val = adj.indices(), adj.values().clamp(max=1.0)
    deg = torch.zeros(n).index_add_(0, idx[0], val)
    P = torch.sparse_coo_tensor(idx, val / deg[idx[0]].clamp(min=1.0), (n, n), check_invariants=False).coalesce()
    powers = [None, P]
    with warnings.catch_warnings():  # torch notes that its sparse kernels are in beta, once per process
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(2, (steps + 1) // 2 + 1):
            powers.append(torch.sparse.mm(powers[-1], P).coalesce())
    out = torch.zeros(n, steps)
    for k in range(1, steps + 1):
        a, b = k // 2, k - k // 2
        if a == 0:
            continue  # diag(P) is 0: no self loops
        prod = (powers[a] * powers[b].t().coalesce()).coalesce()
        out[:, k - 1] = torch.zeros(n).index_add_(0, prod.indices()[0], prod.values())
    return out


def composite_index(graph: Graph, chunk: int = 64) -> tuple[torch.Tensor, list[str]]:
    """The composite token of each node: its repeated block, else its top-level module."""
    if not any(node.module for node in graph.nodes):
        ids = torch.arange(len(graph.nodes)) // chunk
        return ids, [f"chunk.{i}" for i in range(int(ids.max()) + 1 if len(ids) else 0)]
    h = graph.hierarchy
    blocks = [p for rep in h.top_repeats() for p in rep.paths]
    names: dict[str, int] = {}
    out = []
    for node in graph.nodes:
        path = node.module
        key = next((b for b in blocks if path == b or path.startswith(b + ".")), None)
        if key is None:
            parts = path.split(".") if path else ["<root>"]
            # the first level that tells modules apart (model.embed_tokens, not model)
            key = parts[0]
            for i in range(1, len(parts)):
                if ".".join(parts[:i]) in h and len(h[".".join(parts[:i])].children) > 1:
                    key = ".".join(parts[:i + 1])
                    break
        out.append(names.setdefault(key, len(names)))
    return torch.tensor(out, dtype=torch.long), list(names)
