"""Monte-Carlo executors: seeding, and identical results in this process, local processes, Dask."""

import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest

from pyaimc.circuit.montecarlo import (DaskExecutor, LocalExecutor, SerialExecutor, get_executor,
                                       task_seeds)
from pyaimc.circuit.programming import conductance_window
from pyaimc.circuit.transfer_fit import TransferSetup, fit_transfer, simulate_pattern


def _square(x):
    return x * x


@pytest.fixture(scope="module")
def tasks(shipped_model):
    window = conductance_window(shipped_model, np.random.default_rng(0))
    setup = TransferSetup(model=shipped_model, rows=6, cols=5, r_wire=2.0, v_max=0.2,
                          g_window=window, inputs_per_pattern=4)
    return [(setup, s) for s in task_seeds(np.random.default_rng(1), 4)]


def as_arrays(results):
    return [np.concatenate([r.conductances.ravel(), r.inputs.ravel(), r.currents.ravel()])
            for r in results]


@pytest.fixture(scope="module")
def serial_results(tasks):
    return as_arrays(SerialExecutor().map(simulate_pattern, tasks))


def test_task_seeds_are_reproducible_and_distinct():
    a = task_seeds(np.random.default_rng(3), 5)
    b = task_seeds(np.random.default_rng(3), 5)
    draws_a = [np.random.default_rng(s).random() for s in a]
    draws_b = [np.random.default_rng(s).random() for s in b]
    assert draws_a == draws_b
    assert len(set(draws_a)) == 5
    other = [np.random.default_rng(s).random() for s in task_seeds(np.random.default_rng(4), 5)]
    assert not set(other) & set(draws_a)


def test_tasks_give_the_same_result_when_run_twice(tasks, serial_results):
    again = as_arrays(SerialExecutor().map(simulate_pattern, tasks))
    for x, y in zip(serial_results, again):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(serial_results[0], serial_results[1])


def test_local_process_pool_matches_serial(tasks, serial_results):
    with get_executor(None, max_workers=2) as ex:
        assert isinstance(ex, LocalExecutor)
        local = as_arrays(ex.map(simulate_pattern, tasks))
    for x, y in zip(serial_results, local):
        np.testing.assert_array_equal(x, y)


def test_dask_cluster_on_loopback_matches_serial(tasks, serial_results, shipped_model):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1", dashboard_address=None
                                  ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        with get_executor(cluster.scheduler_address) as ex:
            assert isinstance(ex, DaskExecutor)
            remote = as_arrays(ex.map(simulate_pattern, tasks))
            assert list(ex.map(_square, [1, 2, 3])) == [1, 4, 9]
            via_dask = fit_transfer(shipped_model, 6, 5, 2.0, 0.2, 3, np.random.default_rng(2),
                                    n_heldout=2, inputs_per_pattern=4, executor=ex)
    for x, y in zip(serial_results, remote):
        np.testing.assert_array_equal(x, y)
    in_process = fit_transfer(shipped_model, 6, 5, 2.0, 0.2, 3, np.random.default_rng(2),
                              n_heldout=2, inputs_per_pattern=4, executor=SerialExecutor())
    assert via_dask.to_dict()["ir_drop"] == in_process.to_dict()["ir_drop"]
    assert via_dask.fit["heldout_rel_rms_error"] == in_process.fit["heldout_rel_rms_error"]


def test_executor_choice_and_bad_settings():
    assert isinstance(get_executor(None, max_workers=1), SerialExecutor)
    assert isinstance(get_executor(None, max_workers=3), LocalExecutor)
    assert get_executor(None, max_workers=3).max_workers == 3
    with pytest.raises(ValueError, match="max_workers"):
        LocalExecutor(0)
    with pytest.raises(ValueError, match="number of tasks"):
        task_seeds(np.random.default_rng(0), -1)


def test_unreachable_scheduler_is_a_clear_error():
    pytest.importorskip("dask.distributed")
    with pytest.raises(OSError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        DaskExecutor("tcp://127.0.0.1:9", timeout=1.0)


def _busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return seconds


def test_abort_ends_busy_workers_at_once_without_a_pool_thread_error(monkeypatch):
    """An error while a sweep runs: abort() ends workers in the middle of a task (not after the
    5 s join timeout it falls back to) and the pool's manager thread raises nothing (on Python
    3.11 it raised for futures the pool's own map had cancelled; CI saw it as a traceback)."""
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args.exc_type))
    # the race itself is rare; what opens it is a future cancelled while the pool breaks
    cancelled = []
    cancel = Future.cancel
    monkeypatch.setattr(Future, "cancel", lambda self: cancelled.append(cancel(self)) or cancelled[-1])
    results = []
    start = None
    with pytest.raises(KeyboardInterrupt):
        with LocalExecutor(2) as executor:
            for seconds in executor.map(_busy, [0.2] * 40):
                results.append(seconds)
                if len(results) == 2:
                    start = time.perf_counter()
                    raise KeyboardInterrupt
    aborted_in = time.perf_counter() - start
    time.sleep(0.3)  # the manager thread's last pass
    assert thread_errors == []
    assert not any(cancelled)
    assert aborted_in < 2.0, aborted_in  # tasks run 0.2 s; the fallback join waits 5 s per worker
