"""Registries: what the package looks up by name (edits, role labelers, importers, exporters).

A registry is a dict from name to entry; ``register(name)`` is the decorator that plugs an entry
in, after the registry's own check (an edit's parameters, an importer's wrapping).
"""

from __future__ import annotations

from typing import Callable


class Registry(dict):
    def __init__(self, wrap: Callable | None = None):
        super().__init__()
        self._wrap = wrap  # (name, decorated, **register's options) -> the entry to keep; may refuse

    def register(self, name: str, **options):
        def deco(obj):
            self[name] = self._wrap(name, obj, **options) if self._wrap else obj
            return obj

        return deco
