"""The closed op vocabulary.

A node's op is one of:

* a **Core ATen** overload (``aten.mm.default``): the opset that
  ``torch.export``'s default decompositions lower to, listed in
  ``core_aten_ops.txt`` (generated from ``torch.Tag.core`` by
  ``python -m gnn.ir.onnx_ops``);
* one of the few :data:`EXTRA_OPS`, ATen overloads that have no decomposition
  and survive ``run_decompositions()`` in real models (each with its reason);
* an ONNX op that has no ATen op of the same meaning, kept as ``onnx::OpType``
  (``onnx::MatMul``: numpy-style broadcasting matmul is not ``aten.mm``).

Everything else is refused with :class:`~gnn.errors.UnsupportedOpError`.
"""

from __future__ import annotations

import functools
import pathlib

from gnn.errors import UnsupportedOpError

_HERE = pathlib.Path(__file__).parent
CORE_FILE = _HERE / "core_aten_ops.txt"

# ATen overloads outside the core set that still appear after decomposition.
EXTRA_OPS: dict[str, str] = {
    "aten.upsample_bicubic2d.vec": "vision resamplers (position-embedding interpolation)",
    "aten.lift_fresh_copy.default": "tensor literals created inside forward",
    "aten.linalg_vector_norm.default": "F.normalize and norm-based layers (CLIP projections, weight norm); no decomposition",
    "aten.bucketize.Tensor": "bucketed relative positions (e.g. vision position ids); no decomposition",
    "aten.view_as_complex.default": "complex rotary embeddings",
    "aten.view_as_real.default": "complex rotary embeddings",
    "aten.polar.default": "complex rotary embeddings",
    "aten._fft_c2c.default": "Fourier token mixing (FNet)",
    "aten.histc.default": "expert load counting in mixture-of-experts routers",
    "aten.searchsorted.Tensor": "bucketing in position encoders",
}

PREFIX_ONNX = "onnx::"


@functools.cache
def core_aten_ops() -> frozenset[str]:
    return frozenset(line.strip() for line in CORE_FILE.read_text().splitlines() if line.strip())


@functools.cache
def vocabulary() -> frozenset[str]:
    """Every ATen op name a node may carry (ONNX ops are checked separately)."""
    return core_aten_ops() | frozenset(EXTRA_OPS)


def is_known(op: str) -> bool:
    if op.startswith(PREFIX_ONNX):
        return _onnx_schema(op[len(PREFIX_ONNX):]) is not None
    return op in vocabulary()


def check_op(op: str, where: str = "") -> None:
    if not is_known(op):
        at = f" at {where}" if where else ""
        raise UnsupportedOpError(
            f"unsupported op `{op}`{at}: nodes must be Core ATen ops (docs/ops.md), "
            f"one of {len(EXTRA_OPS)} listed extras, or onnx::<standard ONNX op>"
        )


@functools.cache
def aten_overload(op: str):
    """``"aten.add.Tensor"`` -> ``torch.ops.aten.add.Tensor``."""
    import torch

    ns, name, overload = op.split(".")
    return getattr(getattr(getattr(torch.ops, ns), name), overload)


@functools.cache
def _onnx_schema(op_type: str, domain: str = ""):
    import onnx.defs

    try:
        return onnx.defs.get_schema(op_type, domain=domain)
    except onnx.defs.SchemaError:
        return None


def onnx_schema(op: str):
    return _onnx_schema(op[len(PREFIX_ONNX):])


def generate_core_list() -> list[str]:
    """Collect every ATen overload tagged ``core`` in the installed torch."""
    import torch

    names = []
    for attr in dir(torch.ops.aten):
        try:
            packet = getattr(torch.ops.aten, attr)
        except (AttributeError, RuntimeError):
            continue
        if not isinstance(packet, torch._ops.OpOverloadPacket):
            continue
        for overload in packet.overloads():
            if torch.Tag.core in getattr(packet, overload).tags:
                names.append(f"aten.{attr}.{overload}")
    return sorted(names)
