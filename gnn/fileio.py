"""File handling shared by readers and writers: a size limit on inputs, atomic outputs, the cache folder."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile
from typing import Callable

from gnn.errors import SourceError


def cache_dir(name: str) -> pathlib.Path:
    """Where MAD keeps what it can rebuild (``name``: ``llm``, ``dataset``, ...): ``$MAD_CACHE/<name>`` or
    ``~/.cache/mad/<name>``."""
    return pathlib.Path(os.environ.get("MAD_CACHE") or pathlib.Path.home() / ".cache" / "mad") / name


def max_file_bytes() -> int:
    """Inputs larger than this are refused (default 2 GB, protobuf's own limit; ``MAD_MAX_FILE_MB``)."""
    return int(float(os.environ.get("MAD_MAX_FILE_MB", 2048)) * 1e6)


def check_size(path: pathlib.Path) -> None:
    size = path.stat().st_size
    if size > max_file_bytes():
        raise SourceError(
            f"`{path}` is {size / 1e6:.0f} MB, over the {max_file_bytes() / 1e6:.0f} MB limit (set MAD_MAX_FILE_MB to raise it)"
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's private 0600 would outlive the rename
            temps.append(pathlib.Path(tmp))
        yield temps
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike):
    """Yield a temporary folder beside ``target``; it replaces ``target`` (and whatever was there) only if
    the block succeeds, else it is removed."""
    import shutil

    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with staged([path]) as (tmp,):
        tmp.write_text(text)


def write_with(path: str | os.PathLike, writer: Callable[[pathlib.Path], None]) -> None:
    with staged([path]) as (tmp,):
        writer(tmp)
