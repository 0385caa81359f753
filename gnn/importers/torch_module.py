"""Any ``torch.nn.Module`` with example inputs -> :class:`~gnn.ir.Graph`.

Traced with ``torch.export`` (non-strict).  Export runs on fake tensors, so a
module whose parameters live on the meta device imports without a byte of
weights; a module with real weights imports the same way, its weights unread.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from gnn.errors import MadError, SourceError, describe
from gnn.importers.exported import from_exported_program, module_paths, tied_parameters
from gnn.ir.graph import Graph


def import_module(
    module: torch.nn.Module,
    args: tuple = (),
    kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    train: bool | None = False,
) -> Graph:
    """Trace ``module(*args, **kwargs)`` into a graph, in eval mode unless ``train`` (dropout then stays; ``None``:
    each submodule in the mode it is in).  A parameter that does not require grad is marked not trainable."""
    if train is not None:
        module.train(train)
    kwargs = kwargs or {}
    # A module built on the meta device (a stray CPU parameter or two aside) gets meta tensors
    # from its forward too: a torch.tensor(...) without a device would otherwise land on the
    # CPU and clash with the fake weights.
    on_meta = any(t.is_meta for t in list(module.parameters()) + list(module.buffers()))
    try:
        with torch.no_grad(), torch.device("meta") if on_meta else contextlib.nullcontext():
            ep = torch.export.export(module, tuple(args), kwargs, strict=False)
            # decomposition re-runs the forward, so it can fail the same ways
            graph = from_exported_program(
                ep, name=name or type(module).__name__, modules=module_paths(module), tied=tied_parameters(module)
            )
    except MadError:
        raise
    except Exception as e:  # noqa: BLE001 - tracing failures are the user's model's, reported in one line
        raise SourceError(f"torch.export could not trace {type(module).__name__}: {describe(e)}") from None
    shapes = {}
    for key, value in list(enumerate(args)) + list(kwargs.items()):
        if isinstance(value, torch.Tensor):
            shapes[str(key)] = list(value.shape)
    frozen = {name for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}
    for v in graph.parameters:
        if v.target in frozen:
            v.meta["trainable"] = False
    graph.meta.update(source=f"torch:{type(module).__name__}", example_inputs=shapes,
                      module_parameters=sum(p.numel() for p in module.parameters()))
    return graph

