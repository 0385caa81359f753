"""Model sources -> graphs, and graphs -> files, through the importer and exporter registries.

A SOURCE is ``hf:<model_type>`` / ``hf:<org>/<name>``, a folder holding a
Hugging Face ``config.json`` (or that file), an ``.onnx`` file, or a graph
``.json`` written by MAD.  Pickled checkpoints are refused unread: unpickling
runs arbitrary code.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from gnn.errors import ExportError, SourceError
from gnn.ir.graph import Graph

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib"}
ACCEPTED = "hf:<model_type>, hf:<org>/<name>, a folder with config.json, an .onnx file or a MAD graph .json"


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["num_hidden_layers=2", "hidden_act=gelu"]`` -> dict; values are JSON where they parse."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SourceError(f"malformed --set `{item}`; expected KEY=VALUE, e.g. --set num_hidden_layers=2")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def load(source: str, overrides: dict[str, Any] | None = None, **options) -> Graph:
    """Read any SOURCE into a graph.

    ``overrides`` (--set) and ``options`` (head, seq_len, batch_size, max_ops) only concern
    Hugging Face configs; a file that is already a graph ignores the options.
    """
    from gnn.importers import IMPORTERS

    path = pathlib.Path(source)
    suffix = path.suffix.lower()
    if not source.startswith("hf:"):
        if suffix in PICKLE_SUFFIXES:
            raise SourceError(
                f"refusing `{path.name}`: {suffix} files are pickles, which run code when loaded; "
                f"pass {ACCEPTED} (weights: .safetensors)"
            )
        if not path.exists():
            raise SourceError(f"no such file or folder: `{source}`; a SOURCE is {ACCEPTED}")
    for importer in IMPORTERS.values():
        if importer.accepts(source, path):
            if importer.configurable:
                return importer.read(source, overrides, **options)
            if overrides:
                raise SourceError(f"--set applies to Hugging Face configs, not to `{path.name}`")
            return importer.read(source)
    raise SourceError(f"cannot read `{path.name}`; a SOURCE is {ACCEPTED}")


# -- exporters ----------------------------------------------------------------------


def export(graph: Graph, outputs: dict[str, str | os.PathLike], weights=None, extras=None) -> list[pathlib.Path]:
    """Write ``{format: path}``; all files appear together or none does."""
    from gnn.exporters import EXPORTERS
    from gnn.fileio import staged

    unknown = [f for f in outputs if f not in EXPORTERS]
    if unknown:
        raise ExportError(f"unknown export format `{unknown[0]}`; choose one of {', '.join(EXPORTERS)}")
    targets = [pathlib.Path(p) for p in outputs.values()]
    with staged(targets) as temps:
        for fmt, tmp, target in zip(outputs, temps, targets):
            EXPORTERS[fmt](graph, tmp, target, weights=weights, extras=extras)
    return targets
