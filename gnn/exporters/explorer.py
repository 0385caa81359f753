"""Model Explorer graph JSON (``ai-edge-model-explorer``'s graph collection format).

Every op node sits in the namespace of its module path (``model/layers/0/self_attn``:
Model Explorer nests namespaces at ``/``), so the viewer shows the model's own
hierarchy as collapsible layers.  Graph inputs, parameters and outputs become
nodes too, edges carry the value's shape and dtype, and each namespace gets its
module class and parameter count as group attributes.
"""

from __future__ import annotations

import json

from gnn.ir.graph import Graph


def _namespace(path: str) -> str:
    return path.replace(".", "/")


def _kv(key: str, value) -> dict:
    return {"key": key, "value": str(value)}


def _tensor(graph: Graph, name: str) -> str:
    v = graph.values[name]
    return f"{v.dtype}[{','.join(str(d) for d in v.shape)}]"


def to_explorer(graph: Graph) -> dict:
    nodes = []
    where: dict[str, tuple[str, int]] = {}  # value -> (producing node id, output index)
    for name in graph.inputs:
        v = graph.values[name]
        label = {"input": "Input", "parameter": "Parameter", "buffer": "Buffer", "constant": "Constant"}[v.kind]
        node_id = f"{v.kind}:{name}"
        nodes.append(
            {
                "id": node_id,
                "label": label,
                "namespace": _namespace(v.owner or "") if v.kind != "input" else "",
                "attrs": [_kv("name", name), _kv("kind", v.kind)],
                "incomingEdges": [],
                "outputsMetadata": [{"id": "0", "attrs": [_kv("tensor_shape", _tensor(graph, name)), _kv("__tensor_tag", name)]}],
                "inputsMetadata": [],
            }
        )
        where[name] = (node_id, 0)
    for node in graph.nodes:
        edges = []
        for i, name in enumerate(node.inputs):
            if name in where:
                src, idx = where[name]
                edges.append({"sourceNodeId": src, "sourceNodeOutputId": str(idx), "targetNodeInputId": str(i)})
        outputs = []
        for i, name in enumerate(node.outputs):
            if name is None:
                continue
            where[name] = (node.id, i)
            outputs.append({"id": str(i), "attrs": [_kv("tensor_shape", _tensor(graph, name)), _kv("__tensor_tag", name)]})
        scalars = [a for a in node.args if not isinstance(a, dict)]
        attrs = [_kv("op", node.op), _kv("module", node.module), _kv("module_class", node.module_class)]
        if scalars:
            attrs.append(_kv("args", json.dumps(scalars)))
        for k, v in node.kwargs.items():
            attrs.append(_kv(k, json.dumps(v)))
        nodes.append(
            {
                "id": node.id,
                "label": node.op.split(".")[1] if node.op.startswith("aten.") else node.op,
                "namespace": _namespace(node.module),
                "attrs": attrs,
                "incomingEdges": edges,
                "outputsMetadata": outputs,
                "inputsMetadata": [],
            }
        )
    out_edges = []
    for i, out in enumerate(graph.outputs):
        if out.value in where:
            src, idx = where[out.value]
            out_edges.append({"sourceNodeId": src, "sourceNodeOutputId": str(idx), "targetNodeInputId": str(i)})
    nodes.append(
        {
            "id": "outputs",
            "label": "GraphOutputs",
            "namespace": "",
            "attrs": [_kv("names", ", ".join(o.name for o in graph.outputs))],
            "incomingEdges": out_edges,
            "outputsMetadata": [],
            "inputsMetadata": [],
        }
    )
    h = graph.hierarchy
    groups = {
        _namespace(path): {"module_class": comp.module_class, "params": str(comp.num_parameters)}
        for path, comp in h.composites.items()
        if path
    }
    # A graph collection ({"label", "graphs"}): what Model Explorer's JSON loader (builtin_json) reads from a file,
    # and an adapter's response too
    return {"label": graph.name, "graphs": [{"id": graph.name, "nodes": nodes, "groupNodeAttributes": groups}]}
