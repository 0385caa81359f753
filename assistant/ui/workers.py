"""The app's work in worker processes, so that one session can never stall the others.

Each session's imports, edits, exports and comparisons run in a pool of processes sized to the machine
(pebble's ``ProcessPool``: a task past its time limit is killed with its process, and the pool starts a fresh
one); the language model runs in a pool of its own, one process that keeps the model loaded.  The graph a task
reads is sent to it and the graph it makes comes back, so a task that fails, or is killed at the limit, leaves
the session's graph as it was; an error raised in a worker comes back as itself.

The limit is :data:`REQUEST_SECONDS` per request (``MAD_REQUEST_SECONDS`` in the environment sets it).  Workers
are forked from a ``forkserver`` that has imported torch and transformers once (:data:`PRELOAD`): never from the
app's own threads, without importing the app (Gradio) again, and a worker that replaces a killed one is ready at
once.
"""

from __future__ import annotations

import atexit
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout

from gnn.errors import MadError

REQUEST_SECONDS = 120.0
ENV = "MAD_REQUEST_SECONDS"
PRELOAD = ["gnn.importers.hf", "gnn.sources", "gnn.validate", "gnn.edits"]  # what every worker starts with


def request_seconds() -> float:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return REQUEST_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise MadError(f"{ENV}={raw!r} is not a positive number of seconds (default {REQUEST_SECONDS:.0f})")
    return value


class TimeLimit(MadError):
    """A request stopped at the time limit."""


class Workers:
    """A pool of ``size`` worker processes; :meth:`call` runs a module-level function in one of them."""

    def __init__(self, size: int):
        self.size = size
        self.pool = self._start()

    def _start(self):
        import multiprocessing

        from pebble import ProcessPool

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # (not "__main__": the app's module stays out of the workers)
        pool = ProcessPool(max_workers=self.size, context=context)
        for _ in range(self.size):
            pool.schedule(_warm)
        return pool

    def call(self, fn, *args, seconds: float | None = None):
        """``fn(*args)`` in a worker; past ``seconds`` (default :func:`request_seconds`) it is killed and
        :class:`TimeLimit` raised.  An exception raised by ``fn`` is raised here."""
        from concurrent.futures.process import BrokenProcessPool

        from pebble import ProcessExpired

        limit = request_seconds() if seconds is None else seconds
        try:
            future = self.pool.schedule(fn, args=args, timeout=limit)
            return future.result()
        except BrokenProcessPool:  # workers that cannot start: a fresh pool for the next request
            self.pool = self._start()
            raise MadError("the worker processes stopped; they have been restarted, try again") from None
        except FutureTimeout:
            raise TimeLimit(f"that took longer than the {limit:.0f} s limit and was stopped; nothing changed "
                            f"({ENV} sets the limit)") from None
        except ProcessExpired as e:  # killed from outside, or out of memory
            raise MadError(f"the worker doing that stopped ({e}); nothing changed") from None

    def close(self) -> None:
        self.pool.stop()
        self.pool.join(timeout=10)


_pools: dict[str, Workers] = {}
_lock = threading.Lock()


def pool(name: str = "work") -> Workers:
    """The process's pool ``work`` (imports, edits, exports: one process per core) or ``language`` (the
    language model: one process), started on first use."""
    with _lock:
        if name not in _pools:
            _pools[name] = Workers((os.cpu_count() or 1) if name == "work" else 1)
        return _pools[name]


@atexit.register
def close() -> None:
    with _lock:
        for workers in _pools.values():
            workers.close()
        _pools.clear()


# -- the tasks (run in a worker: module level, so that they can be sent) -----------------------------------------


def _warm() -> None:
    """Nothing: scheduled once per worker as the pool starts, so the workers (forked from the forkserver, which
    has imported :data:`PRELOAD`) are up before the first request."""


def load(source: str, overrides: dict):
    """A source read into a graph, and its validation report."""
    from gnn.sources import load as read
    from gnn.validate import validate

    graph = read(source, overrides)
    return graph, validate(graph)


def apply(graph, program):
    from gnn.edits import apply_program

    return apply_program(graph, program)


def export(graph, outputs: dict, extras=None):
    from gnn.sources import export as write

    return write(graph, outputs, extras=extras)


def recipe(graph, program: dict):
    from gnn.edits.recipe import check

    return check(graph, program)


_assistants: dict = {}


def interpret(llm, graph, text: str):
    """The language model's outcome for ``text`` on ``graph`` (the model loaded once per worker)."""
    if llm not in _assistants:
        from assistant.interpret import Assistant

        _assistants[llm] = Assistant(llm, log=lambda *a: None)
    return _assistants[llm].interpret(graph, text)


class Language:
    """The language model as the session sees it (``interpret(graph, text)``), run in the language pool."""

    def __init__(self, llm: str | None = None):
        self.llm = llm

    def interpret(self, graph, text: str):
        return pool("language").call(interpret, self.llm, graph, text)
