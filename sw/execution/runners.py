"""One interface for sweeps: ``runner.map(fn, items, progress=...)``, on local processes or on Ray.

"Executor" already names the layer backends (``executors.py``), so what spreads
independent work items over workers is a *runner*:

* :class:`SerialRunner`: in this process (one worker; what tests and tiny sweeps use);
* :class:`LocalRunner`: a pool of local worker processes (``concurrent.futures``,
  spawn start method so a worker never inherits a half-initialised simulator);
* :class:`RayRunner`: Ray tasks, on a local Ray instance or a cluster
  (``--ray-address``). Builds are shared through the content-hash cache
  (``~/.cache/accelkit`` or ``$ACCELKIT_CACHE``): on a cluster, point
  ``ACCELKIT_CACHE`` of every node at one shared file system (NFS or similar);
  the cache's entries are written by rename, so concurrent writers are safe.

``fn`` must be picklable (a module-level function, or a ``functools.partial`` of
one); results come back in the order of ``items``.
"""

import os
from concurrent.futures import ProcessPoolExecutor
import multiprocessing

from ...errors import ParameterError, ToolchainError

__all__ = ["RUNNERS", "SerialRunner", "LocalRunner", "RayRunner", "open_runner"]

RUNNERS = ("local", "serial", "ray")


class SerialRunner:
    """Items one after another in this process."""

    name = "serial"
    workers = 1

    def map(self, fn, items, progress=None):
        """``[fn(item) for item in items]``, calling ``progress(done, total)`` after each."""
        items = list(items)
        results = []
        for item in items:
            results.append(fn(item))
            if progress:
                progress(len(results), len(items))
        return results

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalRunner(SerialRunner):
    """A pool of ``workers`` local processes (default: the CPUs this process may use)."""

    name = "local"

    def __init__(self, *, workers=None):
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = available if workers is None else workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ParameterError(f"workers must be a positive integer, not {workers!r}")
        self.workers = workers
        self._pool = None

    def map(self, fn, items, progress=None):
        items = list(items)
        if self.workers == 1 or len(items) <= 1:
            return super().map(fn, items, progress)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        futures = [self._pool.submit(fn, item) for item in items]
        results = []
        for future in futures:
            results.append(future.result())
            if progress:
                progress(len(results), len(items))
        return results

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayRunner(SerialRunner):
    """Ray tasks: a local instance of ``workers`` CPUs, or the cluster at ``address``."""

    name = "ray"

    def __init__(self, *, workers=None, address=None):
        try:
            import ray
        except ImportError:
            raise ToolchainError("--runner ray needs Ray: pip install 'accelkit[ray]'") from None
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ParameterError(f"workers must be a positive integer, not {workers!r}")
        self._ray = ray
        self._owned = not ray.is_initialized()
        if self._owned:
            options = {"address": address} if address else {"num_cpus": workers}
            ray.init(**options, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(num_cpus=1)(_call)

    def map(self, fn, items, progress=None):
        ray = self._ray
        items = list(items)
        fn_ref = ray.put(fn)
        # a few chunks per worker: one task per item would cost Ray's per-task overhead (milliseconds)
        # on every design point, which is about what a point costs to evaluate
        size = max(1, len(items) // (4 * self.workers))
        chunks = [items[at:at + size] for at in range(0, len(items), size)]
        pending = {self._remote.remote(fn_ref, chunk): i for i, chunk in enumerate(chunks)}
        results = [None] * len(chunks)
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                results[index] = ray.get(ref)
                done += len(chunks[index])
                if progress:
                    progress(done, len(items))
        return [result for chunk in results for result in chunk]

    def close(self):
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()


def _call(fn, chunk):
    return [fn(item) for item in chunk]


def open_runner(name="local", *, workers=None, address=None):
    """A runner by name (one of ``RUNNERS``); ``address`` only for Ray."""
    if name not in RUNNERS:
        raise ParameterError(f"unknown runner {name!r}; runners: {', '.join(RUNNERS)}")
    if address is not None and name != "ray":
        raise ParameterError(f"--ray-address {address!r} needs --runner ray, not --runner {name}")
    if name == "serial":
        return SerialRunner()
    if name == "local":
        return LocalRunner(workers=workers)
    return RayRunner(workers=workers, address=address)
