"""Summaries of a graph: parameters, FLOPs, op histogram and a folded outline.

Parameter counts are over unique parameters (tied weights once), the number
``sum(p.numel() for p in model.parameters())`` gives.  FLOPs count a
multiply-add as two and are for the traced input size (``graph.meta
["example_inputs"]``): matmuls and convolutions exactly from their shapes,
elementwise and reduction ops one per output element (a few for softmax and
normalisation), data movement (views, copies, indexing) as zero.
"""

from __future__ import annotations

from collections import Counter
from math import prod

from gnn.ir.families import CONV_OPS, MATMUL_OPS
from gnn.ir.graph import Graph, Node

# Ops that only move or reinterpret data.
_FREE = {
    "view", "_unsafe_view", "reshape", "permute", "expand", "unsqueeze", "squeeze", "slice", "select", "cat",
    "clone", "alias", "_to_copy", "split_with_sizes", "split", "index", "index_select", "gather", "embedding",
    "arange", "full", "full_like", "scalar_tensor", "empty", "empty_strided", "zeros", "ones", "lift_fresh_copy",
    "copy", "constant_pad_nd", "transpose", "t", "repeat", "flip", "roll", "slice_scatter", "select_scatter",
    "index_put", "scatter", "masked_fill", "where", "as_strided", "squeeze_copy", "unsqueeze_copy", "expand_copy",
    "Reshape", "Transpose", "Unsqueeze", "Squeeze", "Slice", "Concat", "Gather", "Shape", "Expand", "Identity",
    "Cast", "Constant", "ConstantOfShape", "Range", "Split", "Flatten", "Where",
}
# Per-element cost of ops that do more than one operation per output element.
_PER_ELEMENT = {"_softmax": 5, "_log_softmax": 5, "native_layer_norm": 5, "LayerNormalization": 5, "Softmax": 5,
                "native_group_norm": 5, "_native_batch_norm_legit_no_training": 4, "gelu": 8, "Gelu": 8}


def _short(op: str) -> str:
    if op.startswith("onnx::"):
        return op[6:]
    return op.split(".")[1]


def node_flops(graph: Graph, node: Node) -> int:
    hints = graph.dim_hints
    shape = lambda name: graph.values[name].concrete_shape(hints)  # noqa: E731
    ins = [i for i in node.inputs]
    name = _short(node.op)
    outs = [o for o in node.outputs if o is not None]
    out_numel = sum(prod(shape(o)) for o in outs) if outs else 0
    if node.op in MATMUL_OPS:
        plus = name in ("addmm", "baddbmm")  # input + a @ b: the product's operands come second
        a = shape(ins[1] if plus else ins[0])
        k = a[-1]
        if name == "Gemm" and node.kwargs.get("transA"):
            k = a[0]
        return 2 * out_numel * k + (out_numel if plus else 0)
    if node.op in CONV_OPS:
        w = shape(ins[1])  # (C_out, C_in / groups, *kernel)
        return 2 * out_numel * prod(w[1:])
    if name == "scaled_dot_product_attention":
        q, k = shape(ins[0]), shape(ins[1])  # (B, H, L, E), (B, H, S, E)
        return 4 * prod(q[:-1]) * k[-2] * q[-1]
    if name in _FREE:
        return 0
    return out_numel * _PER_ELEMENT.get(name, 1)


def flops(graph: Graph) -> int:
    return sum(node_flops(graph, n) for n in graph.nodes)


def human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def op_histogram(graph: Graph) -> dict[str, int]:
    return dict(sorted(Counter(n.op for n in graph.nodes).items(), key=lambda kv: (-kv[1], kv[0])))


_CONTAINERS = {"ModuleList", "ModuleDict", "Sequential"}


def outline(graph: Graph, max_depth: int = 4) -> list[str]:
    """One line per composite, repeated blocks folded into one line (``model.layers.0-31 × LlamaDecoderLayer``)."""
    h = graph.hierarchy
    lines: list[str] = []
    lines.append(f"{graph.name}  {human(graph.num_parameters)} params, {len(graph.nodes)} ops")

    def visit(path: str, depth: int, shown_as: str | None = None) -> None:
        comp = h[path]
        for child in comp.children:
            c = h[child]
            if not c.nodes and not c.parameters:
                continue
            if c.module_class in _CONTAINERS and h.repeat_of(child) is None:
                visit(child, depth, shown_as)  # a ModuleList only holds the blocks: show them in its place
                continue
            rep = h.repeat_of(child)
            if rep is not None:
                if child != rep.paths[0]:
                    continue
                label = rep.label if shown_as is None else shown_as + rep.label[len(path) + 1:]
                each = human(c.num_parameters)
                variants = f", {rep.variants} variants" if rep.variants > 1 else ""
                lines.append(f"{'  ' * depth}{label} × {rep.module_class or '?'}  ({len(rep.indices)} blocks, {each} params each{variants})")
            else:
                label = child if shown_as is None else shown_as + child[len(path) + 1:]
                lines.append(f"{'  ' * depth}{label} × {c.module_class or '?'}  {human(c.num_parameters)} params")
            if depth < max_depth:
                visit(child, depth + 1, None if rep is None and shown_as is None else "")

    visit("", 1)
    return lines


def shared_parameters(graph: Graph) -> list[dict]:
    """Parameters of an ONNX file that several modules read (several ops where the file has no module names).

    ONNX exporters store identical initializers once: torch.onnx gives a freshly initialised model's
    norms one weight of ones, so a count of the file's parameters is short of the source model's by the
    copies it merged.  A tied weight (an embedding and its LM head) is one tensor in the model too, so
    the file cannot tell the two apart; the summary says both counts.
    """
    if graph.meta.get("origin") != "onnx":
        return []
    named = any(n.module for n in graph.nodes)
    places: dict[str, dict[str, None]] = {}
    for node in graph.nodes:
        for name in dict.fromkeys(node.inputs):
            if graph.values[name].kind == "parameter":
                places.setdefault(name, {})[node.module if named else node.id] = None
    hints = graph.dim_hints
    # weights and biases only: a folded buffer (a rotary table or mask, [1, 1, T, D]) is read by every layer
    # in the model as well
    return [{"name": name, "shape": graph.values[name].shape, "numel": graph.values[name].numel(hints),
             "places": list(where), "by": "modules" if named else "ops"}
            for name, where in places.items() if len(where) > 1 and len(graph.values[name].shape) <= 2]


def summarize(graph: Graph) -> dict:
    h = graph.hierarchy
    top = h.top_repeats()
    order = {path: i for i, path in enumerate(graph.modules)}
    return {
        "name": graph.name,
        "source": graph.meta.get("source"),
        "model_class": graph.meta.get("model_class", graph.name),
        "params": graph.num_parameters,
        "trainable_params": graph.num_trainable_parameters,
        # every composite that owns parameters, in the model's order
        "params_by_module": {
            path: h[path].num_parameters
            for path in sorted(h.composites, key=lambda p: order.get(p, len(order)))
            if path and h[path].num_parameters
        },
        "layers": sum(len(r.indices) for r in top),
        "repeats": [
            {"blocks": r.label, "module_class": r.module_class, "count": len(r.indices), "variants": r.variants}
            for r in h.repeats
        ],
        "nodes": len(graph.nodes),
        "ops": op_histogram(graph),
        "flops": flops(graph),
        "example_inputs": graph.meta.get("example_inputs", {}),
        "outline": outline(graph),
        "shared": shared_parameters(graph),
    }


def format_summary(s: dict) -> str:
    trainable = f" ({s['trainable_params']:,} trainable)" if s["trainable_params"] != s["params"] else ""
    lines = [
        f"{s['model_class']}: {s['params']:,} parameters ({human(s['params'])}){trainable}, {s['layers']} repeated blocks, "
        f"{s['nodes']} ops, {human(s['flops'])} FLOPs for inputs {s['example_inputs'] or '(as traced)'}",
        "",
        *s["outline"],
        "",
        "ops: " + ", ".join(f"{op.split('.')[1] if op.startswith('aten.') else op} {n}" for op, n in list(s["ops"].items())[:12]),
    ]
    shared = s.get("shared") or []
    if shared:
        extra = sum(p["numel"] * (len(p["places"]) - 1) for p in shared)
        lines += ["", f"shared parameters: {len(shared)} weight(s) in this file each serve several modules or ops. "
                  "ONNX exporters store identical initializers once (torch.onnx merges a fresh model's norm "
                  "weights, all ones), and a tied weight is one tensor in the model too: if these were separate "
                  f"weights in the source model, it has {s['params'] + extra:,} parameters, {extra:,} more than "
                  "counted here."]
        for p in shared[:6]:
            lines.append(f"  {p['name']} {p['shape']} read by {len(p['places'])} {p['by']}: {', '.join(p['places'][:3])}"
                         + (", ..." if len(p["places"]) > 3 else ""))
        if len(shared) > 6:
            lines.append(f"  ... and {len(shared) - 6} more")
    return "\n".join(lines)
