"""The event loop: one selector, a ready queue, a timer heap and a wake-up socketpair.

Theory of operation
-------------------
Everything that touches a socket runs on the one thread that calls :meth:`EventLoop.run`.
Each pass of the loop (:meth:`EventLoop.run_once`):

1. works out how long it may sleep: zero if callbacks are ready, else until the
   earliest timer, else forever;
2. calls ``selector.select`` and, for each ready file object, calls the callback
   registered with it as ``key.data(mask)``;
3. moves every timer that is due onto the ready queue;
4. runs the callbacks that were ready when this step began (callbacks added while it
   runs wait for the next pass, so a callback that re-queues itself cannot starve I/O).

Other threads hand work to the loop only through :meth:`EventLoop.call_soon_threadsafe`,
which appends to a deque and writes one byte to the wake-up socketpair so that a
sleeping ``select`` returns at once. The loop knows nothing about HTTP.

Selectors are level-triggered: a socket with unread bytes is reported on every pass
until it is read, so a callback may read once and return without losing anything.
"""

from __future__ import annotations

import collections
import heapq
import logging
import selectors
import socket
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

log = logging.getLogger("reactor.loop")

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class TimerHandle:
    """A callback scheduled at a monotonic time in seconds; :meth:`cancel` to drop it.

    Cancelled timers stay in the heap until they reach its top (lazy deletion), which
    keeps both scheduling and cancelling O(log n).
    """

    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: "TimerHandle") -> bool:
        return self.when < other.when


class Waker:
    """A socketpair that lets another thread interrupt ``select`` (like asyncio's self-pipe)."""

    def __init__(self) -> None:
        self._recv, self._send = socket.socketpair()
        self._recv.setblocking(False)
        self._send.setblocking(False)
        self.pending = False

    def fileno(self) -> int:
        return self._recv.fileno()

    def wake(self) -> None:
        """Make the next (or current) ``select`` return; safe from any thread."""
        if self.pending:
            return
        self.pending = True
        try:
            self._send.send(b"\0")
        except OSError:
            pass  # the buffer is full, so a wake-up is already on its way

    def drain(self, mask: int = 0) -> None:
        """Read and discard pending wake-up bytes (the loop calls this when readable).

        ``pending`` is cleared only after reading. Cleared before, a wake() landing
        between the two would have its byte swallowed here while ``pending`` stayed
        true, and every later wake() would be skipped: the loop would sleep with
        callbacks queued. Cleared after, a wake() that sees ``pending`` still true
        appended its callback before this pass runs the ready queue, so it runs anyway.
        """
        try:
            while self._recv.recv(4096):
                pass
        except OSError:
            pass
        self.pending = False

    def close(self) -> None:
        self._recv.close()
        self._send.close()


class EventLoop:
    """A single-threaded reactor over ``selectors.DefaultSelector`` (or a given selector).

    File objects are registered with a callback as their ``data``; the loop calls
    ``callback(mask)`` when they are ready. Times are ``time.monotonic()`` seconds.
    """

    def __init__(self, selector: Optional[selectors.BaseSelector] = None) -> None:
        self.selector = selector if selector is not None else selectors.DefaultSelector()
        self._ready: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = collections.deque()
        self._timers: List[TimerHandle] = []
        self._waker = Waker()
        self._stopping = False
        self._thread_id: Optional[int] = None
        self.selector.register(self._waker, EVENT_READ, self._waker.drain)
        #: Called with (exception, context string) when a callback raises.
        self.exception_handler: Callable[[BaseException, str], None] = self._default_exception_handler

    time = staticmethod(time.monotonic)

    # -- scheduling ------------------------------------------------------------------

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the next pass. Loop thread only."""
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread soon; safe from any thread."""
        self._ready.append((callback, args))  # deque.append is atomic
        self._waker.wake()

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at monotonic time ``when`` (seconds). Loop thread only."""
        timer = TimerHandle(when, callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay_s: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay_s`` seconds. Loop thread only."""
        return self.call_at(time.monotonic() + delay_s, callback, *args)

    # -- running ---------------------------------------------------------------------

    def run(self) -> None:
        """Run passes until :meth:`stop` is called."""
        self._thread_id = threading.get_ident()
        self._stopping = False
        try:
            while not self._stopping:
                self.run_once()
        finally:
            self._thread_id = None

    def stop(self) -> None:
        """Make :meth:`run` return after the current pass; safe from any thread."""
        self._stopping = True
        self._waker.wake()

    def run_once(self) -> None:
        """One pass: select, dispatch I/O, fire due timers, run ready callbacks."""
        ready = self._ready
        timers = self._timers
        if ready or self._stopping:
            timeout: Optional[float] = 0
        elif timers:
            timeout = max(0.0, timers[0].when - time.monotonic())
        else:
            timeout = None
        for key, mask in self.selector.select(timeout):
            try:
                key.data(mask)
            except Exception as exc:  # one bad callback must not stop the loop
                self.exception_handler(exc, "I/O callback %r" % (key.data,))
        if timers:
            now = time.monotonic()
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                if not timer.cancelled:
                    ready.append((timer.callback, timer.args))
        for _ in range(len(ready)):
            callback, args = ready.popleft()
            try:
                callback(*args)
            except Exception as exc:
                self.exception_handler(exc, "callback %r" % (callback,))

    def close(self) -> None:
        """Release the selector and the waker; registered sockets are not closed."""
        self.selector.unregister(self._waker)
        self._waker.close()
        self.selector.close()

    @property
    def pending_timers(self) -> int:
        """Timers in the heap, cancelled ones included (for the status page and tests)."""
        return len(self._timers)

    @staticmethod
    def _default_exception_handler(exc: BaseException, context: str) -> None:
        log.error("unhandled exception in %s", context, exc_info=exc)
