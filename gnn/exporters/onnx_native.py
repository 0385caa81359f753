"""Write a graph read from ONNX back to ONNX, node for node.

``onnx::`` nodes are emitted as they were read; ATen nodes that came from ONNX
ops are mapped back through :data:`gnn.ir.onnx_ops.ONNX_TO_ATEN`; ATen nodes an
edit traced in are written by :mod:`gnn.exporters.aten_onnx`.
Parameters get random values (or the supplied ones); small constants keep the
data the importer kept.
"""

from __future__ import annotations

import numpy as np

from gnn.errors import ExportError
from gnn.ir import ops
from gnn.ir.graph import Graph


def to_onnx_native(graph: Graph, weights=None):
    import onnx
    from onnx import helper, numpy_helper

    from gnn.ir.onnx_ops import ATEN_TO_ONNX, ONNX_TO_ATEN, attr_back, decode_data, type_proto

    hints = graph.dim_hints
    rng = np.random.default_rng(0)
    initializers, inputs = [], []
    for name in graph.inputs:
        v = graph.values[name]
        if v.kind == "input":
            inputs.append(helper.make_value_info(name, type_proto(v.shape, v.dtype)))
            continue
        np_dtype = np.dtype("bool" if v.dtype == "bool" else v.dtype)
        shape = v.concrete_shape(hints)
        if weights is not None and v.target in weights:
            arr = weights[v.target].detach().cpu().numpy().astype(np_dtype)
        elif "data" in v.meta:
            arr = decode_data(v.meta["data"], v.dtype, shape)
        elif np.issubdtype(np_dtype, np.floating):
            arr = (rng.standard_normal(shape) * 0.02).astype(np_dtype)
        else:
            arr = np.zeros(shape, dtype=np_dtype)
        initializers.append(numpy_helper.from_array(arr, name))
    nodes = []
    for node in graph.nodes:
        if node.meta.get("traced"):  # spliced in by an edit: ATen arguments, written op by op
            from gnn.exporters.aten_onnx import to_onnx_nodes

            protos, consts = to_onnx_nodes(node, graph)
            initializers.extend(consts)
            for proto in protos:
                set_metadata(proto, "namespace", node.module)
                set_metadata(proto, "module_class", node.module_class)
            nodes.extend(protos)
            continue
        if node.op.startswith(ops.PREFIX_ONNX):
            op_type, args, attrs = node.op[len(ops.PREFIX_ONNX):], node.args, node.kwargs
        elif node.op in ATEN_TO_ONNX:
            op_type = ATEN_TO_ONNX[node.op]
            args, attrs = ONNX_TO_ATEN[op_type].to_onnx(node.args, node.kwargs)
        else:
            raise ExportError(
                f"{node.module or '<root>'} ({node.id}): `{node.op}` has no ONNX form in a graph read from ONNX"
            )
        proto = helper.make_node(
            op_type,
            [a["value"] if isinstance(a, dict) else "" for a in args],
            [o or "" for o in node.outputs],
            name=node.id,
            **{k: attr_back(v) for k, v in attrs.items()},
        )
        set_metadata(proto, "namespace", node.module)
        set_metadata(proto, "module_class", node.module_class)
        nodes.append(proto)
    outputs = [helper.make_value_info(o.value, type_proto(graph.values[o.value].shape, graph.values[o.value].dtype)) for o in graph.outputs]
    g = helper.make_graph(nodes, graph.name, inputs, outputs, initializer=initializers)
    opset = graph.meta.get("opset") or onnx.defs.onnx_opset_version()
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="mad")
    return model


def set_metadata(node, key: str, value: str) -> None:
    entry = next((p for p in node.metadata_props if p.key == key), None)
    if entry is None:
        entry = node.metadata_props.add()
        entry.key = key
    entry.value = value
