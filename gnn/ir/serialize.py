"""Deterministic JSON for graphs, checked against ``gnn/schema/graph.schema.json``.

``to_json`` sorts keys and keeps node order, so the same graph always gives the
same bytes; ``from_json(to_json(g)) == g``.
"""

from __future__ import annotations

import functools
import json
import pathlib

from gnn.errors import SourceError
from gnn.ir.graph import Graph, Node, Output, Value

FORMAT, VERSION = "mad-graph", 1
SCHEMA_FILE = pathlib.Path(__file__).resolve().parents[1] / "schema" / "graph.schema.json"


def to_dict(graph: Graph) -> dict:
    values = {}
    for name, v in graph.values.items():
        entry = {"shape": list(v.shape), "dtype": v.dtype, "kind": v.kind}
        if v.target is not None:
            entry["target"] = v.target
        if v.meta:
            entry["meta"] = v.meta
        values[name] = entry
    nodes = []
    for n in graph.nodes:
        entry = {
            "id": n.id,
            "op": n.op,
            "args": n.args,
            "kwargs": n.kwargs,
            "outputs": n.outputs,
            "module": n.module,
            "module_class": n.module_class,
        }
        if n.meta:
            entry["meta"] = n.meta
        nodes.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "inputs": graph.inputs,
        "outputs": [{"name": o.name, "value": o.value} for o in graph.outputs],
        "values": values,
        "nodes": nodes,
        # a list, not an object: the model's module order is the outline's order
        "modules": [[path, cls] for path, cls in graph.modules.items()],
        "meta": graph.meta,
    }


def to_json(graph: Graph, indent: int | None = None) -> str:
    return json.dumps(to_dict(graph), sort_keys=True, indent=indent, allow_nan=False) + "\n"


@functools.cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def check_schema(data) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<top level>"
        raise SourceError(f"graph JSON fails the schema (gnn/schema/graph.schema.json) at {where}: {error.message}")


def from_dict(data) -> Graph:
    if isinstance(data, dict) and data.get("format") == FORMAT and data.get("version") not in (None, VERSION):
        raise SourceError(f"graph JSON is format version {data.get('version')}; this MAD reads version {VERSION}")
    check_schema(data)
    values = {
        name: Value(name, list(v["shape"]), v["dtype"], v["kind"], v.get("target"), dict(v.get("meta", {})))
        for name, v in data["values"].items()
    }
    nodes = [
        Node(
            id=n["id"],
            op=n["op"],
            args=n["args"],
            kwargs=n["kwargs"],
            outputs=n["outputs"],
            module=n["module"],
            module_class=n["module_class"],
            meta=dict(n.get("meta", {})),
        )
        for n in data["nodes"]
    ]
    return Graph(
        name=data["name"],
        values=values,
        nodes=nodes,
        inputs=list(data["inputs"]),
        outputs=[Output(o["name"], o["value"]) for o in data["outputs"]],
        modules={path: cls for path, cls in data["modules"]},
        meta=dict(data.get("meta", {})),
    )


def from_json(text: str) -> Graph:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"not valid JSON ({e}); expected a MAD graph file") from None
    return from_dict(data)
