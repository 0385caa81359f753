"""Write a graph as an ONNX model.

Graphs traced from torch are rebuilt as an fx module (``gnn.exporters.fx``)
and lowered by ``torch.onnx`` (its ATen -> ONNX library is the maintained
one); each ONNX node then gets the module path of the IR node it came from as
``namespace`` metadata and a ``/``-scoped name, which is how ONNX viewers and
our own ONNX importer recover the hierarchy.  Graphs imported from ONNX are
written back node for node.

Weights are random unless a state dict is supplied.  An architecture whose
weights would not fit in memory is refused before anything is allocated, and
one over protobuf's 2 GB limit is written with external data.
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
import warnings

import torch

from gnn.errors import ExportError, describe
from gnn.exporters.onnx_native import set_metadata
from gnn.fileio import write_with
from gnn.ir import ops
from gnn.ir.args import dtype_from_name
from gnn.ir.graph import Graph

PROTOBUF_LIMIT = 2 * 1024**3
# Weights may take at most this share of the memory still available: lowering holds them
# about 2.5 times over (measured: 7.3 GB peak for 2.9 GB of weights: the tensors, then the ONNX
# initializers and their serialised copy).
MEMORY_SHARE = 1 / 3


def weight_bytes(graph: Graph) -> int:
    hints = graph.dim_hints
    return sum(
        v.numel(hints) * dtype_from_name(v.dtype).itemsize for v in graph.values_of_kind("parameter", "buffer", "constant")
    )


def available_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3


def check_fits(graph: Graph, budget: int | None = None) -> int:
    need = weight_bytes(graph)
    budget = int(available_memory() * MEMORY_SHARE) if budget is None else budget
    if need > budget:
        raise ExportError(
            f"{graph.name} needs {need / 1e9:.1f} GB of weights to write as ONNX, more than the "
            f"{budget / 1e9:.1f} GB this machine can spare; export the graph JSON or Model Explorer JSON "
            "instead, or shrink it (e.g. --set num_hidden_layers=2)"
        )
    return need


def example_inputs(graph: Graph, device="cpu") -> dict[str, torch.Tensor]:
    from gnn.exporters.fx import placeholder_name

    hints = graph.dim_hints
    out = {}
    for v in graph.values_of_kind("input"):
        shape = v.concrete_shape(hints)
        dtype = dtype_from_name(v.dtype)
        out[placeholder_name(v.name)] = (torch.zeros if not dtype.is_floating_point else torch.randn)(
            shape, dtype=dtype, device=device
        )
    return out


def to_onnx_model(graph: Graph, weights: dict[str, torch.Tensor] | None = None, memory_budget: int | None = None):
    """Return an ``onnx.ModelProto`` (weights included) for the graph."""
    check_fits(graph, memory_budget)
    if any(n.op.startswith(ops.PREFIX_ONNX) for n in graph.nodes) or graph.meta.get("origin") == "onnx":
        from gnn.exporters.onnx_native import to_onnx_native

        return to_onnx_native(graph, weights)
    return _via_torch_onnx(graph, weights)


def _via_torch_onnx(graph: Graph, weights):
    from gnn.exporters.fx import to_graph_module

    # torch.onnx warns at import about torchvision ops it cannot register; not our user's concern.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    gm = to_graph_module(graph, weights)
    inputs = example_inputs(graph)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.export(gm, (), inputs, strict=False)
            paths = _copy_module_paths(gm, ep, graph)
            program = torch.onnx.export(
                ep, (), kwargs=inputs, dynamo=True, optimize=False, verbose=False,
                output_names=[o.name for o in graph.outputs],
            )
    except Exception as e:  # noqa: BLE001 - any lowering failure, reported in one line
        raise ExportError(f"torch.onnx could not lower {graph.name}: {describe(e)}") from None
    model = program.model_proto
    _name_nodes(model, paths, graph.modules)
    model.producer_name = "mad"
    return model


def _copy_module_paths(gm: torch.fx.GraphModule, ep, graph: Graph) -> dict[str, str]:
    """Give the re-traced nodes the module stack of the IR nodes they replay; return name -> path."""
    classes = graph.modules
    src = [n for n in gm.graph.nodes if n.op == "call_function" and "module" in n.meta]
    dst = [n for n in ep.graph.nodes if n.op == "call_function"]
    paths: dict[str, str] = {}
    j = 0
    for node in dst:
        if j < len(src) and node.target == src[j].target:
            path = src[j].meta["module"]
            j += 1
        elif j > 0:
            path = src[j - 1].meta["module"]
        else:
            path = ""
        stack = {}
        parts = path.split(".") if path else []
        for i in range(len(parts)):
            p = ".".join(parts[: i + 1])
            stack[p] = (p, classes.get(p, ""))
        node.meta["nn_module_stack"] = stack
        paths[node.name] = path
    return paths


def _name_nodes(model, paths: dict[str, str], classes: dict[str, str]) -> None:
    """Scope node names by module path (``/model/layers.0/self_attn/MatMul_3``) and record ``namespace``."""
    seen: dict[str, int] = {}
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        m = re.match(r"^%(\S+) :", meta.get("pkg.torch.onnx.fx_node", ""))
        path = paths.get(m.group(1), "") if m else ""
        key = "/" + "/".join(path.split(".") if path else []) + ("/" if path else "") + node.op_type
        seen[key] = seen.get(key, -1) + 1
        node.name = f"{key}_{seen[key]}" if seen[key] else key
        set_metadata(node, "namespace", path)
        set_metadata(node, "module_class", classes.get(path, ""))


def save_onnx(graph: Graph, path: str | os.PathLike, weights=None, memory_budget: int | None = None) -> pathlib.Path:
    """Write ``path`` atomically; weights go to ``<path>.data`` when over protobuf's limit."""
    model = to_onnx_model(graph, weights, memory_budget)
    path = pathlib.Path(path)
    write_with(path, lambda tmp: write_model(model, tmp, path.name + ".data", weight_bytes(graph)))
    return path


def write_model(model, tmp: pathlib.Path, data_name: str, nbytes: int) -> None:
    """Save ``model``; over protobuf's 2 GB limit the weights go to ``data_name`` beside it."""
    import onnx

    if nbytes > PROTOBUF_LIMIT - 64 * 1024**2:
        onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name)
    else:
        onnx.save_model(model, str(tmp))
