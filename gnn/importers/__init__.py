"""Importers: model sources -> :class:`~gnn.ir.Graph`, registered by name (``IMPORTERS``).

Each importer says which sources it reads (``accepts``) and whether it takes Hugging Face
config overrides and trace options; :func:`gnn.sources.load` asks them in order.  The
importer modules load lazily: torch.export and onnx are imported when a source needs them.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Callable

from gnn.fileio import check_size
from gnn.ir.graph import Graph
from gnn.registry import Registry


@dataclass
class Importer:
    name: str
    accepts: Callable[[str, pathlib.Path], bool]  # (the source as given, as a path) -> whether this reads it
    read: Callable[..., Graph]
    configurable: bool = False  # takes config overrides (--set) and trace options: a Hugging Face config


IMPORTERS: Registry = Registry(lambda name, read, accepts, configurable=False: Importer(name, accepts, read, configurable))
register = IMPORTERS.register


@register("hf", accepts=lambda source, path: source.startswith("hf:") or path.is_dir() or path.name == "config.json",
          configurable=True)
def _read_hf(source: str, overrides=None, head=None, seq_len=16, batch_size=1, max_ops=None) -> Graph:
    from gnn.importers.hf import HFOptions, import_hf

    path = pathlib.Path(source)
    if not source.startswith("hf:") and path.name == "config.json":
        source = str(path.parent)
    return import_hf(source, HFOptions(overrides=overrides or {}, head=head, seq_len=seq_len, batch_size=batch_size,
                                       max_ops=max_ops))


@register("onnx", accepts=lambda source, path: path.suffix.lower() == ".onnx")
def _read_onnx(source: str) -> Graph:
    from gnn.importers.onnx import import_onnx

    return import_onnx(pathlib.Path(source))


@register("json", accepts=lambda source, path: path.suffix.lower() == ".json")
def _read_json_graph(source: str) -> Graph:
    from gnn.ir.serialize import from_json

    path = pathlib.Path(source)
    check_size(path)
    return from_json(path.read_text())
