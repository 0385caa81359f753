"""Node-level role labels, made from the rule labeler's module roles on graphs that still have names.

Every node gets one label: the role of the innermost labelled module it lies in
(``attn.q`` for each op of a query projection), an op-level role inside attention
and blocks (``attn.scores``, ``attn.softmax``, ``attn.context``, ``residual``),
or ``other``.  A learned labeler trained on these labels recovers them on graphs
whose names were stripped.
"""

from __future__ import annotations

from gnn.ir.families import ADD_OPS, MATMUL_OPS, SOFTMAX_OPS
from gnn.ir.graph import Graph
from gnn.ir.hierarchy import ancestors
from gnn.roles.base import RoleMap, label
from gnn.vocab import MODULE_ROLES


def node_roles(graph: Graph, roles: RoleMap | None = None) -> list[str]:
    """One label from :data:`NODE_ROLES` per node, in node order."""
    roles = roles or label(graph, "rules")
    leaf = {p: next(r for r in rs if r in MODULE_ROLES) for p, rs in roles.composites.items()
            if any(r in MODULE_ROLES for r in rs)}
    attention = set(roles.paths("attn"))
    blocks = set(roles.blocks)
    out = []
    producers = graph.producers
    consumers = graph.consumers
    for node in graph.nodes:
        chain = ancestors(node.module) if node.module else []
        found = next((leaf[p] for p in reversed(chain) if p in leaf), None)
        if found is None and "act" in roles.nodes.get(node.id, []):
            found = "act"
        if found is None:
            in_attn = any(p in attention for p in chain)
            if in_attn and node.op in SOFTMAX_OPS:
                found = "attn.softmax"
            elif in_attn and node.op in MATMUL_OPS and not _reads_parameter(graph, node):
                found = "attn.scores" if _reaches(node, SOFTMAX_OPS, consumers, forward=True) else \
                    "attn.context" if _reaches(node, SOFTMAX_OPS, producers, forward=False) else None
            elif node.op in ADD_OPS and any(p in blocks for p in chain) and _is_residual(graph, node):
                found = "residual"
        out.append(found or "other")
    return out


def _is_residual(graph: Graph, node, limit: int = 4000) -> bool:
    """An add of two same-shaped activations, one computed from the other: ``x + f(x)``, a skip connection."""
    inputs = list(node.inputs)
    if len(set(inputs)) != 2 or any(graph.values[i].kind not in ("activation", "input") for i in inputs):
        return False
    if graph.values[inputs[0]].shape != graph.values[inputs[1]].shape:
        return False
    for x, fx in (inputs, inputs[::-1]):
        todo, seen = [fx], set()
        while todo and len(seen) < limit:
            producer = graph.producers.get(todo.pop())
            if producer is None or producer.id in seen:
                continue
            seen.add(producer.id)
            if x in producer.inputs:
                return True
            todo.extend(producer.inputs)
    return False


def _reads_parameter(graph: Graph, node) -> bool:
    return any(graph.values[i].kind == "parameter" for i in node.inputs)


def _reaches(node, targets: set[str], links, forward: bool, limit: int = 12) -> bool:
    """Whether an op in ``targets`` is within ``limit`` steps downstream (or upstream) of ``node``."""
    frontier, seen = [node], {node.id}
    for _ in range(limit):
        nxt = []
        for n in frontier:
            if forward:
                near = [c for o in n.outputs if o for c in links.get(o, [])]
            else:
                near = [links[i] for i in n.inputs if i in links]
            for m in near:
                if m.op in targets:
                    return True
                if m.id not in seen and m.op not in MATMUL_OPS:
                    seen.add(m.id)
                    nxt.append(m)
        frontier = nxt
    return False
