"""The worker pool: blocking disk work off the loop thread, results back through the waker.

Workers receive plain values, do one blocking job (open and read a file, validate and
write a JSON upload) and return a value or raise. They never touch a socket, the
selector or a connection. When a job finishes, its callback is queued on the loop with
``call_soon_threadsafe`` and runs there, on the loop thread, with the job's
:class:`reactor.response.Outcome`.

The threads are the pool's own, each taking jobs from one ``queue.SimpleQueue``, rather
than a ``concurrent.futures.ThreadPoolExecutor``: an executor's job carries a ``Future``
with a condition variable, a work item and a semaphore check, and for a job as short as
a WSGI hello that machinery cost more than the job (about 16 µs of CPU a job against
3 µs, measured on one core with 50 jobs in flight). A job here is a tuple on the queue
and an :class:`~reactor.response.Outcome` back.

Jobs submitted during a pass reach the queue together when the pass ends (a ``call_soon``
of :meth:`WorkerPool._flush`), not one by one. A thread woken in the middle of a pass
wants the GIL at once, and takes it at the loop's next ``recv`` or ``send``: each job
then cost about three context switches (measured under ``wrk -c50`` on one core: 3.4 a
request). Queued as the loop is about to wait in ``select``, the pass's jobs run one
after another on a thread that already holds the GIL (0.4 a request).

The queue is bounded: :meth:`WorkerPool.submit` refuses work (returns False) when
``max_pending`` jobs are already queued or running, so a burst turns into quick 503s
instead of unbounded memory and latency. A warning is logged once per saturation
episode, naming how many jobs wait and how long the oldest has ("application pool
saturated: 120 queued, oldest 850 ms"), never a line per refused request; an episode
ends when the backlog has fallen to half the bound, so a queue that hovers at its bound
does not start one after another.

:class:`InlinePool` has the same interface and runs each job on the loop thread itself,
on the next pass: for ``--threads 0``, an application that never blocks.

At a stop, queued jobs are dropped and running ones get a bounded time to finish
(:meth:`WorkerPool.shutdown`); a job stuck on a dead disk must not hold the process.
Clean-up jobs (``bounded=False``: a stream's ``close()``) are not dropped: one still
queued runs on the stopping thread instead, so what it releases is released once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import CancelledError
from typing import Any, Callable, Dict, List, Optional, Tuple

from reactor.loop import EventLoop
from reactor.response import Done, Outcome

log = logging.getLogger("reactor.workers")

Job = Callable[..., Any]  # runs on a worker: plain values in, a value out (or it raises)
#: What log lines call each pool, by its ``name`` (the threads keep the short name).
TITLES = {"worker": "disk", "app": "application"}
#: A job on the queue: the job, its arguments, its callback and its number; None tells a thread to end.
_Item = Optional[Tuple[Job, Tuple[Any, ...], Done, int]]


class WorkerPool:
    """``size`` threads and at most ``max_pending`` jobs queued or running.

    ``name`` names the pool's threads (``reactor-worker_0``...) and, through
    :data:`TITLES`, its log lines: the server has a disk pool (``worker``) and, for
    application code, an ``app`` pool. Threads start with the first jobs, one per job
    until there are ``size``. Implements :class:`reactor.response.Pool`.
    """

    def __init__(self, loop: EventLoop, size: int = 4, max_pending: int = 1024, name: str = "worker") -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.loop = loop
        self.size = size
        self.name = name
        self.title = TITLES.get(name, name)
        self.max_pending = max_pending
        self.pending = 0  # jobs submitted and not yet called back; loop thread only
        self.saturated = False
        self._queue: "queue.SimpleQueue[_Item]" = queue.SimpleQueue()
        self._threads: List[threading.Thread] = []
        #: The number of the job each thread is running (0: none); one slot per thread, each
        #: written by its own thread only, so no lock: :attr:`busy` counts them.
        self._running: List[int] = []
        self._numbers = 0  # the last job number given
        # Loop time each pending job was submitted at, oldest first (dicts keep insertion order).
        self._submitted: Dict[int, float] = {}
        self._cleanups: Dict[int, Tuple[Job, Tuple[Any, ...]]] = {}  # bounded=False, until they run
        self._closed = False
        self._batch: List[_Item] = []  # submitted during this pass; queued when it ends

    @property
    def busy(self) -> int:
        """Jobs running on a thread right now (any thread may read it)."""
        return sum(1 for number in self._running if number)

    def submit(
        self,
        job: Job,
        args: Tuple[Any, ...],
        callback: Done,
        bounded: bool = True,
    ) -> bool:
        """Run ``job(*args)`` on a worker, then ``callback(outcome)`` on the loop thread.

        Returns False, without running anything, when the pool is saturated (unless
        ``bounded`` is False: clean-up that must run whatever the load) or shut down.
        Loop thread only.
        """
        if bounded and self.pending >= self.max_pending:
            if not self.saturated:
                self._saturated()
            return False
        if self._closed:
            return False
        self._numbers = number = self._numbers + 1
        self.pending += 1
        self._submitted[number] = self.loop.now
        if not bounded:
            self._cleanups[number] = (job, args)
        batch = self._batch
        if not batch:
            self.loop.call_soon(self._flush)
        batch.append((job, args, callback, number))
        return True

    def _flush(self) -> None:
        """Hand the pass's jobs to the threads at once, at the end of the pass (see the module docstring)."""
        batch, self._batch = self._batch, []
        put = self._queue.put
        for item in batch:
            put(item)
        if len(self._threads) < self.size:
            for _ in range(min(len(batch), self.size - len(self._threads))):
                self._start_thread()

    def _start_thread(self) -> None:
        index = len(self._threads)
        self._running.append(0)
        thread = threading.Thread(target=self._work, args=(index,), name="reactor-%s_%d" % (self.name, index))
        thread.daemon = True  # a job stuck on a dead disk must not keep the process alive after a stop
        self._threads.append(thread)
        thread.start()

    def _work(self, index: int) -> None:
        """A pool thread: run jobs until told to end, each outcome sent to the loop."""
        get = self._queue.get
        running = self._running
        call_back = self.loop.call_soon_threadsafe
        finished = self._finished
        while True:
            item = get()
            if item is None:
                return
            job, args, callback, number = item
            running[index] = number
            try:
                outcome: Outcome[Any] = Outcome(job(*args))
            except BaseException as exc:  # as an executor would: the callback sees it
                outcome = Outcome(None, exc)
            running[index] = 0
            del item, job, args
            call_back(finished, callback, number, outcome)
            # Nothing of a finished job stays alive while this thread waits for the next: the
            # callback is often a closure over its connection, which must be freed at its close.
            del callback, outcome

    def _saturated(self) -> None:
        """An episode begins: warn once, saying how many jobs wait and how long the oldest has."""
        self.saturated = True
        now = self.loop.now
        oldest_ms = (now - next(iter(self._submitted.values()), now)) * 1000
        log.warning(
            "%s pool saturated: %d queued, oldest %.0f ms; answering 503 with Retry-After",
            self.title,
            max(0, self.pending - self.busy),
            oldest_ms,
        )

    def _finished(self, callback: Done, number: int, outcome: Outcome[Any]) -> None:
        self.pending -= 1
        del self._submitted[number]
        if self._cleanups:
            self._cleanups.pop(number, None)
        if self.saturated and self.pending * 2 <= self.max_pending:
            self.saturated = False
            log.info("%s pool recovered (%d jobs pending)", self.title, self.pending)
        callback(outcome)

    def shutdown(self, wait: bool = True, timeout_s: Optional[float] = None) -> bool:
        """Stop accepting jobs and drop the queued ones; wait for the running ones.

        A dropped job's callback gets a cancelled :class:`~reactor.response.Outcome`;
        a dropped clean-up job (``bounded=False``) runs here instead, once, and its
        callback gets what it came to. With ``wait``, blocks until running jobs finish,
        or at most ``timeout_s`` seconds if given. Returns True when no job is left running.
        """
        self._closed = True
        call_back = self.loop.call_soon_threadsafe
        dropped, self._batch = self._batch, []
        while True:
            try:
                dropped.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for item in dropped:
            if item is None:
                continue
            job, args, callback, number = item
            outcome: Outcome[Any] = Outcome(None, CancelledError())
            if self._cleanups.pop(number, None) is not None:  # a clean-up never ran: run it here, once
                try:
                    outcome = Outcome(job(*args))
                except Exception as exc:
                    log.exception("clean-up job %r failed at the stop", job)
                    outcome = Outcome(None, exc)
            call_back(self._finished, callback, number, outcome)
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            for thread in self._threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.busy == 0


class InlinePool:
    """A :class:`reactor.response.Pool` without threads: each job runs on the loop thread, on the next pass.

    For ``--threads 0`` (an application that never blocks): a stream's blocks and its
    ``close()`` are made where everything else is, with no hand-off. Running on the next
    pass, not inside :meth:`submit`, keeps the rule that a call down never calls back up
    synchronously. It is never saturated; after :meth:`shutdown` it refuses jobs.
    """

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        self.closed = False

    def submit(self, job: Job, args: Tuple[Any, ...], callback: Done, bounded: bool = True) -> bool:
        if self.closed:
            return False
        self.loop.call_soon(self._run, job, args, callback)
        return True

    @staticmethod
    def _run(job: Job, args: Tuple[Any, ...], callback: Done) -> None:
        try:
            outcome: Outcome[Any] = Outcome(job(*args))
        except Exception as exc:
            outcome = Outcome(None, exc)
        callback(outcome)

    def shutdown(self, wait: bool = True, timeout_s: Optional[float] = None) -> bool:
        self.closed = True
        return True
