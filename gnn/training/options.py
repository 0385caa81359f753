"""Command-line options read off a config dataclass: one ``--name`` per field, typed, defaulted and
documented by the field (``metadata["help"]``); a field that is itself a config adds its fields."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing


def add_options(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            add_options(parser, kind, skip)
            continue
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # `int | None`: an int, or left out
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag, help = "--" + f.name.replace("_", "-"), f.metadata.get("help")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help)
        else:
            parser.add_argument(flag, type=kind, default=default, help=help)


def from_options(args: argparse.Namespace, cls, skip: tuple[str, ...] = ()):
    """The config ``add_options`` parsed into ``args`` (skipped fields keep their defaults)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        values[f.name] = from_options(args, hints[f.name], skip) if dataclasses.is_dataclass(hints[f.name]) \
            else getattr(args, f.name)
    return cls(**values)
