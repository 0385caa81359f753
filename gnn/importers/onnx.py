"""ONNX files -> :class:`~gnn.ir.Graph`.

Weights are never read (external data is not loaded).  Value types come from
ONNX shape inference; ``dim_param`` names stay symbolic dims.  The hierarchy
comes from each node's ``namespace`` metadata (written by MAD and by
``torch.onnx``), else from a ``/``-scoped node name
(``/model/layers.0/self_attn/MatMul``); a graph with neither is flat.

ONNX ops with an ATen op of the same meaning become that op (:data:`ONNX_TO_ATEN`);
the rest keep their ONNX name, ``onnx::MatMul``, with their ONNX attributes.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from gnn.errors import SourceError, UnsupportedOpError, describe
from gnn.fileio import check_size
from gnn.ir import ops
from gnn.ir.graph import Graph, Node, Output, Value
from gnn.ir.onnx_ops import DTYPES, ONNX_TO_ATEN, encode_data, type_of

# Small constants (shapes, axes, scalars) are kept in the graph: reshapes and
# ONNX shape inference need their values; weights are never stored.
MAX_INLINE = 1024

# -- reading ----------------------------------------------------------------------


def _attr_value(attr, where: str) -> Any:
    import onnx

    kind = attr.type
    A = onnx.AttributeProto
    if kind == A.INT:
        return int(attr.i)
    if kind == A.FLOAT:
        return float(attr.f)
    if kind == A.STRING:
        return attr.s.decode("utf-8", "replace")
    if kind == A.INTS:
        return [int(i) for i in attr.ints]
    if kind == A.FLOATS:
        return [float(f) for f in attr.floats]
    if kind == A.STRINGS:
        return [s.decode("utf-8", "replace") for s in attr.strings]
    if kind == A.TENSOR:
        arr = onnx.numpy_helper.to_array(attr.t)
        if arr.size > MAX_INLINE:
            raise UnsupportedOpError(f"attribute `{attr.name}` at {where} holds a {arr.size}-element tensor")
        return {"tensor": {"dtype": DTYPES.get(attr.t.data_type, "float32"), "shape": list(arr.shape), "data": encode_data(arr)}}
    raise UnsupportedOpError(
        f"attribute `{attr.name}` of type {A.AttributeType.Name(kind)} at {where} (sub-graphs such as If/Loop bodies are not supported)"
    )


def _scopes(node) -> list[tuple[str, str]]:
    """[(module path, module class), ...] from the outermost to the node's own module.

    Read, in order of preference, from MAD's ``namespace``/``module_class``
    metadata, from ``torch.onnx``'s ``pkg.torch.onnx.name_scopes`` and
    ``class_hierarchy`` (whose last entry is the op itself), and from a
    ``/``-scoped node name (``/model/layers.0/self_attn/MatMul``).
    """
    import ast

    meta = {p.key: p.value for p in node.metadata_props}
    if "module_class" in meta and "namespace" in meta:  # written by MAD
        path = meta["namespace"]
        return [(path, meta["module_class"])] if path else []
    if "pkg.torch.onnx.name_scopes" in meta:
        try:
            names = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])
            classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
        except (ValueError, SyntaxError):
            names, classes = [], []
        classes = list(classes) + [""] * (len(names) - len(classes))
        return [(n, c.rsplit(".", 1)[-1]) for n, c in zip(names[:-1], classes[:-1]) if n]
    if meta.get("namespace"):
        ns = meta["namespace"]
        return [(ns.replace("/", ".").strip("."), "")]
    name = node.name or ""
    if "/" in name:
        parts = [p for p in name.split("/")[:-1] if p]
        return [(".".join(parts), "")] if parts else []
    return []


def load_model(path: str | os.PathLike):
    """Read an ONNX file without its external weights; refuse unreadable or oversized files."""
    import onnx

    path = pathlib.Path(path)
    if not path.is_file():
        raise SourceError(f"no such file: `{path}`")
    check_size(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise SourceError(f"`{path}` is not a valid ONNX file (truncated or corrupt?): {type(e).__name__}") from None
    if not model.graph.node and not model.graph.output:
        raise SourceError(f"`{path}` is not a valid ONNX file: it has no graph")
    try:
        onnx.checker.check_model(str(path))  # by path, so external data resolves beside the file
    except Exception as e:  # noqa: BLE001
        raise SourceError(f"`{path}` fails the ONNX checker: {describe(e)}") from None
    return model


def import_onnx(path: str | os.PathLike) -> Graph:
    import onnx

    model = load_model(path)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as e:  # noqa: BLE001
        raise SourceError(f"ONNX shape inference failed on `{path}`: {describe(e)}") from None
    g = inferred.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    types: dict[str, tuple[list, str]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = type_of(vi.type)
        if t is not None:
            types[vi.name] = t
    graph = Graph(name=g.name or pathlib.Path(path).stem)
    graph.meta.update(origin="onnx", source=str(path), opset=opset)
    symbols: set[str] = set()

    def add_value(name: str, shape, dtype, kind, target=None, data=None):
        for d in shape:
            if isinstance(d, str):
                symbols.add(d)
        v = Value(name, list(shape), dtype, kind, target)
        if data is not None:
            v.meta["data"] = data
        graph.values[name] = v
        return v

    inits = {t.name for t in g.initializer}
    for init in g.initializer:
        dtype = DTYPES.get(init.data_type)
        if dtype is None:
            raise SourceError(f"initializer `{init.name}` has unsupported ONNX data type {init.data_type}")
        shape = [int(d) for d in init.dims]
        numel = 1
        for d in shape:
            numel *= d
        is_param = dtype in ("float32", "float16", "bfloat16", "float64") and numel > 1
        data = None
        if not is_param and numel <= MAX_INLINE and init.data_location != onnx.TensorProto.EXTERNAL:
            data = encode_data(onnx.numpy_helper.to_array(init))
        add_value(init.name, shape, dtype, "parameter" if is_param else "constant", init.name, data)
        graph.inputs.append(init.name)
    for vi in g.input:
        if vi.name in inits:
            continue
        t = type_of(vi.type)
        if t is None:
            raise SourceError(f"graph input `{vi.name}` is not a typed tensor")
        add_value(vi.name, t[0], t[1], "input")
        graph.inputs.append(vi.name)

    counts: dict[str, int] = {}
    unsupported: dict[str, str] = {}
    for i, n in enumerate(g.node):
        scopes = _scopes(n)
        path = scopes[-1][0] if scopes else ""
        for scope_path, scope_class in scopes:
            if scope_class or scope_path not in graph.modules:
                graph.modules[scope_path] = scope_class
        node_id = n.name or f"{n.op_type}_{i}"
        counts[node_id] = counts.get(node_id, -1) + 1
        if counts[node_id]:
            node_id = f"{node_id}__{counts[node_id]}"
        where = path or "<root>"
        if n.domain not in ("", "ai.onnx"):
            unsupported.setdefault(f"{n.domain}::{n.op_type}", where)
            continue
        if ops.onnx_schema(f"onnx::{n.op_type}") is None:
            unsupported.setdefault(f"onnx::{n.op_type}", where)
            continue
        attrs = {a.name: _attr_value(a, f"{where} ({n.op_type})") for a in n.attribute}
        if n.op_type == "Constant" and len(n.output) == 1:
            _constant_value(add_value, graph, n, attrs)
            continue
        refs = [{"value": x} if x else None for x in n.input]
        mapping = ONNX_TO_ATEN.get(n.op_type)
        if mapping is not None and mapping.floats_only:
            if any(types.get(x, ([], ""))[1] not in ("float32", "float16", "bfloat16", "float64") for x in n.input if x):
                mapping = None
        if mapping is not None and all(r is not None for r in refs):
            ranks = [len(types.get(x, ([], ""))[0]) for x in n.input]
            args, kwargs = mapping.to_aten(refs, attrs, ranks)
            node = Node(node_id, mapping.op, args, kwargs)
        else:
            node = Node(node_id, f"onnx::{n.op_type}", refs, attrs)
        node.module = path
        node.module_class = graph.modules.get(path, "")
        node.outputs = []
        for out in n.output:
            if not out:
                node.outputs.append(None)
                continue
            t = types.get(out)
            if t is None:
                add_value(out, [], "float32", "activation").meta["unknown_type"] = True
            else:
                add_value(out, t[0], t[1], "activation")
            node.outputs.append(out)
        graph.nodes.append(node)
    if unsupported:
        listed = ", ".join(f"`{op}` at {w}" for op, w in unsupported.items())
        raise UnsupportedOpError(f"unsupported op(s) in `{path}`: {listed}; only standard ONNX ops are read")
    for out in g.output:
        graph.outputs.append(Output(out.name, out.name))
    for node in graph.nodes:
        parts = node.module.split(".") if node.module else []
        for k in range(len(parts) + 1):
            graph.modules.setdefault(".".join(parts[:k]), "")
    graph.modules.setdefault("", "")
    _adopt_scopeless(graph)
    # Symbolic dims run as 1 on the meta device: broadcasting stays valid whatever
    # the real sizes, and ONNX ops are checked symbolically by ONNX inference.
    graph.meta["dim_hints"] = {s: 1 for s in sorted(symbols)}
    graph.invalidate()
    return graph


def _adopt_scopeless(graph: Graph) -> None:
    """torch.onnx leaves some ops without a name scope (the Split of GPT-2's fused q/k/v): an op at the root
    whose producers and readers all lie inside one module belongs to that module, as it did in the model;
    otherwise the module would seem to have two outputs and an edit could not follow it."""
    if not any(node.module for node in graph.nodes):
        return
    returned = {o.value for o in graph.outputs}
    changed = True
    while changed:
        changed = False
        producers, consumers = graph.producers, graph.consumers
        for node in graph.nodes:
            if node.module or any(o in returned for o in node.outputs if o):
                continue
            near = [producers[i].module for i in node.inputs if i in producers]
            near += [c.module for o in node.outputs if o for c in consumers.get(o, [])]
            if not near or not all(near):
                continue
            common = os.path.commonprefix([m.split(".") for m in near])
            if common:
                node.module = ".".join(common)
                node.module_class = graph.modules.get(node.module, "")
                changed = True
    graph.invalidate()


def _constant_value(add_value, graph: Graph, n, attrs) -> None:
    """A Constant node becomes a constant graph input with its (small) data."""
    import onnx

    attr = n.attribute[0]
    name = n.output[0]
    if attr.name == "value":
        arr = onnx.numpy_helper.to_array(attr.t)
        dtype = DTYPES.get(attr.t.data_type, "float32")
    else:
        import numpy as np

        value = attrs[attr.name]
        arr = np.array(value)
        dtype = {"value_int": "int64", "value_ints": "int64", "value_float": "float32", "value_floats": "float32"}.get(
            attr.name, "float32"
        )
    data = encode_data(arr) if arr.size <= MAX_INLINE else None
    kind = "parameter" if data is None else "constant"
    add_value(name, list(arr.shape), dtype, kind, name, data)
    graph.inputs.append(name)
