"""Graph validation: one entry point, one error type.

:func:`validate` checks, in order, that the graph is well formed (every value
read is defined, produced once, in a topological order: a cycle is named), that
every op is in the vocabulary with a legal number of arguments, and then
propagates shapes and dtypes through every node: ATen ops are executed on the
meta device from the recorded input types, ONNX ops through ONNX's per-node
inference.  Like Graphbook, a problem is reported where it happens: the node's
module path, the rule, expected vs got.  Propagation continues from the
*computed* types after a mismatch, so one bad record yields one issue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import torch

from gnn.errors import GraphValidationError, describe
from gnn.ir import ops
from gnn.ir.graph import Graph, Node
from gnn.ir.shape_prop import META, MetaInterpreter


@dataclass
class Issue:
    rule: str  # "dangling", "cycle", "op", "arity", "shape", "dtype", "unused", ...
    message: str
    node: str | None = None
    module: str | None = None
    op: str | None = None
    expected: object = None
    got: object = None

    @property
    def detail(self) -> str:
        """The rule, the message and expected vs got, without where (the graph view shows it at the node)."""
        detail = ""
        if self.expected is not None or self.got is not None:
            detail = f": expected {self.expected}, got {self.got}"
        return f"[{self.rule}] {self.message}{detail}"

    def __str__(self) -> str:
        where = ""
        if self.node is not None:
            where = f"{self.module or '<root>'} ({self.node}: {self.op}): "
        return where + self.detail


@dataclass
class Report:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    checked_nodes: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_if_failed(self) -> None:
        if self.errors:
            raise GraphValidationError(self.errors)


def validate(graph: Graph) -> Report:
    report = Report()
    _check_structure(graph, report)
    if report.errors:  # shapes are meaningless on a malformed graph
        return report
    _propagate(graph, report)
    _check_unused(graph, report)
    return report


def check(graph: Graph) -> Graph:
    """Validate and raise :class:`GraphValidationError` listing every error."""
    validate(graph).raise_if_failed()
    return graph


# -- structure ---------------------------------------------------------------------


def _issue(node: Node, rule: str, message: str, **kw) -> Issue:
    return Issue(rule, message, node=node.id, module=node.module, op=node.op, **kw)


def _check_structure(graph: Graph, report: Report) -> None:
    defined: dict[str, str] = {}  # value -> "input" or producing node id
    for name in graph.inputs:
        if name not in graph.values:
            report.errors.append(Issue("dangling", f"graph input `{name}` has no value entry"))
        defined[name] = "input"
    producer_index = {}
    for i, node in enumerate(graph.nodes):
        for out in node.outputs:
            if out is None:
                continue
            if out in defined:
                report.errors.append(_issue(node, "ssa", f"value `{out}` is produced twice (also by {defined[out]})"))
            defined[out] = node.id
            producer_index[out] = i
            if out not in graph.values:
                report.errors.append(_issue(node, "dangling", f"output `{out}` has no value entry"))
    order_violation = None
    for i, node in enumerate(graph.nodes):
        if not ops.is_known(node.op):
            report.errors.append(_issue(node, "op", "op is not in the vocabulary (docs/ops.md)"))
        for name in node.inputs:
            if name not in defined:
                report.errors.append(_issue(node, "dangling", f"reads `{name}`, which no input or node defines"))
            elif producer_index.get(name, -1) >= i and order_violation is None:
                order_violation = node
        _check_arity(node, report)
    for out in graph.outputs:
        if out.value not in defined:
            report.errors.append(Issue("dangling", f"graph output `{out.name}` refers to undefined `{out.value}`"))
    if order_violation is not None:
        cycle = _find_cycle(graph)
        if cycle:
            first = graph.node_by_id[cycle[0]]
            path = " -> ".join(cycle + [cycle[0]])
            report.errors.append(_issue(first, "cycle", f"the graph has a cycle: {path}"))
        else:
            report.errors.append(
                _issue(order_violation, "order", "node reads a value produced later; nodes must be in topological order")
            )


def _find_cycle(graph: Graph) -> list[str]:
    g = nx.DiGraph()
    for node in graph.nodes:
        g.add_node(node.id)
        for name in node.inputs:
            src = graph.producers.get(name)
            if src is not None:
                g.add_edge(src.id, node.id)
    try:
        return [u for u, _ in nx.find_cycle(g)]
    except nx.NetworkXNoCycle:
        return []


def _check_arity(node: Node, report: Report) -> None:
    if node.op.startswith(ops.PREFIX_ONNX):
        schema = ops.onnx_schema(node.op)
        if schema is None:
            return
        n = len(node.args)
        if not schema.min_input <= n <= schema.max_input:
            report.errors.append(
                _issue(node, "arity", "wrong number of inputs", expected=f"{schema.min_input}..{schema.max_input}", got=n)
            )
        return
    if node.op not in ops.vocabulary():
        return
    schema = ops.aten_overload(node.op)._schema
    positional = [a for a in schema.arguments if not a.kwarg_only]
    required = [a for a in positional if not a.has_default_value()]
    if not len(required) <= len(node.args) <= len(positional):
        report.errors.append(
            _issue(node, "arity", "wrong number of arguments", expected=f"{len(required)}..{len(positional)}", got=len(node.args))
        )
    names = {a.name for a in schema.arguments}
    for key in node.kwargs:
        if key not in names:
            report.errors.append(_issue(node, "arity", f"unknown keyword `{key}`", expected=sorted(names), got=key))


# -- shapes and dtypes ---------------------------------------------------------------


def _propagate(graph: Graph, report: Report) -> None:
    from gnn.ir.onnx_ops import ATEN_TO_ONNX, infer_onnx_node

    hints = graph.dim_hints
    meta = MetaInterpreter(graph)
    # Graphs read from ONNX carry symbolic dims that only ONNX inference reasons about.
    onnx_origin = graph.meta.get("origin") == "onnx"

    for node in graph.nodes:
        report.checked_nodes += 1
        # ops read from ONNX are checked by ONNX inference; ops an edit traced in (meta["traced"]) by torch
        if node.op.startswith(ops.PREFIX_ONNX) or (onnx_origin and node.op in ATEN_TO_ONNX
                                                   and not node.meta.get("traced")):
            for rule, message, expected, got in infer_onnx_node(graph, node):
                report.errors.append(_issue(node, rule, message, expected=expected, got=got))
            continue
        try:
            computed = meta.run_node(node)
        except Exception as e:  # noqa: BLE001 - the op's own message is the explanation
            msg = describe(e)
            if _data_dependent(e):
                report.warnings.append(_issue(node, "shape", f"not checked: data-dependent ({msg})"))
            else:
                report.errors.append(_issue(node, "shape", f"op fails on its recorded inputs: {msg}"))
            continue
        for i, name in enumerate(node.outputs):
            if name is None or i >= len(computed) or not isinstance(computed[i], torch.Tensor):
                continue
            rec, got = graph.values[name], computed[i]
            if list(got.shape) != rec.concrete_shape(hints):
                report.errors.append(
                    _issue(node, "shape", f"output {i} `{name}`", expected=list(rec.shape), got=list(got.shape))
                )
            got_dtype = str(got.dtype).removeprefix("torch.")
            if got_dtype != rec.dtype:
                report.errors.append(_issue(node, "dtype", f"output {i} `{name}`", expected=rec.dtype, got=got_dtype))
            if got.device == META:
                # Go on from what the op really computes (with its strides), so a wrong
                # record is reported once, not again at every node downstream.
                meta.tensors[name] = got


def _data_dependent(e: Exception) -> bool:
    text = f"{type(e).__name__} {e}"
    return any(
        key in text
        for key in ("data-dependent", "DataDependent", "meta tensors", "Cannot copy out of meta", "item()", "_local_scalar_dense", "nonzero")
    )


def _check_unused(graph: Graph, report: Report) -> None:
    read = set(graph.consumers)
    returned = {o.value for o in graph.outputs}
    for name in graph.inputs:
        if name not in read and name not in returned:
            kind = graph.values[name].kind
            report.warnings.append(Issue("unused", f"{kind} `{name}` is never read"))
    for node in graph.nodes:
        live = [o for o in node.outputs if o is not None and (o in read or o in returned)]
        if not live:
            report.warnings.append(_issue(node, "unused", "no output of this node is read"))
