"""The performance predictor: MAD's graph transformer with a regression head, over the graph tokens of
:mod:`gnn.nn.tokens`.

:class:`Regressor` is the shipped graph model's backbone (``gnn/checkpoint``: self-supervised on real
architectures), its node embeddings pooled (mean and max) per graph, and a linear head with one output per
task (a dataset's accuracy).  It is trained on standardised scores (:func:`fit`), pretrained where a benchmark has
other datasets' results (transfer: the prior that makes the first proposals good), and read two ways:
:func:`embed` gives each graph's pooled embedding and the head's outputs, which :class:`Online` (a ridge
regression, refitted after every result in milliseconds) turns into the score the search ranks proposals by.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gnn.nn.model import GraphModel


class Regressor(nn.Module):
    def __init__(self, backbone: GraphModel, outputs: int):
        super().__init__()
        self.backbone = backbone
        d = 2 * backbone.config.hidden
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, outputs))

    def pooled(self, batch) -> torch.Tensor:
        x = self.backbone.encode(batch)
        return self.backbone.pooled(x, batch.batch, batch.num_graphs)

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.pooled(batch)
        return z, self.head(z)


def tokens(graphs, parts: list[str] | None = None) -> list:
    """Each graph as a ``torch_geometric`` Data of its tokens, over the shipped checkpoint's op vocabulary; with
    ``parts`` (module paths), each node's ``part``: the index of the part its module lies in, -1 for none."""
    from gnn.nn.checkpoint import _cached, checkpoint_path
    from gnn.nn.tokens import OpVocab, tokenize

    model, meta = _cached(str(checkpoint_path()))
    vocab = OpVocab(meta["ops"])
    out = []
    for g in graphs:
        extra = {}
        if parts:
            extra["part"] = torch.tensor([next((i for i, p in enumerate(parts) if n.module == p
                                                or n.module.startswith(p + ".")), -1) for n in g.nodes])
        out.append(tokenize(g, vocab, walk_steps=model.config.walk_steps).to_data(**extra))
    return out


@torch.no_grad()
def features(data: list, parts: int = 0, batch_size: int = 256, progress: str | None = None) -> torch.Tensor:
    """Fixed features of each graph from the shipped graph transformer, frozen: its node embeddings pooled per
    graph (mean and max), then, for each of ``parts`` parts (:func:`tokens`), the mean of the part's nodes (zeros
    for an empty part): the graph tokens of those parts."""
    from torch_geometric.utils import scatter
    from tqdm import tqdm

    from gnn.nn.checkpoint import _cached, checkpoint_path

    model, _ = _cached(str(checkpoint_path()))
    out = []
    order = list(range(len(data)))
    for _, batch in tqdm(_batches(data, order, batch_size), total=-(-len(data) // batch_size), desc=progress,
                         disable=progress is None, leave=False):
        x = model.encode(batch)
        rows = [model.pooled(x, batch.batch, batch.num_graphs)]
        if parts:
            keep = batch.part >= 0
            seg = batch.batch[keep] * parts + batch.part[keep]
            means = scatter(x[keep], seg, dim=0, dim_size=batch.num_graphs * parts, reduce="mean")
            rows.append(means.view(batch.num_graphs, -1))
        out.append(torch.cat(rows, 1))
    return torch.cat(out)


def new(outputs: int, pretrained: bool = True, seed: int = 0) -> Regressor:
    """A regressor on the shipped backbone (its weights unless ``pretrained`` is False)."""
    from gnn.nn.checkpoint import _cached, checkpoint_path

    torch.manual_seed(seed)
    base, _ = _cached(str(checkpoint_path()))
    backbone = GraphModel(base.config)
    if pretrained:
        backbone.load_state_dict(base.state_dict())
    return Regressor(backbone, outputs)


def _batches(data: list, order, size: int):
    from torch_geometric.data import Batch

    for i in range(0, len(order), size):
        yield order[i:i + size], Batch.from_data_list([data[j] for j in order[i:i + size]])


def fit(model: Regressor, data: list, y: torch.Tensor, steps: int, batch_size: int = 128, lr: float = 1e-3,
        seed: int = 0, progress: str | None = None) -> Regressor:
    """Train on ``y`` (graphs x outputs, NaN where a graph has no score for an output): mean squared error on
    each output standardised, plus a pairwise ranking loss (what search needs is the order)."""
    from tqdm import tqdm

    y = y.float()
    mean, std = torch.nanmean(y, 0), torch.from_numpy(np.nanstd(y.numpy(), 0)).clamp(min=1e-6)
    z = (y - mean) / std
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(steps), desc=progress, disable=progress is None, leave=False):
        idx = torch.randperm(len(data), generator=gen)[:batch_size].tolist()
        _, batch = next(_batches(data, idx, batch_size))
        _, out = model(batch)
        target = z[idx]
        known = ~torch.isnan(target)
        loss = ((out - target.nan_to_num()) ** 2)[known].mean()
        # pairwise: for each output, a logistic loss on the sign of every pair's difference
        d_out = out.unsqueeze(0) - out.unsqueeze(1)
        d_y = target.unsqueeze(0) - target.unsqueeze(1)
        pair = known.unsqueeze(0) & known.unsqueeze(1) & (d_y.abs() > 1e-6)
        if pair.any():
            loss = loss + nn.functional.softplus(-d_out[pair] * torch.sign(d_y[pair])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return model


@torch.no_grad()
def embed(model: Regressor, data: list, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled embeddings (graphs x 2 hidden) and head outputs (graphs x outputs), in ``data``'s order."""
    model.eval()
    zs, outs = [], []
    for _, batch in _batches(data, list(range(len(data))), batch_size):
        z, out = model(batch)
        zs.append(z)
        outs.append(out)
    return torch.cat(zs), torch.cat(outs)


class Online:
    """The predictor as the search uses it: ridge regression on fixed features of every candidate (the pooled
    embedding, and the pretrained head's outputs), refitted on the results so far.  Before there are enough
    results it ranks by ``prior`` (the mean of the pretrained outputs; zeros without one)."""

    def __init__(self, keys: list, features: np.ndarray, prior: np.ndarray | None = None, alpha: float = 10.0):
        self.row = {k: i for i, k in enumerate(keys)}
        f = features.astype(np.float64)
        f = (f - f.mean(0)) / (f.std(0) + 1e-6)
        p = np.zeros(len(keys)) if prior is None else prior.astype(np.float64)
        self.prior = (p - p.mean()) / (p.std() + 1e-9)
        # the prior enters as one more feature (weighted like all the rest together) the fit may trust or not
        self.x = np.concatenate([self.prior[:, None] * np.sqrt(f.shape[1]), f], axis=1)
        self.alpha = alpha

    def scores(self, seen: list, y: list[float], candidates: list) -> np.ndarray:
        """Predicted standardised score of each of ``candidates`` given ``seen`` (keys) scored ``y``."""
        rows = [self.row[k] for k in candidates]
        if len(seen) < 5:
            return self.prior[rows]
        y = np.asarray(y, dtype=np.float64)
        y = (y - y.mean()) / (y.std() + 1e-9)
        xs = self.x[[self.row[k] for k in seen]]
        w = np.linalg.solve(xs.T @ xs + self.alpha * np.eye(xs.shape[1]), xs.T @ y)
        return self.x[rows] @ w


def kendall_tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)
