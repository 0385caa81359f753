"""Strip an ONNX model of every name and piece of metadata, as if another exporter had written it.

Node names become ``n<i>``, every value (graph inputs and outputs, initializers,
intermediate values) ``v<i>`` in order of first appearance; doc strings, metadata
properties (the module paths MAD and torch.onnx write), local functions, the
producer and the graph name are dropped.  Ops, attributes, shapes and the wiring are kept,
so the model computes the same; only names are gone.

    python -m gnn.training.scramble IN.onnx OUT.onnx
"""

from __future__ import annotations

import sys

import onnx


def scramble(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    names: dict[str, str] = {"": ""}  # an empty name is an omitted optional input

    def rename(name: str) -> str:
        if name not in names:
            names[name] = f"v{len(names) - 1}"
        return names[name]

    for value in list(g.input) + list(g.initializer):
        value.name = rename(value.name)
    for init in g.sparse_initializer:
        init.values.name = rename(init.values.name)
    for i, node in enumerate(g.node):
        node.name = f"n{i}"
        node.doc_string = ""
        del node.metadata_props[:]
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH or attr.type == onnx.AttributeProto.GRAPHS:
                raise ValueError("models with sub-graphs (If/Loop/Scan) are not scrambled")
    for value in g.output:
        value.name = rename(value.name)
    for value in g.value_info:  # inferred shapes stay: they are not names
        value.name = rename(value.name)
        value.doc_string = ""
    g.name = "graph"
    g.doc_string = ""
    del g.metadata_props[:]
    del out.metadata_props[:]
    del out.functions[:]  # local functions would keep module names; exporters inline them for MAD
    out.doc_string = ""
    out.producer_name = ""
    out.producer_version = ""
    out.domain = ""
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m gnn.training.scramble IN.onnx OUT.onnx", file=sys.stderr)
        return 2
    model = onnx.load(args[0])
    onnx.save(scramble(model), args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
