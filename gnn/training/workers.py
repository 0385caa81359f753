"""What the builders of datasets and corpora share: a time limit per model type, and spawned worker processes."""

from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def time_limit(seconds: int):
    """Raise ``TimeoutError`` inside the block once ``seconds`` have passed (SIGALRM: a process's main thread)."""

    def alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def spawn_map(work, items: list, workers: int, per_child: int, ordered: bool = False):
    """``work(item)`` for each of ``items`` in ``workers`` spawned processes, yielded as each finishes (in order
    with ``ordered``); each process does at most ``per_child``, so memory a trace leaves behind is given back."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, maxtasksperchild=per_child) as pool:
        yield from (pool.imap if ordered else pool.imap_unordered)(work, items)
