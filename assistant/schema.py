"""The JSON Schema the language model's answers are decoded under.

``gnn/schema/edit.schema.json`` checks the shape of any edit program; decoding needs
more, so that only programs the engine can parse come out: here each edit's
parameters are spelled out from the edit's own dataclass (name, JSON type, the
values an enum-like parameter accepts), roles come from the role vocabulary, and an
answer is one of

* ``{"action": "edit", "edits": [...]}``: a program to run;
* ``{"action": "ask", "question": "..."}``: the request is ambiguous;
* ``{"action": "refuse", "reason": "..."}``: the request cannot be done (the reason
  says what can).
"""

from __future__ import annotations

import dataclasses
import functools
import typing

MAX_EDITS = 4
MAX_TEXT = 200



def _activations() -> list[str]:
    from gnn.edits.ops.activation import activation_names

    return activation_names()


def _json_type(tp) -> dict:
    if isinstance(tp, str):
        tp = {"int": int, "float": float, "str": str, "bool": bool}.get(tp.split(" | ")[0], str)
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return {int: {"type": "integer"}, float: {"type": "number"}, bool: {"type": "boolean"}}.get(tp, {"type": "string"})


def target_schema() -> dict:
    from gnn.vocab import ROLES

    return {"type": "object", "additionalProperties": False, "properties": {
        "layers": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 8},
        "roles": {"type": "array", "items": {"type": "string", "enum": sorted(ROLES)}, "minItems": 1, "maxItems": 6},
        "modules": {"type": "array", "items": {"type": "string", "maxLength": 80}, "minItems": 1, "maxItems": 4},
    }}


def edit_schema(op: str) -> dict:
    from gnn.edits.ops.base import EDITS

    cls = EDITS[op]
    props: dict = {"op": {"const": op}}
    for f in dataclasses.fields(cls):
        if f.name == "target":
            props["target"] = target_schema()
            continue
        schema = dict(_json_type(f.type))
        if f.name in cls.choices:  # a short list of accepted values (others are free strings or numbers)
            schema = {"type": "string", "enum": list(cls.choices[f.name])}
        elif f.name in ("to", "activation") and schema["type"] == "string":
            schema = {"type": "string", "enum": _activations()}
        props[f.name] = schema
    return {"type": "object", "properties": props, "required": ["op"], "additionalProperties": False}


@functools.cache
def answer_schema() -> dict:
    from gnn.edits.ops.base import EDITS

    text = {"type": "string", "maxLength": MAX_TEXT}
    return {"anyOf": [
        {"type": "object", "additionalProperties": False, "required": ["action", "edits"], "properties": {
            "action": {"const": "edit"},
            "edits": {"type": "array", "minItems": 1, "maxItems": MAX_EDITS,
                      "items": {"anyOf": [edit_schema(op) for op in sorted(EDITS)]}}}},
        {"type": "object", "additionalProperties": False, "required": ["action", "question"],
         "properties": {"action": {"const": "ask"}, "question": text}},
        {"type": "object", "additionalProperties": False, "required": ["action", "reason"],
         "properties": {"action": {"const": "refuse"}, "reason": text}},
    ]}


def validate_answer(answer: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``answer`` fits :func:`answer_schema`."""
    import jsonschema

    jsonschema.validate(answer, answer_schema())
