"""Model sources -> graphs, and graphs -> files: the registries the CLI and app use.

A SOURCE is ``hf:<model_type>`` / ``hf:<org>/<name>``, a folder holding a
Hugging Face ``config.json`` (or that file), an ``.onnx`` file, or a graph
``.json`` written by MAD.  Pickled checkpoints are refused unread: unpickling
runs arbitrary code.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Callable

from gnn.errors import ExportError, SourceError
from gnn.fileio import check_size
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


def _load_json_graph(path: pathlib.Path, **_) -> Graph:
    from gnn.ir.serialize import from_json

    check_size(path)
    return from_json(path.read_text())


def _load_onnx(path: pathlib.Path, **_) -> Graph:
    from gnn.importers.onnx import import_onnx

    return import_onnx(path)


def _load_hf(spec: str, overrides=None, head=None, seq_len=16, batch_size=1) -> Graph:
    from gnn.importers.hf import HFOptions, import_hf

    return import_hf(spec, HFOptions(overrides=overrides or {}, head=head, seq_len=seq_len, batch_size=batch_size))


def load(source: str, overrides: dict[str, Any] | None = None, **options) -> Graph:
    """Read any SOURCE into a graph.

    ``overrides`` (--set) and ``options`` (head, seq_len, batch_size) only concern
    Hugging Face configs; a file that is already a graph ignores the options.
    """
    if source.startswith("hf:"):
        return _load_hf(source, overrides, **options)
    path = pathlib.Path(source)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise SourceError(
            f"refusing `{path.name}`: {suffix} files are pickles, which run code when loaded; "
            f"pass {ACCEPTED} (weights: .safetensors)"
        )
    if not path.exists():
        raise SourceError(f"no such file or folder: `{source}`; a SOURCE is {ACCEPTED}")
    if path.is_dir() or path.name == "config.json":
        folder = path if path.is_dir() else path.parent
        return _load_hf(str(folder), overrides, **options)
    if overrides:
        raise SourceError(f"--set applies to Hugging Face configs, not to `{path.name}`")
    if suffix == ".onnx":
        return _load_onnx(path)
    if suffix == ".json":
        return _load_json_graph(path)
    raise SourceError(f"cannot read `{path.name}`; a SOURCE is {ACCEPTED}")


# -- exporters ----------------------------------------------------------------------


def _write_json(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, **_) -> None:
    from gnn.ir.serialize import to_json

    tmp.write_text(to_json(graph))


def _write_onnx(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, weights=None, **_) -> None:
    from gnn.exporters.onnx import to_onnx_model, weight_bytes, write_model

    write_model(to_onnx_model(graph, weights), tmp, target.name + ".data", weight_bytes(graph))


def _write_explorer(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, **_) -> None:
    from gnn.exporters.explorer import to_explorer

    tmp.write_text(json.dumps(to_explorer(graph)) + "\n")


def _write_peft_config(graph: Graph, tmp: pathlib.Path, target: pathlib.Path, extras=None, **_) -> None:
    tmp.write_text(json.dumps((extras or {})["peft_config"], indent=2, sort_keys=True) + "\n")


EXPORTERS: dict[str, Callable] = {"json": _write_json, "onnx": _write_onnx, "explorer": _write_explorer,
                                  "peft_config": _write_peft_config}


def export(graph: Graph, outputs: dict[str, str | os.PathLike], weights=None, extras=None) -> list[pathlib.Path]:
    """Write ``{format: path}``; all files appear together or none does."""
    from gnn.fileio import staged

    unknown = [f for f in outputs if f not in EXPORTERS]
    if unknown:
        raise ExportError(f"unknown export format `{unknown[0]}`; choose one of {', '.join(EXPORTERS)}")
    targets = [pathlib.Path(p) for p in outputs.values()]
    with staged(targets) as temps:
        for fmt, tmp, target in zip(outputs, temps, targets):
            EXPORTERS[fmt](graph, tmp, target, weights=weights, extras=extras)
    return targets
