"""Benchmarks: each writes its results (JSON in ``bench/results``) and a table in ``docs/``."""

from __future__ import annotations

import pathlib
import re


def write_section(doc: pathlib.Path, name: str, text: str, title: str) -> None:
    """Write ``text`` as the section ``name`` of ``doc`` (between ``<!-- name -->`` and ``<!-- /name -->``),
    keeping the other benchmarks' sections; a new file starts with ``title``."""
    old = doc.read_text() if doc.exists() else f"{title}\n"
    block = f"<!-- {name} -->\n{text.rstrip()}\n<!-- /{name} -->"
    pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->", re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
    tmp = doc.with_suffix(doc.suffix + ".tmp")
    tmp.write_text(new)
    tmp.replace(doc)
