"""The learned role labeler: the graph transformer's node-role head, behind the labeler interface.

It reads no names: each node's role (:data:`gnn.data.labels.NODE_ROLES`) is
predicted from ops, shapes and structure, with a confidence (the softmax
probability).  On a graph with module paths the node predictions are turned into
module roles as the rule labeler reports them: a leaf module takes the role most
of its nodes get, attention and feed-forward modules are the nearest modules that
hold their projections, blocks are the repeated layers.  On a graph without module
paths the roles stay on the nodes.

The model is the shipped checkpoint ``gnn/checkpoint`` (``MAD_GNN_CHECKPOINT``
names another), rebuilt by ``python -m gnn.train``.
"""

from __future__ import annotations

import functools
import os
import pathlib
from collections import Counter

import torch

from gnn.data.labels import MODULE_ROLES
from gnn.errors import MadError
from gnn.ir.graph import Graph
from gnn.ir.hierarchy import ancestors
from gnn.roles.base import RoleMap, register

CHECKPOINT = pathlib.Path(__file__).resolve().parents[1] / "checkpoint"


@functools.cache
def _model(path: str):
    from gnn.model import load

    if not (pathlib.Path(path) / "model.safetensors").exists():
        raise MadError(f"no trained graph model at `{path}`; build it with `python -m gnn.data.build` "
                       "and `python -m gnn.train`")
    return load(path)


def checkpoint_path() -> str:
    return os.environ.get("MAD_GNN_CHECKPOINT") or str(CHECKPOINT)


@torch.no_grad()
def encode(graph: Graph):
    """``(model, node embeddings, tokens)`` of ``graph`` under the shipped graph model."""
    from gnn.tokens import OpVocab, tokenize

    model, meta = _model(checkpoint_path())
    tokens = tokenize(graph, OpVocab(meta["ops"]), walk_steps=model.config.walk_steps)
    return model, model.encode(tokens.to_data()), tokens


@torch.no_grad()
def predict_node_probs(graph: Graph) -> torch.Tensor:
    """Role probabilities (N, len(NODE_ROLES)) for every node, in node order."""
    model, x, _ = encode(graph)
    return model.role_head(x).softmax(-1)


def predict_node_roles(graph: Graph) -> tuple[list[str], list[float]]:
    """A role and its probability for every node, in node order."""
    from gnn.data.labels import NODE_ROLES

    conf, idx = predict_node_probs(graph).max(-1)
    return [NODE_ROLES[i] for i in idx.tolist()], [round(float(c), 4) for c in conf]


@register("learned")
def label_learned(graph: Graph) -> RoleMap:
    from gnn.data.labels import NODE_ROLES

    roles = RoleMap()
    row = {node.id: i for i, node in enumerate(graph.nodes)}
    if not any(node.module for node in graph.nodes):
        # no modules to vote in: projections decoded jointly per attention (gnn.roles.structure)
        from gnn.roles.structure import decode_roles

        probs = predict_node_probs(graph)
        labels, _ = decode_roles(graph, probs)
        conf = [float(f"{float(probs[i, NODE_ROLES.index(r)]):.4g}") for i, r in enumerate(labels)]
        for node, role, c in zip(graph.nodes, labels, conf):
            if role != "other":
                roles.add_node(node.id, role)
                roles.confidence[node.id] = c
        return roles
    labels, conf = predict_node_roles(graph)
    h = graph.hierarchy
    roles.add_blocks(h)
    module_roles = set(MODULE_ROLES)
    leaves: dict[str, str] = {}
    for path, comp in h.composites.items():
        if not path or comp.children or not comp.nodes:
            continue
        votes = Counter(labels[row[n]] for n in comp.nodes)
        role, count = votes.most_common(1)[0]
        if role in module_roles and count * 2 >= len(comp.nodes):
            leaves[path] = role
            roles.add(path, role)
            roles.confidence[path] = round(sum(conf[row[n]] for n in comp.nodes if labels[row[n]] == role) / count, 4)
    # attention and feed-forward: the nearest module inside the block holding all of its projections
    for kind, prefix in (("attn", "attn."), ("mlp", "mlp.")):
        groups: dict[str | None, list[str]] = {}
        for path, role in leaves.items():
            if role.startswith(prefix):
                groups.setdefault(roles.block_of(path), []).append(path)
        for block, members in groups.items():
            common = [p for p in ancestors(members[0])[:-1] if all(p in ancestors(m)[:-1] for m in members)]
            inside = [p for p in common if p and (block is None or p.startswith(block + "."))]
            if inside:
                roles.add(inside[-1], kind)
            elif block is not None:
                for child in sorted({a for m in members for a in ancestors(m) if a.rpartition(".")[0] == block}):
                    roles.add(child, kind)
    for node, role, c in zip(graph.nodes, labels, conf):
        if role == "act" and not any(p in leaves for p in ancestors(node.module)):
            roles.add_node(node.id, "act")
            roles.confidence[node.id] = c
    return roles
