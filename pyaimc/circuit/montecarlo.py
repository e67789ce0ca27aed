"""Monte-Carlo over device draws: one executor interface, local processes or a Dask cluster.

Every Monte-Carlo task is a picklable top-level function applied to a picklable argument that
carries its own :class:`numpy.random.SeedSequence` (spawned from the caller's generator by
:func:`task_seeds`). The result therefore depends only on the task, never on where or in which
order it runs: a local process pool, the calling process, and a Dask cluster give identical
results.

>>> with get_executor(None, max_workers=2) as ex:                      # doctest: +SKIP
...     results = list(ex.map(simulate_one, tasks))
>>> with get_executor("tcp://10.0.0.5:8786") as ex:                     # doctest: +SKIP
...     results = list(ex.map(simulate_one, tasks))
"""

from __future__ import annotations

import collections
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import numpy as np

#: Seconds to wait for a Dask scheduler to answer before giving up.
DASK_CONNECT_TIMEOUT = 30.0


def task_seeds(rng: np.random.Generator, n: int) -> list[np.random.SeedSequence]:
    """``n`` independent seed sequences for Monte-Carlo tasks, drawn from ``rng``.

    The root entropy is drawn from ``rng`` (so the same generator state gives the same seeds) and
    the children are spawned from it: statistically independent streams, one per task.
    """
    if int(n) < 0:
        raise ValueError(f"number of tasks must be >= 0, got {n}")
    root = np.random.SeedSequence(rng.integers(0, 2**63, size=4).tolist())
    return root.spawn(int(n))


class Executor:
    """What Monte-Carlo sweeps need from an executor: an ordered ``map`` and ``close``.

    Use as a context manager; ``map`` yields results in the order of the inputs, each as soon as it
    and all before it are done (so a progress bar can follow).
    """

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers or connections (idempotent)."""

    def abort(self) -> None:
        """Stop at once: cancel what has not run and end running workers (after an error or a
        signal); default :meth:`close`."""
        self.close()

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SerialExecutor(Executor):
    """Run tasks one after another in this process (one worker, or for debugging)."""

    def map(self, fn, items):
        return map(fn, items)

    def __repr__(self) -> str:
        return "SerialExecutor()"


_ENDED_BY_PARENT = False


def _exit_quietly(signum, frame) -> None:
    global _ENDED_BY_PARENT
    _ENDED_BY_PARENT = True
    raise SystemExit(128 + signum)


def _worker_signals() -> None:
    """Workers leave signals to the parent. SIGTERM (the parent ending its workers) raises
    SystemExit: an idle worker exits through Python's own shutdown, quietly (the handler a
    worker inherits from the parent's command raised an error and printed a traceback per
    busy worker) and with its queue locks released (a worker killed outright can leave the
    pool's queue locked and the parent waiting for it at exit); a busy one once its task has
    cleaned up (:func:`_run_task`). Ctrl-C in a terminal reaches the parent, which ends its
    workers."""
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_task(fn: Callable[[Any], Any], item: Any) -> Any:
    """Run one task in a worker; a worker ended by its parent leaves once the task has cleaned up.

    SIGTERM raises SystemExit inside the task, so its ``finally`` blocks and context managers
    (temporary folders, ngspice child processes) clean up; the pool's worker loop would then
    catch it as the task's error and take the next task, so the worker leaves here instead (it
    holds no queue lock while in a task).
    """
    try:
        return fn(item)
    except BaseException:
        # whatever the clean-up raised on the way out (a SystemExit, or an error in a
        # ``finally``): once the parent has ended the worker, it leaves
        if not _ENDED_BY_PARENT:  # the task's own error (its own exit too), as any other
            raise
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # os._exit does not
            except (OSError, ValueError):
                pass
        os._exit(128 + signal.SIGTERM)


def _in_order(futures: list) -> Iterator[Any]:
    """The futures' results in order, each as soon as it is done; a result is let go once
    yielded (a sweep's results need not all stay in memory)."""
    pending = collections.deque(futures)
    futures.clear()
    while pending:
        yield pending.popleft().result()


class LocalExecutor(Executor):
    """A pool of local worker processes (:class:`concurrent.futures.ProcessPoolExecutor`).

    Parameters
    ----------
    max_workers : int, optional
        Worker processes; default ``os.cpu_count()``.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and int(max_workers) < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = int(max_workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn, items):
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.max_workers, initializer=_worker_signals)
        # not the pool's own map: its result generator cancels the pending futures when an
        # error or a signal leaves it, and on Python 3.11 the pool's manager thread then raises
        # (a traceback on stderr) marking those cancelled futures broken as abort() ends the
        # workers. Pending work is dropped by abort() instead.
        futures = [self._pool.submit(_run_task, fn, item) for item in items]
        return _in_order(futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        if self._pool is None:
            return
        # a failed or interrupted sweep must not leave workers computing (or orphaned): end
        # them, then reap them
        workers = list(getattr(self._pool, "_processes", {}).values())
        # no cancel_futures: the pool's manager thread marks every pending future broken when
        # its workers end, and on Python 3.11 it raises (a traceback on stderr) for a future
        # this thread has cancelled meanwhile
        self._pool.shutdown(wait=False)
        for proc in workers:
            if proc.is_alive():
                proc.terminate()
        for proc in workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._pool = None

    def __repr__(self) -> str:
        return f"LocalExecutor(max_workers={self.max_workers})"


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster, reached through its scheduler address.

    The workers must be able to import pyaimc (install it in the workers' environment).

    Parameters
    ----------
    address : str
        Scheduler address, e.g. ``"tcp://10.0.0.5:8786"``.
    timeout : float
        Seconds to wait for the scheduler.

    Raises
    ------
    ImportError
        dask.distributed is not installed (``pip install pyaimc[dist]``).
    OSError
        The scheduler cannot be reached within ``timeout``.
    """

    def __init__(self, address: str, timeout: float = DASK_CONNECT_TIMEOUT) -> None:
        try:
            from dask.distributed import Client
        except ImportError as err:
            raise ImportError("a Dask scheduler address needs dask.distributed "
                              "(pip install 'pyaimc[dist]')") from err
        self.address = str(address)
        try:
            self.client = Client(self.address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise OSError(f"cannot reach the Dask scheduler at {self.address} within "
                          f"{timeout:g} s: {err}") from None

    def map(self, fn, items):
        # pure=False: equal arguments are still separate tasks (no result sharing by hash).
        futures = self.client.map(fn, list(items), pure=False)
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
            self.client = None

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r})"


def get_executor(scheduler: str | None = None, max_workers: int | None = None) -> Executor:
    """The executor for Monte-Carlo tasks.

    Parameters
    ----------
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:port``). None: local processes.
    max_workers : int, optional
        Local worker processes (default ``os.cpu_count()``); 1 runs the tasks in this process.
        Ignored with a scheduler (the cluster has its own workers).

    Returns
    -------
    Executor
        :class:`DaskExecutor`, :class:`LocalExecutor` or :class:`SerialExecutor`.
    """
    if scheduler:
        return DaskExecutor(scheduler)
    if max_workers is not None and int(max_workers) == 1:
        return SerialExecutor()
    return LocalExecutor(max_workers)
