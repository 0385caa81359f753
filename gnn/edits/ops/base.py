"""The edit registry: each edit is a dataclass of its parameters with an ``apply``.

Like PEFT's configs, parameters are dataclass fields with defaults, checked in
``__post_init__`` with errors that name the field; an edit plugs in with one
``@register("name")``.  ``apply`` receives a *copy* of the graph (it may change
it in place) and the role map of the graph as it was before the edit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gnn.edits.target import Target
from gnn.errors import EditError
from gnn.ir.graph import Graph
from gnn.registry import Registry
from gnn.roles import RoleMap


def _checked(name: str, cls):
    """An edit class as the registry keeps it: with its op name, and naming only parameters it has."""
    fields = {f.name for f in dataclasses.fields(cls)}
    named = set(cls.prompt_params) | set(cls.choices)
    if not named <= fields:
        raise TypeError(f"edit `{name}` names parameters it lacks: {sorted(named - fields)}")
    cls.op = name
    return cls


EDITS: Registry = Registry(_checked)  # op name -> Edit subclass
register = EDITS.register


@dataclass
class Edit:
    op: ClassVar[str] = ""
    # parameters whose values are a short list (the decoding schema's enums; checked by the edit itself)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    # what the system prompt says of the edit: the parameters it names, and a note on them
    prompt_params: ClassVar[tuple[str, ...]] = ()
    prompt_note: ClassVar[str] = ""
    target: Target = field(default_factory=Target)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Edit":
        data = dict(data)
        op = data.pop("op", None)
        if op not in EDITS:
            raise EditError(f"unknown edit op `{op}`; edits are: {', '.join(sorted(EDITS))}")
        edit_cls = EDITS[op]
        names = {f.name for f in dataclasses.fields(edit_cls)}
        unknown = set(data) - names
        if unknown:
            raise EditError(f"`{op}` has no parameter `{sorted(unknown)[0]}`; it takes {', '.join(sorted(names))}")
        data["target"] = Target.from_dict(data.get("target"))
        try:
            return edit_cls(**data)
        except TypeError as e:
            raise EditError(f"`{op}`: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        out = {"op": self.op}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Target) else value
        return out

    def apply(self, graph: Graph, roles: RoleMap) -> dict[str, Any]:
        """Change ``graph`` (a copy) in place; return extra results (e.g. a peft config)."""
        raise NotImplementedError
