"""Exporters: graphs -> files, registered by format name (``EXPORTERS``).

An exporter writes one format to a temporary path beside its target; :func:`gnn.sources.export`
renames every file into place only when all of them were written.
"""

from __future__ import annotations

import json
import pathlib

from gnn.ir.graph import Graph
from gnn.registry import Registry

# format -> writer(graph, tmp, target, weights=None, extras=None)
EXPORTERS: Registry = Registry()
register = EXPORTERS.register


@register("json")
def _write_json(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, **_) -> None:
    from gnn.ir.serialize import to_json

    tmp.write_text(to_json(graph))


@register("onnx")
def _write_onnx(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, weights=None, **_) -> None:
    from gnn.exporters.onnx import to_onnx_model, weight_bytes, write_model

    write_model(to_onnx_model(graph, weights), tmp, target.name + ".data", weight_bytes(graph))


@register("explorer")
def _write_explorer(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, **_) -> None:
    from gnn.exporters.explorer import to_explorer

    tmp.write_text(json.dumps(to_explorer(graph)) + "\n")


@register("peft_config")
def _write_peft_config(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, extras=None, **_) -> None:
    tmp.write_text(json.dumps((extras or {})["peft_config"], indent=2, sort_keys=True) + "\n")


@register("code")
def _write_code(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, extras=None, **_) -> None:
    tmp.write_text((extras or {})["code"])  # the recipe's snippet (gnn.edits.recipe), made by the caller


@register("config")
def _write_config(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, extras=None, **_) -> None:
    tmp.write_text(json.dumps((extras or {})["config"], indent=2, sort_keys=True) + "\n")  # the edited config.json
