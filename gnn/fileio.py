"""Atomic writes: every output appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from typing import Callable


@contextlib.contextmanager
def staged(paths: list[str | os.PathLike]):
    """Yield temp paths beside each target; rename them all into place only if the block succeeds."""
    targets = [pathlib.Path(p) for p in paths]
    temps = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            temps.append(pathlib.Path(tmp))
        yield temps
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with staged([path]) as (tmp,):
        tmp.write_text(text)


def write_with(path: str | os.PathLike, writer: Callable[[pathlib.Path], None]) -> None:
    with staged([path]) as (tmp,):
        writer(tmp)
