"""reactor.workers: jobs on the pool's threads, outcomes back on the loop thread.

The pools are driven by a real :class:`reactor.loop.EventLoop` on the test's thread, so
"on the loop thread" means this thread. Callbacks record what they see and the test
asserts afterwards: an assertion raised inside a loop callback would only be logged.
"""

from __future__ import annotations

import threading
import time
import weakref
from concurrent.futures import CancelledError

import pytest

from reactor.loop import EventLoop
from reactor.workers import InlinePool, WorkerPool


@pytest.fixture
def loop():
    loop = EventLoop()
    yield loop
    loop.close()


def run_until(loop: EventLoop, done, timeout_s: float = 5.0) -> None:
    """Run passes until ``done()``; a timer every 50 ms keeps a pass from waiting forever in ``select``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError("the loop did not get there in %.0f s" % timeout_s)
        timer = loop.call_later(0.05, lambda: None)
        loop.run_once()
        timer.cancel()


def test_jobs_submitted_in_one_pass_run_on_as_many_threads_as_are_idle(loop):
    """Four jobs that wait for each other finish only if four threads run them at once.

    A pass's jobs are queued together when it ends; each must still find an idle thread,
    not wait behind a job that blocks (an application waiting on its database).
    """
    pool = WorkerPool(loop, size=4, name="app")
    together = threading.Barrier(4, timeout=5)
    outcomes = []
    accepted = []

    def job(i):
        together.wait()  # raises BrokenBarrierError if the four never run together
        return i

    def submit_four():
        accepted.extend(pool.submit(job, (i,), outcomes.append) for i in range(4))

    loop.call_soon(submit_four)
    run_until(loop, lambda: len(outcomes) == 4)
    assert accepted == [True] * 4
    assert sorted(outcome.result() for outcome in outcomes) == [0, 1, 2, 3]
    # And again, with the threads started: each of them parked, and must be woken.
    outcomes.clear()
    loop.call_soon(submit_four)
    run_until(loop, lambda: len(outcomes) == 4)
    assert sorted(outcome.result() for outcome in outcomes) == [0, 1, 2, 3]
    assert pool.shutdown(wait=True, timeout_s=5)


def test_jobs_run_on_the_pools_threads_and_callbacks_on_the_loop_thread(loop):
    pool = WorkerPool(loop, size=2, name="app")
    job_threads = []
    callback_threads = []

    def job():
        job_threads.append(threading.current_thread().name)
        return "done"

    def callback(outcome):
        callback_threads.append((threading.get_ident(), outcome.result()))

    assert pool.submit(job, (), callback)
    run_until(loop, lambda: callback_threads)
    assert job_threads == ["reactor-app_0"]
    assert callback_threads == [(threading.get_ident(), "done")]
    assert pool.pending == 0 and pool.busy == 0
    assert pool.shutdown(wait=True, timeout_s=5)


def test_an_idle_thread_keeps_nothing_of_its_last_job(loop):
    """A callback is often a closure over its connection: the thread that ran the job must
    not hold it (or the outcome) while it waits for the next, or a closed connection lives on."""
    pool = WorkerPool(loop, size=1)

    called = []

    class Owner:  # stands for a connection
        def done(self, outcome):
            called.append(outcome.result() is not None)

    owner = Owner()
    value = Owner()
    gone = weakref.ref(owner)
    result_gone = weakref.ref(value)
    assert pool.submit(lambda v: v, (value,), owner.done)
    del owner, value
    run_until(loop, lambda: called)
    assert called == [True]
    deadline = time.monotonic() + 2
    while (gone() is not None or result_gone() is not None) and time.monotonic() < deadline:
        time.sleep(0.001)  # the thread drops its references just after handing the outcome over
    assert gone() is None and result_gone() is None
    assert pool.shutdown(wait=True, timeout_s=5)


def test_an_exception_comes_back_in_the_outcome_and_a_stopped_pool_refuses_jobs(loop):
    pool = WorkerPool(loop, size=2)
    outcomes = []

    def fail():
        raise OSError("the disk is gone")

    assert pool.submit(fail, (), outcomes.append)
    run_until(loop, lambda: outcomes)
    with pytest.raises(OSError, match="the disk is gone"):
        outcomes[0].result()
    assert isinstance(outcomes[0].exception(), OSError) and not outcomes[0].cancelled()
    # The thread that ran the failing job is still there for the next one.
    assert pool.submit(lambda: 7, (), outcomes.append)
    run_until(loop, lambda: len(outcomes) == 2)
    assert outcomes[1].result() == 7 and outcomes[1].exception() is None
    assert pool.shutdown(wait=True, timeout_s=5)
    assert not pool.submit(fail, (), outcomes.append)


def test_a_passs_jobs_reach_the_threads_only_when_the_pass_ends(loop):
    """Submitted in the middle of a pass, a job waits until the pass is over, then runs with the rest of the pass's jobs."""
    pool = WorkerPool(loop, size=1)
    started = threading.Event()
    seen_during_the_pass = []
    outcomes = []

    def job(i):
        started.set()
        return i

    def a_pass():
        for i in range(3):
            pool.submit(job, (i,), outcomes.append)
        # Still inside the pass: a job queued at once would start within microseconds.
        seen_during_the_pass.append(started.wait(0.2))

    loop.call_soon(a_pass)
    run_until(loop, lambda: len(outcomes) == 3)
    assert seen_during_the_pass == [False]
    assert [outcome.result() for outcome in outcomes] == [0, 1, 2]  # one thread: in the order submitted
    assert pool.shutdown(wait=True, timeout_s=5)


def test_shutdown_drops_queued_jobs_runs_queued_cleanups_once_and_waits_a_bounded_time(loop):
    pool = WorkerPool(loop, size=1)
    release = threading.Event()
    running = threading.Event()
    results = {}
    cleanup_threads = []

    def stuck():
        running.set()
        release.wait(5)
        return "finished late"

    def cleanup():
        cleanup_threads.append(threading.get_ident())
        return "released"

    def record(name):
        return lambda outcome: results.setdefault(name, outcome)

    assert pool.submit(stuck, (), record("stuck"))
    run_until(loop, running.is_set)  # the one thread is now busy
    assert pool.submit(lambda: "never", (), record("queued"))
    assert pool.submit(cleanup, (), record("cleanup"), bounded=False)
    loop.call_later(0, lambda: None)
    loop.run_once()  # the pass ends: both are on the queue, behind the stuck job

    started = time.monotonic()
    assert pool.shutdown(wait=True, timeout_s=0.2) is False  # the stuck job still runs
    assert time.monotonic() - started < 2
    assert cleanup_threads == [threading.get_ident()]  # run by the stopping thread, once
    run_until(loop, lambda: "queued" in results and "cleanup" in results)
    assert results["queued"].cancelled()
    with pytest.raises(CancelledError):
        results["queued"].result()
    assert results["cleanup"].result() == "released"
    assert not pool.submit(lambda: "late", (), record("late"))

    release.set()
    run_until(loop, lambda: "stuck" in results)
    assert results["stuck"].result() == "finished late"
    assert cleanup_threads == [threading.get_ident()]
    assert "late" not in results and pool.pending == 0
    for thread in pool._threads:
        thread.join(5)
        assert not thread.is_alive()


def test_the_inline_pool_runs_each_job_on_the_loop_thread_on_the_next_pass(loop):
    pool = InlinePool(loop)
    ran = []
    outcomes = []

    def job(value):
        ran.append(threading.get_ident())
        if value is None:
            raise ValueError("no value")
        return value

    assert pool.submit(job, (1,), outcomes.append)
    assert pool.submit(job, (None,), outcomes.append)
    assert ran == []  # not inside submit: a call down never calls back up at once
    run_until(loop, lambda: len(outcomes) == 2)
    assert ran == [threading.get_ident()] * 2
    assert outcomes[0].result() == 1
    with pytest.raises(ValueError, match="no value"):
        outcomes[1].result()
    assert pool.shutdown() and not pool.submit(job, (2,), outcomes.append)
