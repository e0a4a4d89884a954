"""The worker pool: blocking disk work off the loop thread, results back through the waker.

Workers receive plain values, do one blocking job (open and read a file, validate and
write a JSON upload) and return a value or raise. They never touch a socket, the
selector or a connection. When a job finishes, its callback is queued on the loop with
``call_soon_threadsafe`` and runs there, on the loop thread, with the
``concurrent.futures.Future``.

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

import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Set, Tuple

from reactor.loop import EventLoop

log = logging.getLogger("reactor.workers")

Job = Callable[..., Any]  # runs on a worker: plain values in, a value out (or it raises)
Done = Callable[["concurrent.futures.Future[Any]"], None]  # runs on the loop thread
#: What log lines call each pool, by its ``name`` (the threads keep the short name).
TITLES = {"worker": "disk", "app": "application"}


class WorkerPool:
    """``size`` threads and at most ``max_pending`` jobs queued or running.

    ``name`` names the pool's threads (``reactor-worker_0``...) and, through
    :data:`TITLES`, its log lines: the server has a disk pool (``worker``) and, for
    application code, an ``app`` pool. Implements :class:`reactor.response.Pool`.
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
        self.busy = 0  # jobs running on a worker right now
        self._busy_lock = threading.Lock()
        self._threads: Set[threading.Thread] = set()  # workers that have run a job
        self.saturated = False
        # Loop time each pending job was submitted at, oldest first (dicts keep insertion order).
        self._submitted: Dict["concurrent.futures.Future[Any]", float] = {}
        self._cleanups: Dict["concurrent.futures.Future[Any]", Tuple[Job, Tuple[Any, ...]]] = {}  # bounded=False
        self._executor = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix="reactor-" + name)

    def submit(
        self,
        job: Job,
        args: Tuple[Any, ...],
        callback: Done,
        bounded: bool = True,
    ) -> bool:
        """Run ``job(*args)`` on a worker, then ``callback(future)`` on the loop thread.

        Returns False, without running anything, when the pool is saturated (unless
        ``bounded`` is False: clean-up that must run whatever the load) or shut down.
        Loop thread only.
        """
        if bounded and self.pending >= self.max_pending:
            if not self.saturated:
                self._saturated()
            return False
        try:
            future = self._executor.submit(self._run, job, args)
        except RuntimeError:  # the executor is shut down
            return False
        self.pending += 1
        self._submitted[future] = self.loop.now
        if not bounded:
            self._cleanups[future] = (job, args)
        call_back = self.loop.call_soon_threadsafe
        future.add_done_callback(lambda done: call_back(self._finished, callback, done))
        return True

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

    def _run(self, job: Job, args: Tuple[Any, ...]) -> Any:
        with self._busy_lock:
            self.busy += 1
            self._threads.add(threading.current_thread())
        try:
            return job(*args)
        finally:
            with self._busy_lock:
                self.busy -= 1

    def _finished(self, callback: Done, future: "concurrent.futures.Future[Any]") -> None:
        self.pending -= 1
        self._submitted.pop(future, None)
        self._cleanups.pop(future, None)
        if self.saturated and self.pending * 2 <= self.max_pending:
            self.saturated = False
            log.info("%s pool recovered (%d jobs pending)", self.title, self.pending)
        callback(future)

    def shutdown(self, wait: bool = True, timeout_s: Optional[float] = None) -> bool:
        """Stop accepting jobs and drop the queued ones; wait for the running ones.

        With ``wait``, blocks until running jobs finish, or at most ``timeout_s``
        seconds if given. Returns True when no job is left running.
        """
        self._executor.shutdown(wait=False, cancel_futures=True)
        for future, (job, args) in list(self._cleanups.items()):
            if future.cancelled():  # a clean-up never ran: run it here, once
                del self._cleanups[future]
                try:
                    job(*args)
                except Exception:
                    log.exception("clean-up job %r failed at the stop", job)
        if wait:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            with self._busy_lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._busy_lock:
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
        future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        try:
            future.set_result(job(*args))
        except Exception as exc:
            future.set_exception(exc)
        callback(future)

    def shutdown(self, wait: bool = True, timeout_s: Optional[float] = None) -> bool:
        self.closed = True
        return True
