"""ONNX ops in the IR: which map onto ATen ops, and checking ``onnx::`` nodes.

:data:`ONNX_TO_ATEN` lists the ONNX ops that have an ATen op of the same
meaning, with how their inputs and attributes become ATen arguments and back;
every other standard ONNX op stays ``onnx::<OpType>`` with its ONNX attributes.
:func:`infer_onnx_node` checks a node read from ONNX with ONNX's own per-node
shape inference (symbolic dims included), which is what :mod:`gnn.validate`
uses for such nodes.
"""

from __future__ import annotations

import pathlib
import sys
from dataclasses import dataclass
from typing import Callable

from gnn.errors import describe
from gnn.ir import ops
from gnn.ir.graph import Graph, Node

# ONNX TensorProto.DataType -> torch dtype names
DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}
_ONNX_DTYPE = {v: k for k, v in DTYPES.items()}


def onnx_dtype(name: str) -> int:
    return _ONNX_DTYPE[name]


def encode_data(arr) -> list:
    """A small array as a flat JSON list; inf/nan as ``{"float": "inf"}`` like op arguments."""
    import math

    return [x if not isinstance(x, float) or math.isfinite(x) else {"float": repr(x)} for x in arr.reshape(-1).tolist()]


def decode_data(data: list, dtype: str, shape):
    import numpy as np

    flat = [float(x["float"]) if isinstance(x, dict) else x for x in data]
    return np.array(flat, dtype=np.dtype("bool" if dtype == "bool" else dtype)).reshape(shape)


@dataclass(frozen=True)
class Mapping:
    """How one ONNX op maps onto an ATen op, and back."""

    op: str
    to_aten: Callable[[list, dict, list], tuple[list, dict]]  # (inputs, attrs, input ranks) -> (args, kwargs)
    to_onnx: Callable[[list, dict], tuple[list, dict]]  # (args, kwargs) -> (inputs, attrs)
    floats_only: bool = False  # the meanings agree only on floating-point inputs


def _same(inputs, attrs, ranks):
    return list(inputs), {}


def _same_back(args, kwargs):
    return list(args), {}


def _softmax(inputs, attrs, ranks):
    return [inputs[0], attrs.get("axis", -1), False], {}


def _softmax_back(args, kwargs):
    return [args[0]], {"axis": args[1]}


def _transpose(inputs, attrs, ranks):
    perm = attrs.get("perm") or list(reversed(range(ranks[0])))
    return [inputs[0], list(perm)], {}


def _transpose_back(args, kwargs):
    return [args[0]], {"perm": args[1]}


def _concat(inputs, attrs, ranks):
    return [list(inputs), attrs["axis"]], {}


def _concat_back(args, kwargs):
    return list(args[0]), {"axis": args[1]}


def _cast(inputs, attrs, ranks):
    return [inputs[0]], {"dtype": {"dtype": DTYPES[attrs["to"]]}}


def _cast_back(args, kwargs):
    return [args[0]], {"to": onnx_dtype(kwargs["dtype"]["dtype"])}


def _gelu(inputs, attrs, ranks):
    return [inputs[0]], {"approximate": attrs.get("approximate", "none")}


def _gelu_back(args, kwargs):
    return [args[0]], {"approximate": kwargs.get("approximate", "none")}


_UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
    "Neg": "neg", "Abs": "abs", "Erf": "erf", "Sin": "sin", "Cos": "cos", "Reciprocal": "reciprocal",
    "Floor": "floor", "Ceil": "ceil", "Sign": "sign", "Not": "logical_not",
}
_BINARY = {
    "Add": "add.Tensor", "Sub": "sub.Tensor", "Mul": "mul.Tensor", "Pow": "pow.Tensor_Tensor",
    "Equal": "eq.Tensor", "Less": "lt.Tensor", "Greater": "gt.Tensor", "LessOrEqual": "le.Tensor",
    "GreaterOrEqual": "ge.Tensor", "And": "logical_and.default", "Or": "logical_or.default",
    "Where": "where.self",
}

ONNX_TO_ATEN: dict[str, Mapping] = {
    **{k: Mapping(f"aten.{v}.default", _same, _same_back) for k, v in _UNARY.items()},
    **{k: Mapping(f"aten.{v}", _same, _same_back) for k, v in _BINARY.items()},
    # ONNX Div truncates integers; aten.div.Tensor divides exactly: same only for floats.
    "Div": Mapping("aten.div.Tensor", _same, _same_back, floats_only=True),
    "Softmax": Mapping("aten._softmax.default", _softmax, _softmax_back),
    "Transpose": Mapping("aten.permute.default", _transpose, _transpose_back),
    "Concat": Mapping("aten.cat.default", _concat, _concat_back),
    "Cast": Mapping("aten._to_copy.default", _cast, _cast_back),
    "Gelu": Mapping("aten.gelu.default", _gelu, _gelu_back),
}
ATEN_TO_ONNX = {m.op: k for k, m in ONNX_TO_ATEN.items()}



# -- types and per-node inference ---------------------------------------------------


def type_of(type_proto) -> tuple[list, str] | None:
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    dtype = DTYPES.get(tt.elem_type)
    if dtype is None:
        return None
    if not tt.HasField("shape"):
        return None
    shape: list = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            shape.append(int(d.dim_value))
        elif d.dim_param:
            shape.append(d.dim_param)
        else:
            shape.append("?")  # unknown, unnamed
    return shape, dtype


def type_proto(shape, dtype):
    import onnx

    return onnx.helper.make_tensor_type_proto(onnx_dtype(dtype), [None if d == "?" else d for d in shape])


def infer_onnx_node(graph: Graph, node: Node) -> list[tuple[str, str, object, object]]:
    """Check an ``onnx::`` node with ONNX's own inference; return (rule, message, expected, got) issues."""
    import onnx

    if node.op.startswith(ops.PREFIX_ONNX):
        op_type, args, attrs = node.op[len(ops.PREFIX_ONNX):], node.args, node.kwargs
    else:  # an ATen op read from ONNX: checked as the ONNX op it came from
        op_type = ATEN_TO_ONNX[node.op]
        args, attrs = ONNX_TO_ATEN[op_type].to_onnx(node.args, node.kwargs)
    schema = ops.onnx_schema(ops.PREFIX_ONNX + op_type)
    if schema is None:
        return []
    inputs = [a["value"] if isinstance(a, dict) else "" for a in args]
    outputs = [o or "" for o in node.outputs]
    attrs = {k: attr_back(v) for k, v in attrs.items()}
    proto = onnx.helper.make_node(op_type, inputs, outputs, **attrs)
    input_types, input_data = {}, {}
    for name in inputs:
        if not name:
            continue
        v = graph.values[name]
        if v.meta.get("unknown_type"):
            return []
        input_types[name] = type_proto(v.shape, v.dtype)
        if "data" in v.meta:
            input_data[name] = onnx.numpy_helper.from_array(decode_data(v.meta["data"], v.dtype, v.shape), name)
    opset = graph.meta.get("opset") or onnx.defs.onnx_opset_version()
    try:
        got = onnx.shape_inference.infer_node_outputs(
            schema, proto, input_types, input_data, opset_imports=[onnx.helper.make_opsetid("", opset)]
        )
    except Exception as e:  # noqa: BLE001 - ONNX's inference error is the explanation
        return [("shape", f"ONNX inference rejects the node: {describe(e)}", None, None)]
    issues = []
    for i, name in enumerate(outputs):
        if not name or name not in got:
            continue
        t = type_of(got[name])
        if t is None:
            continue
        rec = graph.values[name]
        if rec.meta.get("unknown_type"):
            continue
        shape, dtype = t
        if len(shape) != len(rec.shape) or any(
            isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, rec.shape)
        ):
            issues.append(("shape", f"output {i} `{name}`", list(rec.shape), shape))
        if dtype != rec.dtype:
            issues.append(("dtype", f"output {i} `{name}`", rec.dtype, dtype))
    return issues


def attr_back(value):
    """An IR attribute value -> what ``onnx.helper.make_node`` accepts."""
    import onnx

    if isinstance(value, dict) and "tensor" in value:
        t = value["tensor"]
        return onnx.numpy_helper.from_array(decode_data(t["data"], t["dtype"], t["shape"]))
    return value


def write_docs(path: pathlib.Path) -> None:
    overlap = sorted(set(ops.EXTRA_OPS) & ops.core_aten_ops())
    assert not overlap, f"extras already in the core set: {overlap}"
    lines = [
        "# Op vocabulary",
        "",
        "Generated by `python -m gnn.ir.onnx_ops`. A node's op is a Core ATen overload, one of the",
        "listed extras, or `onnx::<OpType>` for an ONNX op with no ATen op of the same meaning.",
        "",
        f"## Core ATen ({len(ops.core_aten_ops())} overloads)",
        "",
    ]
    lines += [f"- `{op}`" for op in sorted(ops.core_aten_ops())]
    lines += ["", "## Extras", "", "| op | why it is in the vocabulary |", "|---|---|"]
    lines += [f"| `{op}` | {why} |" for op, why in sorted(ops.EXTRA_OPS.items())]
    lines += ["", "## ONNX ops mapped onto ATen", "", "| ONNX | ATen |", "|---|---|"]
    lines += [f"| `{k}` | `{v.op}` |" for k, v in sorted(ONNX_TO_ATEN.items())]
    lines += ["", "Every other standard ONNX op is kept as `onnx::<OpType>`.", ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":  # python -m gnn.ir.onnx_ops: regenerate the list and docs/ops.md
    ops.CORE_FILE.write_text("\n".join(ops.generate_core_list()) + "\n")
    ops.core_aten_ops.cache_clear()
    ops.vocabulary.cache_clear()
    write_docs(pathlib.Path(__file__).resolve().parents[2] / "docs" / "ops.md")
    print(f"{len(ops.core_aten_ops())} core ops -> {ops.CORE_FILE}", file=sys.stderr)
