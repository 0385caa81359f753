"""The learned role labeler: the graph transformer's node-role head, behind the labeler interface.

It reads no names: each node's role (:data:`gnn.vocab.NODE_ROLES`) is
predicted from ops, shapes and structure, with a confidence (the softmax
probability).  On a graph with module paths the node predictions are turned into
module roles as the rule labeler reports them: a leaf module takes the role most
of its nodes get, attention and feed-forward modules are the nearest modules that
hold their projections, blocks are the repeated layers.  On a graph without module
paths the roles stay on the nodes.

The model is the shipped checkpoint (:mod:`gnn.nn.checkpoint`).
"""

from __future__ import annotations

from collections import Counter

from gnn.ir.graph import Graph
from gnn.ir.hierarchy import ancestors
from gnn.nn.checkpoint import predict_node_probs, predict_node_roles
from gnn.roles.base import RoleMap, register
from gnn.roles.structure import decode_roles
from gnn.vocab import MODULE_ROLES, NODE_ROLES


@register("learned")
def label_learned(graph: Graph) -> RoleMap:
    roles = RoleMap()
    row = {node.id: i for i, node in enumerate(graph.nodes)}
    if not any(node.module for node in graph.nodes):
        # no modules to vote in: projections decoded jointly per attention (gnn.roles.structure)
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
