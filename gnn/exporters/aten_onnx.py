"""ONNX for the ATen nodes an edit traced into a graph read from ONNX.

A graph imported from ONNX is written back node for node (:mod:`gnn.exporters.onnx_native`);
the modules an edit splices in (a LoRA branch, an adapter, a norm, an activation) are
ATen ops with ATen arguments.  :func:`to_onnx_nodes` writes each as the ONNX ops of
the same meaning, with shape and scalar operands as initializers.
"""

from __future__ import annotations

import numpy as np

from gnn.errors import ExportError


def _ref(arg) -> str:
    return arg["value"] if isinstance(arg, dict) and "value" in arg else ""


def to_onnx_nodes(node, graph) -> tuple[list, list]:
    """ONNX nodes and initializers computing ``node`` (an ATen node with ATen arguments)."""
    from onnx import helper, numpy_helper

    op, args, out = node.op, node.args, node.outputs[0]
    inits = []

    def const(value, dtype, tag: str) -> str:
        name = f"{node.id}_{tag}"
        inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def tensor_dtype(name: str):
        return np.dtype("bool" if graph.values[name].dtype == "bool" else graph.values[name].dtype)

    def make(op_type, inputs, outputs=None, **attrs):
        return helper.make_node(op_type, inputs, outputs or [out], name=f"{node.id}_{op_type}", **attrs)

    x = _ref(args[0]) if args else ""
    if op in ("aten.view.default", "aten._unsafe_view.default", "aten.reshape.default"):
        return [make("Reshape", [x, const(args[1], np.int64, "shape")])], inits
    if op == "aten.permute.default":
        return [make("Transpose", [x], perm=list(args[1]))], inits
    if op == "aten.t.default":
        return [make("Transpose", [x], perm=[1, 0])], inits
    if op == "aten.addmm.default":
        mid = f"{node.id}_mm"
        return [make("MatMul", [_ref(args[1]), _ref(args[2])], [mid]), make("Add", [x, mid])], inits
    binary = {"aten.add.Tensor": "Add", "aten.sub.Tensor": "Sub", "aten.mul.Tensor": "Mul", "aten.div.Tensor": "Div",
              "aten.mul.Scalar": "Mul", "aten.div.Scalar": "Div", "aten.add.Scalar": "Add",
              "aten.pow.Tensor_Scalar": "Pow",
              "aten.mm.default": "MatMul", "aten.bmm.default": "MatMul", "aten.matmul.default": "MatMul"}
    if op in binary:
        if node.kwargs.get("alpha", 1) != 1:
            raise ExportError(f"{node.id}: `{op}` with alpha is not written to ONNX")
        names = [_ref(a) for a in args[:2]]
        tensor = next(n for n in names if n)
        inputs = [n or const(a if not isinstance(a, dict) else float(a["float"]), tensor_dtype(tensor), f"s{i}")
                  for i, (n, a) in enumerate(zip(names, args[:2]))]
        return [make(binary[op], inputs)], inits
    unary = {"aten.relu.default": "Relu", "aten.sigmoid.default": "Sigmoid", "aten.tanh.default": "Tanh",
             "aten.neg.default": "Neg", "aten.sqrt.default": "Sqrt", "aten.exp.default": "Exp",
             "aten.erf.default": "Erf", "aten.clone.default": "Identity", "aten.alias.default": "Identity"}
    if op in unary:
        return [make(unary[op], [x])], inits
    if op == "aten.rsqrt.default":
        mid = f"{node.id}_sqrt"
        return [make("Sqrt", [x], [mid]), make("Reciprocal", [mid])], inits
    if op == "aten.gelu.default":
        return [make("Gelu", [x], approximate=node.kwargs.get("approximate", "none"))], inits
    if op == "aten.silu.default":
        mid = f"{node.id}_sig"
        return [make("Sigmoid", [x], [mid]), make("Mul", [x, mid])], inits
    if op == "aten.unsqueeze.default":
        return [make("Unsqueeze", [x, const([args[1]], np.int64, "axes")])], inits
    if op == "aten.expand.default":
        return [make("Expand", [x, const([max(d, 1) for d in args[1]], np.int64, "shape")])], inits
    if op == "aten.mean.dim":
        keep = int(bool(args[2])) if len(args) > 2 else 0
        return [make("ReduceMean", [x, const(list(args[1]), np.int64, "axes")], keepdims=keep)], inits
    if op == "aten._to_copy.default":
        from gnn.ir.onnx_ops import onnx_dtype

        dtype = node.kwargs.get("dtype")
        if dtype is None:
            return [make("Identity", [x])], inits
        return [make("Cast", [x], to=onnx_dtype(dtype["dtype"]))], inits
    if op == "aten.native_layer_norm.default":
        axis = -len(args[1])
        inputs = [x, _ref(args[2]) or const(np.ones(args[1]), tensor_dtype(x), "w")]
        if len(args) > 3 and _ref(args[3]):
            inputs.append(_ref(args[3]))
        outs = [o or "" for o in node.outputs]
        return [make("LayerNormalization", inputs, outs, axis=axis, epsilon=float(args[4]))], inits
    raise ExportError(f"{node.module or '<root>'} ({node.id}): `{op}`, traced in by an edit, has no ONNX form yet")
