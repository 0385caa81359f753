"""The graph model's tasks: what each head scores, against which target, with which loss.

``task_outputs`` wires the heads once; training sums :func:`losses` over it and evaluation
reads :func:`predictions` off it, so the two cannot disagree on what a task is.

* ``op``: the op of each masked node (class); ``completion_op``: the op of each node cut out and
  asked back (class);
* ``role``: each node's role (:data:`gnn.vocab.NODE_ROLES`, class);
* ``kind``: each graph's architecture kind (:data:`gnn.vocab.KINDS`, class);
* ``incomplete``: whether nodes or a block were cut out of each graph (binary);
* ``link``, ``completion_link``: whether a data edge joins a pair of nodes (binary).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# cross-entropy, predicted by argmax; the others (incomplete, link, completion_link) are logistic, predicted as scores
CLASS_TASKS = ("op", "role", "kind", "completion_op")


def task_outputs(model, b: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``task -> (scores, targets)`` for a dict of task batches (:func:`gnn.training.train.task_batches`):
    ``masked`` (masked ops; roles, kind, incompleteness of the nodes left unmasked), ``links`` (hidden edges),
    ``complete`` (completion) and, in evaluation, ``clean`` (roles and kind of whole, unmasked graphs)."""
    out = {}
    if "clean" in b:
        c = b["clean"]
        x = model.encode(c)  # (N, hidden)
        out["role"] = (model.role_head(x), c.role)
        out["kind"] = (model.kind_head(model.pooled(x, c.batch, c.num_graphs)), c.kind)
    m = b["masked"]
    x = model.encode(m)
    out["op"] = (model.op_head(x[m.masked]), m.op_target[m.masked])
    pooled = model.pooled(x, m.batch, m.num_graphs)  # (G, 2 * hidden)
    if "clean" not in b:
        keep = ~m.masked
        out["role"] = (model.role_head(x[keep]), m.role[keep])
        out["kind"] = (model.kind_head(pooled), m.kind)
    out["incomplete"] = (model.incomplete_head(pooled).squeeze(-1), m.incomplete)
    lk = b["links"]
    out["link"] = _pairs(model, model.encode(lk), lk.pos_edge_index, lk.neg_edge_index)
    p = b["complete"]
    x = model.encode(p)
    out["completion_op"] = (model.op_head(x[p.completion_index]), p.completion_op)
    out["completion_link"] = _pairs(model, x, p.comp_pos_edge_index, p.comp_neg_edge_index)
    return out


def _pairs(model, x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge scores of true pairs then false ones (2, P each), and their 1/0 targets."""
    scores = torch.cat([model.link_logits(x, pos), model.link_logits(x, neg)])
    target = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])])
    return scores, target.to(scores.device)


def losses(model, b: dict) -> dict[str, torch.Tensor]:
    """One loss per task: cross-entropy for the class tasks, logistic for the binary ones."""
    return {task: (F.cross_entropy if task in CLASS_TASKS else F.binary_cross_entropy_with_logits)(scores, target)
            for task, (scores, target) in task_outputs(model, b).items()}


def predictions(model, b: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``task -> (prediction, target)``: the class for class tasks, the score for binary ones."""
    return {task: (scores.argmax(-1) if task in CLASS_TASKS else scores, target)
            for task, (scores, target) in task_outputs(model, b).items()}
