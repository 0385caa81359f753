"""Op families: the primitive ops (Core ATen and ONNX) that do the same kind of work.

Roles, facts, summaries and edits ask "is this a matrix product?", "is this the
softmax?", "which activation is this?" of ops from either vocabulary; this is the
one table they read.
"""

from __future__ import annotations

# products of two tensors (a projection reads a weight as one of them; attention's scores and context do not)
MATMUL_OPS = frozenset({
    "aten.mm.default", "aten.bmm.default", "aten.matmul.default", "aten.linear.default",
    "aten.addmm.default", "aten.baddbmm.default",  # the product plus an input (a bias, an ALiBi bias)
    "onnx::MatMul", "onnx::Gemm",
})
CONV_OPS = frozenset({"aten.convolution.default", "onnx::Conv"})
SOFTMAX_OPS = frozenset({"aten._softmax.default", "aten._safe_softmax.default", "onnx::Softmax"})
ADD_OPS = frozenset({"aten.add.Tensor", "onnx::Add"})
RESHAPE_OPS = frozenset({"aten.view.default", "aten._unsafe_view.default", "aten.reshape.default", "onnx::Reshape"})

# activation ops and the name a person knows them by
ACTIVATIONS = {
    "aten.silu.default": "SiLU", "aten.relu.default": "ReLU", "aten.gelu.default": "GELU",
    "aten.sigmoid.default": "sigmoid", "aten.tanh.default": "tanh", "aten.mish.default": "Mish",
    "aten.elu.default": "ELU", "aten.hardswish.default": "hard swish",
    "onnx::Relu": "ReLU", "onnx::Gelu": "GELU", "onnx::Sigmoid": "sigmoid", "onnx::Tanh": "tanh",
}

# the edit language's norm names and the classes they stand for
NORMS = {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}
_LAYER_NORM_OPS = frozenset({"aten.native_layer_norm.default", "aten.layer_norm.default", "onnx::LayerNormalization"})
_RMS_OPS = frozenset({"aten.rsqrt.default", "aten.sqrt.default", "onnx::Sqrt"})
_MEAN_OPS = frozenset({"aten.mean.dim", "onnx::ReduceMean"})


def norm_kind(ops: list[str]) -> str | None:
    """``LayerNorm`` or ``RMSNorm`` from the primitive ops a norm runs (None: neither)."""
    if any(op in _LAYER_NORM_OPS for op in ops):
        return "LayerNorm"
    if any(op in _RMS_OPS for op in ops) and any(op in _MEAN_OPS for op in ops):
        # LayerNorm written out subtracts the mean first: a sub before the variance
        return "LayerNorm" if any(op in ("aten.sub.Tensor", "onnx::Sub") for op in ops) else "RMSNorm"
    return None
