"""NAS-Bench-Graph (Qin et al., NeurIPS 2022) as a search space whose architectures are graphs in MAD's IR.

The benchmark's space: a cell of 4 computing nodes; node ``i`` reads the model's input (link 0) or node ``j``'s
output (link ``j``), the 9 link patterns of :data:`LINKS`, and applies one of 9 operations (:data:`OPS`); the nodes
nobody reads are summed into the cell's output.  Isomorphic cells are one architecture: 26,206 per dataset, each
trained by the benchmark's authors with its dataset's tuned hyper-parameters, their validation and test accuracy
read from the tables the PyPI package ``nas-bench-graph`` ships in its wheel (:func:`table`; nothing is downloaded).

:func:`to_graph` writes an architecture in MAD's IR: every operation is a real PyTorch module on a dense
normalised adjacency (GCN, GAT with 2 heads, GIN, ChebNet K=2, GraphSAGE, ARMA, k-GNN's GraphConv, a linear layer,
skip), traced once by :func:`gnn.importers.torch_module.import_module` and spliced in per node under the module
path ``cell.node<i>.conv`` (its class names the operation), between the pre-processing linear layer and the
classifier, so the graph transformer reads a NAS-Bench-Graph cell the way it reads any model.

What the agent's predictor reads (:func:`predictor_for`): the cell's structure (:func:`structure`: its paths of
operations, the same for isomorphic cells, and the cell one-hot) and the other datasets' results
(:func:`transfer`); the graph transformer's frozen features (:func:`features`) rank below them (``bench.search``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gnn.ir.graph import Graph, Node, Output, Value, map_refs

LINKS: list[tuple[int, ...]] = [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3), (0, 1, 1, 1),
                                (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 2, 3)]
OPS = ["gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip"]
DATASETS = ["cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv"]
NODES = 4


@dataclass(frozen=True)
class Arch:
    """One cell: ``link[i]`` is what node ``i`` reads (0 the input, j node j's output), ``ops[i]`` what it applies."""

    link: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def key(self) -> int:
        """The benchmark's hash of the cell's canonical form: isomorphic cells share it, and it keys the tables."""
        return _key(self.link, self.ops)

    @property
    def params(self) -> dict:
        """The cell as Optuna parameters (one categorical per choice)."""
        return {"link": LINKS.index(self.link), **{f"op{i}": op for i, op in enumerate(self.ops)}}

    @classmethod
    def from_params(cls, params: dict) -> "Arch":
        return cls(LINKS[params["link"]], tuple(params[f"op{i}"] for i in range(NODES)))

    def __str__(self) -> str:
        return " ".join(f"{op}<{src}" for op, src in zip(self.ops, self.link))


def _computes(ops) -> bool:
    """Whether a cell computes anything: a cell of skips only is not in the space."""
    return not all(op == "skip" for op in ops)


def distributions() -> dict:
    """Optuna's distributions of :attr:`Arch.params`."""
    from optuna.distributions import CategoricalDistribution

    return {"link": CategoricalDistribution(list(range(len(LINKS)))),
            **{f"op{i}": CategoricalDistribution(OPS) for i in range(NODES)}}


@functools.lru_cache(maxsize=None)
def _key(link: tuple[int, ...], ops: tuple[str, ...]) -> int:
    from nas_bench_graph.architecture import Arch as BenchArch

    return BenchArch(list(link), list(ops)).valid_hash()


@functools.cache
def table(dataset: str) -> dict[int, dict]:
    """The benchmark's results for ``dataset``: hash -> ``valid`` and ``test`` accuracy, ``latency`` (s),
    ``params`` (millions)."""
    if dataset not in DATASETS:
        from gnn.errors import MadError

        raise MadError(f"unknown NAS-Bench-Graph dataset `{dataset}`; datasets are: {', '.join(DATASETS)}")
    from nas_bench_graph import light_read

    return {k: {"valid": float(r["valid_perf"]), "test": float(r["perf"]), "latency": float(r["latency"]),
                "params": float(r["para"])} for k, r in light_read(dataset).items()}


@functools.cache
def space() -> tuple[Arch, ...]:
    """Every architecture of the space once: one cell per canonical hash (26,206), in a fixed order."""
    seen: dict[int, Arch] = {}
    for link in LINKS:
        for ops in itertools.product(OPS, repeat=NODES):
            if not _computes(ops):
                continue
            arch = Arch(link, ops)
            seen.setdefault(arch.key, arch)
    known = table("cora")
    return tuple(seen[k] for k in sorted(seen) if k in known)


def neighbours(arch: Arch) -> list[Arch]:
    """The cells one change away: one node's operation, or the link pattern (mutation's moves)."""
    out = [Arch(arch.link, arch.ops[:i] + (op,) + arch.ops[i + 1:])
           for i in range(NODES) for op in OPS if op != arch.ops[i]]
    out += [Arch(link, arch.ops) for link in LINKS if link != arch.link]
    return [a for a in out if _computes(a.ops)]


class Space:
    """The space for the search loop (:class:`assistant.search.samplers.Space`) on one dataset: a candidate is
    :attr:`Arch.params`; evaluating it reads the benchmark's table (validation accuracy is the score, test
    accuracy and latency are recorded)."""

    def __init__(self, dataset: str):
        self.dataset, self.results = dataset, table(dataset)

    def distributions(self) -> dict:
        return distributions()

    def key(self, params: dict) -> int:
        return Arch.from_params(params).key

    def random(self, rng) -> dict:
        return rng.choice(space()).params

    def mutate(self, params: dict, rng) -> dict:
        """One of :func:`neighbours`, uniformly (drawn without listing them)."""
        while True:
            slot = rng.randrange(NODES + 1)  # the link pattern, or one node's operation: 8 alternatives each
            out = dict(params)
            if slot == NODES:
                out["link"] = rng.choice([i for i in range(len(LINKS)) if i != params["link"]])
            else:
                out[f"op{slot}"] = rng.choice([op for op in OPS if op != params[f"op{slot}"]])
            if _computes(out[f"op{i}"] for i in range(NODES)):
                return out

    def neighbours(self, params: dict) -> list[dict]:
        return [a.params for a in neighbours(Arch.from_params(params))]

    def crossover(self, a: dict, b: dict, rng) -> dict:
        child = {k: (a if rng.random() < 0.5 else b)[k] for k in a}
        return child if _computes(child[f"op{i}"] for i in range(NODES)) else dict(a)

    def graph(self, params: dict) -> Graph:
        return to_graph(Arch.from_params(params))

    def evaluate(self, params: dict, seed: int = 0) -> dict | None:
        """``score`` (validation accuracy), ``test``, ``cost`` (the benchmark's latency, s); None for a cell that
        is not in the space (every node a skip)."""
        arch = Arch.from_params(params)
        if not _computes(arch.ops):
            return None
        r = self.results[arch.key]
        return {"score": r["valid"], "test": r["test"], "cost": r["latency"], "params_m": r["params"],
                "key": arch.key, "arch": str(arch)}


# -- the operations, as modules on a dense normalised adjacency ------------------------------------------------------


class GCN(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x, adj):
        return adj @ self.lin(x)


class GAT(nn.Module):
    """Two heads of d/2, concatenated; attention over the adjacency's non-zeros."""

    def __init__(self, d: int, heads: int = 2):
        super().__init__()
        self.heads, self.lin = heads, nn.Linear(d, d, bias=False)
        self.att_src = nn.Parameter(torch.randn(heads, d // heads))
        self.att_dst = nn.Parameter(torch.randn(heads, d // heads))

    def forward(self, x, adj):
        n = x.shape[0]
        h = self.lin(x).view(n, self.heads, -1)  # (n, heads, d/heads)
        e = (h * self.att_dst).sum(-1).t().unsqueeze(-1) + (h * self.att_src).sum(-1).t().unsqueeze(1)
        e = torch.nn.functional.leaky_relu(e, 0.2).masked_fill(adj.unsqueeze(0) == 0, float("-inf"))
        return (e.softmax(-1) @ h.transpose(0, 1)).transpose(0, 1).reshape(n, -1)


class GIN(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def forward(self, x, adj):
        return self.mlp(x + (adj > 0).to(x.dtype) @ x)


class Cheb(nn.Module):
    """Chebyshev filter of order 2: T0 = x, T1 = L~ x (the scaled Laplacian, here -adj)."""

    def __init__(self, d: int):
        super().__init__()
        self.lins = nn.ModuleList([nn.Linear(d, d, bias=False), nn.Linear(d, d)])

    def forward(self, x, adj):
        return self.lins[0](x) + self.lins[1](-(adj @ x))


class SAGE(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.lin_l, self.lin_r = nn.Linear(d, d), nn.Linear(d, d, bias=False)

    def forward(self, x, adj):
        mean = (adj > 0).to(x.dtype)
        return self.lin_l(mean / mean.sum(-1, keepdim=True).clamp(min=1) @ x) + self.lin_r(x)


class ARMA(nn.Module):
    """One ARMA stack of one layer: relu(L^ x W + x V)."""

    def __init__(self, d: int):
        super().__init__()
        self.init_weight, self.root_weight = nn.Linear(d, d, bias=False), nn.Linear(d, d)

    def forward(self, x, adj):
        return torch.relu(adj @ self.init_weight(x) + self.root_weight(x))


class GraphConv(nn.Module):
    """k-GNN's GraphConv: W1 x + W2 (sum over neighbours)."""

    def __init__(self, d: int):
        super().__init__()
        self.lin_rel, self.lin_root = nn.Linear(d, d), nn.Linear(d, d, bias=False)

    def forward(self, x, adj):
        return self.lin_rel((adj > 0).to(x.dtype) @ x) + self.lin_root(x)


class FC(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x, adj):
        return self.lin(x)


MODULES = {"gat": GAT, "gcn": GCN, "gin": GIN, "cheb": Cheb, "sage": SAGE, "arma": ARMA, "graph": GraphConv, "fc": FC}


class _Step(nn.Module):
    """One computing node: the operation, then ReLU."""

    def __init__(self, op: str, d: int):
        super().__init__()
        self.conv = MODULES[op](d)

    def forward(self, x, adj):
        return torch.relu(self.conv(x, adj))


class _Ends(nn.Module):
    """The cell's surroundings: pre-processing linear layer, classifier."""

    def __init__(self, d_in: int, d: int, classes: int):
        super().__init__()
        self.pre, self.classifier = nn.Linear(d_in, d), nn.Linear(d, classes)


# the example graph the operations are traced on: its size and widths only set the IR's shapes
EXAMPLE = {"nodes": 8, "features": 32, "hidden": 16, "classes": 4}


@functools.cache
def _traced(op: str) -> Graph:
    from gnn.importers.torch_module import import_module

    n, d = EXAMPLE["nodes"], EXAMPLE["hidden"]
    return import_module(_Step(op, d), (torch.zeros(n, d), torch.eye(n)), name=op)


@functools.cache
def _ends() -> Graph:
    from gnn.importers.torch_module import import_module

    class Ends(_Ends):
        def forward(self, x, adj, h):
            return self.pre(x), self.classifier(h)

    e = EXAMPLE
    return import_module(Ends(e["features"], e["hidden"], e["classes"]),
                         (torch.zeros(e["nodes"], e["features"]), torch.eye(e["nodes"]),
                          torch.zeros(e["nodes"], e["hidden"])), name="ends")


def to_graph(arch: Arch) -> Graph:
    """``arch`` in MAD's IR: input features and adjacency -> pre -> the cell's nodes -> sum of unread nodes ->
    classifier -> logits."""
    ends = _ends()
    g = Graph(name=f"NASBenchGraph[{arch}]", modules={"": "NASBenchGraphCell", "pre": "Linear", "cell": "Cell"},
              meta={"source": "nas-bench-graph", "arch": {"link": list(arch.link), "ops": list(arch.ops)}})
    x, adj, h_in = ends.inputs[-3:]
    for name in (x, adj):
        g.values[name] = _copy_value(ends.values[name], name)
        g.inputs.append(name)
    pre, logits = (o.value for o in ends.outputs)
    _splice(g, ends, "", {x: x, adj: adj}, only=lambda n: n.module.startswith("pre"))
    outputs = [pre]  # node i's output is outputs[i + 1]
    for i, (src, op) in enumerate(zip(arch.link, arch.ops)):
        if op == "skip":
            outputs.append(outputs[src])
            continue
        step = _traced(op)
        sx, sadj = step.inputs[-2:]
        prefix = f"cell.node{i}."
        g.modules[f"cell.node{i}"] = "Step"
        for path, cls in step.modules.items():
            if path:
                g.modules[prefix + path] = cls
        mapping = _splice(g, step, prefix, {sx: outputs[src], sadj: adj})
        outputs.append(mapping[step.outputs[0].value])
    leaves = [outputs[j] for j in range(1, NODES + 1) if j not in arch.link]  # the nodes nobody reads
    total = leaves[0]
    for k, leaf in enumerate(leaves[1:]):
        name = f"cell_sum_{k}"
        g.values[name] = _copy_value(g.values[total], name)
        g.nodes.append(Node(name, "aten.add.Tensor", [{"value": total}, {"value": leaf}], {}, [name], "cell", "Cell"))
        total = name
    g.modules["classifier"] = "Linear"
    _splice(g, ends, "", {x: x, adj: adj, h_in: total, pre: pre}, only=lambda n: n.module.startswith("classifier"))
    g.outputs = [Output("logits", logits)]
    return g


def _copy_value(v: Value, name: str) -> Value:
    return Value(name, list(v.shape), v.dtype, v.kind, name if v.target else None, dict(v.meta))


def _splice(g: Graph, part: Graph, prefix: str, bound: dict[str, str], only=lambda node: True) -> dict[str, str]:
    """Copy ``part``'s nodes (those ``only`` keeps) into ``g`` under ``prefix``, their reads of ``bound`` values
    rewired; returns every copied value's new name."""
    mapping = dict(bound)
    for node in part.nodes:
        if not only(node):
            continue
        for r in node.inputs:
            if r not in mapping:
                v = part.values[r]
                mapping[r] = prefix + r
                g.values[prefix + r] = _copy_value(v, prefix + r)
                g.inputs.append(prefix + r)
        for o in node.outputs:
            if o:
                mapping[o] = prefix + o
                g.values[prefix + o] = _copy_value(part.values[o], prefix + o)
        g.nodes.append(Node(prefix + node.id, node.op, map_refs(node.args, mapping.get),
                            map_refs(node.kwargs, mapping.get), [mapping.get(o, o) for o in node.outputs],
                            (prefix + node.module).rstrip(".") if node.module else prefix.rstrip("."),
                            node.module_class, dict(node.meta)))
    for path, cls in part.modules.items():
        if path and any(n.module == path or n.module.startswith(path + ".") for n in part.nodes if only(n)):
            g.modules.setdefault(prefix + path, cls)
    return mapping


# -- what the predictor reads ---------------------------------------------------------------------------------------

PARTS = [f"cell.node{i}" for i in range(NODES)]


def features(progress: bool = False) -> np.ndarray:
    """The graph transformer's features of every architecture of :func:`space`, in its order (pooled graph, and
    the graph token of each cell node); computed once (a few minutes on a CPU), then read from MAD's cache."""
    from gnn.fileio import cache_dir
    from gnn.nn.checkpoint import checkpoint_path

    from assistant.search import predictor

    weights = checkpoint_path() / "model.safetensors"
    stamp = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    path = cache_dir("search") / f"nas-bench-graph-{stamp}.npy"
    if path.exists():
        return np.load(path)
    archs = space()
    chunks = []
    for i in range(0, len(archs), 2048):
        data = predictor.tokens([to_graph(a) for a in archs[i:i + 2048]], PARTS)
        chunks.append(predictor.features(data, len(PARTS), progress=f"features {i}/{len(archs)}" if progress
                                         else None).numpy())
    out = np.concatenate(chunks).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def scores(dataset: str, split: str = "valid") -> np.ndarray:
    """Every architecture's ``split`` accuracy on ``dataset``, in :func:`space`'s order."""
    results = table(dataset)
    return np.array([results[a.key][split] for a in space()])


@functools.lru_cache(maxsize=None)
def structure(arch: Arch) -> np.ndarray:
    """What the predictor reads of a cell, the same for isomorphic cells where the order of the branches is all
    that differs: the path of operations from the input to each unread node (skips pass their input on), as the
    count of each operation at each depth, of each last operation, of each pair of consecutive operations (the
    first after the input), the number of paths, the longest, those with no operation (the input added to the
    output) and the distinct ones; then the cell itself, one-hot (its link pattern, each node's operation)."""
    ops = [op for op in OPS if op != "skip"]
    k = len(ops)
    paths: list[list[str]] = []
    for src, op in zip(arch.link, arch.ops):
        paths.append((paths[src - 1] if src else []) + ([op] if op != "skip" else []))
    leaves = [paths[j - 1] for j in range(1, NODES + 1) if j not in arch.link]
    f = np.zeros(NODES * k + k + (k + 1) * k + 4)
    for path in leaves:
        for depth, op in enumerate(path):
            f[depth * k + ops.index(op)] += 1
        if path:
            f[NODES * k + ops.index(path[-1])] += 1
        for before, op in zip([None] + path, path):
            f[NODES * k + k + (0 if before is None else 1 + ops.index(before)) * k + ops.index(op)] += 1
    f[-4:] = [len(leaves), max(len(p) for p in leaves), sum(not p for p in leaves), len({tuple(p) for p in leaves})]
    onehot = [arch.link == link for link in LINKS] + [arch.ops[i] == op for i in range(NODES) for op in OPS]
    return np.concatenate([f, np.array(onehot, dtype=np.float64)])


def structures() -> np.ndarray:
    """:func:`structure` of every architecture of :func:`space`, in its order."""
    return np.stack([structure(a) for a in space()])


def transfer(dataset: str) -> np.ndarray:
    """The other datasets' results (never ``dataset``'s): each architecture's validation and test accuracy on each
    of the 7 others, standardised per dataset (columns, in :func:`space`'s order)."""
    cols = []
    for other in DATASETS:
        if other != dataset:
            for split in ("valid", "test"):
                y = scores(other, split)
                cols.append((y - y.mean()) / y.std())
    return np.stack(cols, 1)


def predictor_for(dataset: str, transfer_from_others: bool = True):
    """The agent's predictor on ``dataset``: :class:`~assistant.search.predictor.Online` with extremely randomized
    trees on :func:`structure` and, unless ``transfer_from_others`` is False, the other datasets' results
    (:func:`transfer`), whose mean is then the prior its first proposals are ranked by."""
    from assistant.search.predictor import Online

    feats = structures()
    if not transfer_from_others:
        return Online([a.key for a in space()], feats, head="trees")
    others = transfer(dataset)
    return Online([a.key for a in space()], np.concatenate([feats, others], 1), prior=others.mean(1), head="trees")
