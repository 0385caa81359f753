"""What "the same architecture" means for the edit tests (issue 3's ground truth)."""

from collections import Counter

import networkx as nx


def op_dag(graph) -> nx.DiGraph:
    """Nodes labelled by op; parameters as nodes labelled by their shape; edges follow the data."""
    g = nx.DiGraph()
    for v in graph.parameters:
        g.add_node(v.name, op=f"param{list(v.shape)}")
    for node in graph.nodes:
        g.add_node(node.id, op=node.op)
        for name in node.inputs:
            src = graph.producers.get(name)
            if src is not None:
                g.add_edge(src.id, node.id)
            elif name in g:
                g.add_edge(name, node.id)
    return g


def ops_per_composite(graph) -> dict[str, Counter]:
    h = graph.hierarchy
    by_id = graph.node_by_id
    return {path: Counter(by_id[n].op for n in c.nodes) for path, c in h.composites.items()}


def assert_same_architecture(edited, reference) -> None:
    assert edited.num_parameters == reference.num_parameters
    assert ops_per_composite(edited) == ops_per_composite(reference)
    a, b = op_dag(edited), op_dag(reference)
    assert nx.weisfeiler_lehman_graph_hash(a, node_attr="op") == nx.weisfeiler_lehman_graph_hash(b, node_attr="op")
    assert nx.is_isomorphic(a, b, node_match=lambda x, y: x["op"] == y["op"])
