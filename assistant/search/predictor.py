"""The performance predictor: a head refitted on the results as they come, over fixed features of every candidate.

:class:`Online` (a space that lists its candidates) and :class:`OnDemand` (features read as candidates are first
ranked) hold the features; the head is extremely randomized trees or ridge regression.  The features a space
gives: MAD's graph transformer, frozen (``gnn/checkpoint``: self-supervised on real architectures), read by
:func:`features` from each candidate's graph tokens (:func:`tokens`), its node embeddings pooled per graph (mean
and max) and the graph token of each of its parts; and what the space knows of a candidate without evaluating it
(NAS-Bench-Graph: the cell's paths of operations, and other datasets' results).  Measured on NAS-Bench-Graph
(``python -m bench.search``): the frozen graph transformer's features rank below the cell's own structure, so the
agent there reads the structure; fine-tuning the backbone on results is not done (seconds per step on 2 cores).
"""

from __future__ import annotations

import numpy as np
import torch


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


def _batches(data: list, order, size: int):
    from torch_geometric.data import Batch

    for i in range(0, len(order), size):
        yield order[i:i + size], Batch.from_data_list([data[j] for j in order[i:i + size]])


class Online:
    """The predictor as the search uses it: a head on fixed features of every candidate, refitted on the results so
    far, with a ``prior`` (a score for every candidate before any result; zeros without one) it ranks by until
    there are ``least`` results.

    ``head``: ``"trees"`` (extremely randomized trees, scikit-learn's ``ExtraTreesRegressor``: they read which
    operation sits after which, interactions a linear head cannot; refitted each time the results have grown by
    ``refit`` (a quarter), on the first results in order, so a resumed search ranks as the uninterrupted one did;
    ``refit`` None: on every result) or ``"ridge"`` (ridge regression, refitted after every result; the prior enters
    as one more feature, weighted like all the rest together)."""

    def __init__(self, keys: list, features: np.ndarray, prior: np.ndarray | None = None, alpha: float = 10.0,
                 head: str = "ridge", trees: int = 100, least: int = 5, refit: float | None = 1.25):
        self.row = {k: i for i, k in enumerate(keys)}
        f = features.astype(np.float64)
        f = (f - f.mean(0)) / (f.std(0) + 1e-6)
        p = np.zeros(len(keys)) if prior is None else prior.astype(np.float64)
        self.prior = (p - p.mean()) / (p.std() + 1e-9)
        self.x = np.concatenate([self.prior[:, None] * np.sqrt(f.shape[1]), f], axis=1) if head == "ridge" else f
        self.alpha, self.head, self.trees, self.least, self.refit = alpha, head, trees, least, refit
        self._model, self._fitted = None, None

    def scores(self, seen: list, y: list[float], candidates: list) -> np.ndarray:
        """Predicted score of each of ``candidates`` (standardised for ridge) given ``seen`` (keys) scored ``y``."""
        rows = [self.row[k] for k in candidates]
        if len(seen) < self.least:
            return self.prior[rows]
        xs = self.x[[self.row[k] for k in seen]]
        if self.head == "trees":
            # fitted on the first m results, m the last of 5, 7, 9, 11, 13, 16, ... (a quarter more each) not above
            # len(seen): the same model whatever the process saw before
            m = self.least if self.refit else len(seen)
            while self.refit and max(m + 2, int(m * self.refit)) <= len(seen):
                m = max(m + 2, int(m * self.refit))
            if self._fitted != tuple(seen[:m]):
                from sklearn.ensemble import ExtraTreesRegressor

                self._model = ExtraTreesRegressor(self.trees, max_features=0.5, min_samples_leaf=2, random_state=0)
                self._model.fit(xs[:m], np.asarray(y[:m], dtype=np.float64))
                self._fitted = tuple(seen[:m])
            return self._model.predict(self.x[rows])
        return self.x[rows] @ _ridge(xs, y, self.alpha)


class OnDemand:
    """:class:`Online`'s ridge head for a space too large to list: ``featurize(keys)`` gives the features of
    candidates as they are first ranked (kept, so each is read once), standardised over the results and the
    candidates ranked (so a resumed search ranks as the uninterrupted one did); no prior."""

    def __init__(self, featurize, alpha: float = 10.0, least: int = 5):
        self.featurize, self.alpha, self.least, self.rows = featurize, alpha, least, {}

    def scores(self, seen: list, y: list[float], candidates: list) -> np.ndarray:
        if len(seen) < self.least:  # no prior: nothing to rank by yet
            return np.zeros(len(candidates))
        new = [k for k in dict.fromkeys([*seen, *candidates]) if k not in self.rows]
        if new:
            self.rows.update(zip(new, np.asarray(self.featurize(new), dtype=np.float64)))
        # standardised over the results and the candidates of this call (over the results alone, a candidate far
        # from the few first results gets extreme values and is picked for them; over everything read so far, a
        # resumed search would rank otherwise)
        every = np.stack([self.rows[k] for k in dict.fromkeys([*seen, *candidates])])
        mean, std = every.mean(0), every.std(0) + 1e-6
        xs = (np.stack([self.rows[k] for k in seen]) - mean) / std
        xc = (np.stack([self.rows[k] for k in candidates]) - mean) / std
        return xc @ _ridge(xs, y, self.alpha)


def _ridge(xs: np.ndarray, y, alpha: float) -> np.ndarray:
    """Ridge weights fitted to ``y`` standardised (the heads rank; the scale of a score does not matter)."""
    y = np.asarray(y, dtype=np.float64)
    y = (y - y.mean()) / (y.std() + 1e-9)
    return np.linalg.solve(xs.T @ xs + alpha * np.eye(xs.shape[1]), xs.T @ y)


def kendall_tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)
