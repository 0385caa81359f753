"""Where evaluations run, behind one interface: ``map(fn, proposals, seed)`` -> results in order, ``workers``,
``close()``.

* :class:`Local`: a process pool on this machine (``concurrent.futures``);
* :class:`Ray`: tasks on a Ray cluster (``pip install .[ray]``; ``address`` of a running cluster, or a local one
  started for the search). Ray schedules, retries and spreads them; MAD has no scheduler of its own.
"""

from __future__ import annotations

from gnn.errors import MadError


class Local:
    def __init__(self, workers: int):
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers)

    def map(self, fn, proposals: list, seed: int) -> list:
        return list(self._pool.map(fn, proposals, [seed] * len(proposals)))

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class Ray:
    def __init__(self, workers: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise MadError("the Ray executor needs Ray: pip install '.[ray]'") from None
        self._ray, self.workers = ray, workers
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        self._remote = ray.remote(_call)

    def map(self, fn, proposals: list, seed: int) -> list:
        return self._ray.get([self._remote.remote(fn, p, seed) for p in proposals])

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _call(fn, proposal, seed):
    return fn(proposal, seed)


def make(name: str, workers: int, address: str | None = None):
    if name == "local":
        return Local(workers)
    if name == "ray":
        return Ray(workers, address)
    raise MadError(f"unknown executor `{name}`; executors are: local, ray")
