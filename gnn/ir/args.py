"""Encoding op arguments as JSON and decoding them back into torch objects.

The encoded form is what the IR stores (see :class:`gnn.ir.graph.Node`):

==================  ===========================================
python              JSON
==================  ===========================================
tensor operand      ``{"value": NAME}``
``torch.float32``   ``{"dtype": "float32"}``
``torch.device``    ``{"device": "cpu"}``
``torch.strided``   ``{"layout": "strided"}``
memory format       ``{"memory_format": "contiguous_format"}``
``inf``/``nan``     ``{"float": "inf"}``
tuple / list        list
==================  ===========================================
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

_LAYOUTS = {str(v).removeprefix("torch."): v for v in (torch.strided, torch.sparse_coo)}
_MEMORY_FORMATS = {
    str(v).removeprefix("torch."): v
    for v in (torch.contiguous_format, torch.channels_last, torch.preserve_format, torch.channels_last_3d)
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_from_name(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


def encode(obj: Any, ref: Callable[[Any], str | None]) -> Any:
    """Encode an fx argument; ``ref(obj)`` names a tensor operand or returns None."""
    name = ref(obj)
    if name is not None:
        return {"value": name}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, (list, tuple)):
        return [encode(o, ref) for o in obj]
    if isinstance(obj, torch.dtype):
        return {"dtype": dtype_name(obj)}
    if isinstance(obj, torch.device):
        return {"device": str(obj)}
    if isinstance(obj, torch.layout):
        return {"layout": str(obj).removeprefix("torch.")}
    if isinstance(obj, torch.memory_format):
        return {"memory_format": str(obj).removeprefix("torch.")}
    if isinstance(obj, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        hint = obj.node.hint
        if hint is not None:
            return hint
    raise TypeError(f"cannot encode argument of type {type(obj).__name__}: {obj!r}")


def decode(obj: Any, lookup: Callable[[str], Any], device: torch.device | None = None) -> Any:
    """Turn encoded arguments back into torch objects; ``lookup`` maps a value name to a tensor.

    ``device`` replaces every encoded device, so a graph traced on the meta device
    runs on the CPU.
    """
    if isinstance(obj, list):
        return [decode(o, lookup, device) for o in obj]
    if not isinstance(obj, dict):
        return obj
    ((key, val),) = obj.items()
    if key == "value":
        return lookup(val)
    if key == "dtype":
        return dtype_from_name(val)
    if key == "device":
        return device if device is not None else torch.device(val)
    if key == "layout":
        return _LAYOUTS[val]
    if key == "memory_format":
        return _MEMORY_FORMATS[val]
    if key == "float":
        return float(val)
    raise ValueError(f"unknown encoded argument {obj!r}")
