"""Edits, one module each; importing this package registers them all."""

from gnn.edits.ops import activation, freeze, kv_heads, layers, lora, modules  # noqa: F401 - registration
from gnn.edits.ops.base import EDITS, Edit, register

__all__ = ["EDITS", "Edit", "register"]
