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
   runs wait for the next pass, so a callback that re-queues itself cannot starve I/O);
5. runs the end-of-pass callbacks (:meth:`EventLoop.add_pass_callback`), for work best
   done once per pass, such as handing a pass's access-log lines to their writer.

The send allowance bounds what one pass copies into sockets for large writes
(:data:`PASS_SEND_BYTES`, a few milliseconds of copying). Copying is the one cost of a
pass that grows with its clients rather than with its events: one compressed file
answered to 200 waiting clients at once is 200 writes of megabytes, and the kernel takes
about 4 MiB into each socket before it pushes back, a second of ``memcpy`` during which
nobody else was served. A transport asks :meth:`EventLoop.grant` before a large send,
and when the allowance is spent it waits for a turn (:meth:`EventLoop.next_turn`), in
order, while the loop goes on to other events; small sends never ask. The allowance is
renewed by the first grant of each pass, and waiting writers are let in a few per pass
by a ready callback that exists only while some wait, so a pass without large sends
costs nothing more.

Other threads hand work to the loop only through :meth:`EventLoop.call_soon_threadsafe`,
which appends to a deque and writes one byte to the wake-up socketpair so that a
sleeping ``select`` returns at once. The loop knows nothing about HTTP.

Timers are cancelled lazily (marked, left in the heap); the loop counts them and
rebuilds the heap when they outnumber the live ones, so connections that close before
their timeouts cannot grow it without bound (see ``docs/robustness.md``).

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

#: Below this many cancelled handles the heap is left alone (rebuilding would cost more).
_MIN_TIMERS_TO_COMPACT = 64
#: Bytes the large writes of one pass may copy into sockets (about 4 ms of copying here).
PASS_SEND_BYTES = 4 * 1024 * 1024
#: Most bytes one :meth:`EventLoop.grant` gives, so that many writers share a pass.
TURN_BYTES = 256 * 1024
#: Turns served per pass: as many as the allowance can feed (the others keep their place).
_TURNS_PER_PASS = PASS_SEND_BYTES // TURN_BYTES


def _nothing(*_args: Any) -> None:
    """The callback of a cancelled timer."""


class TimerHandle:
    """A callback scheduled at a monotonic time in seconds; :meth:`cancel` to drop it.

    Cancelled timers stay in the heap until they reach its top (lazy deletion), which
    keeps both scheduling and cancelling O(log n). The loop counts them and rebuilds
    the heap when they are the majority, so a stream of cancellations (connections
    closing before their timeouts) cannot grow the heap without bound.
    """

    __slots__ = ("when", "callback", "args", "cancelled", "_loop")

    def __init__(
        self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...], loop: Optional["EventLoop"] = None
    ) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self._loop = loop  # set while the timer sits in a loop's heap

    def cancel(self) -> None:
        """Drop the callback; harmless after it ran or was cancelled. Loop thread only."""
        if self.cancelled:
            return
        self.cancelled = True
        self.callback, self.args = _nothing, ()  # what it held (a connection) is freed now, not when it expires
        if self._loop is not None:
            self._loop._timer_cancelled()

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

    ``now`` is the monotonic time read once per pass, right after ``select`` returns
    (libuv's ``uv_now``, nginx's cached ``ngx_current_msec``): deadlines computed from
    it during a pass share one clock read instead of making one each, and are early by
    at most the time the pass has taken so far.
    """

    def __init__(self, selector: Optional[selectors.BaseSelector] = None) -> None:
        self.selector = selector if selector is not None else selectors.DefaultSelector()
        self._ready: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = collections.deque()
        self._timers: List[TimerHandle] = []
        self._cancelled_timers = 0  # cancelled handles still in the heap
        self._waker = Waker()
        self._stopping = False
        self._thread_id: Optional[int] = None
        self._pass_callbacks: List[Callable[[], Any]] = []
        self._allowance = PASS_SEND_BYTES  # what large sends may still copy in the pass of _allowance_at
        self._allowance_at = -1.0  # the pass (its `now`) the allowance belongs to
        self._turns: Deque[Callable[[], Any]] = collections.deque()  # writers waiting for a fresh allowance
        self._serving_turns = False  # _serve_turns is in the ready queue
        self.now = time.monotonic()
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
        timer = TimerHandle(when, callback, args, self)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay_s: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay_s`` seconds. Loop thread only."""
        return self.call_at(time.monotonic() + delay_s, callback, *args)

    def add_pass_callback(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` at the end of every pass, after the ready callbacks. Loop thread only."""
        self._pass_callbacks.append(callback)

    def remove_pass_callback(self, callback: Callable[[], Any]) -> None:
        """Stop calling ``callback`` at the end of every pass. Raises ValueError if it was not added."""
        self._pass_callbacks.remove(callback)

    # -- sharing a pass's copying ------------------------------------------------------

    def grant(self, want_bytes: int) -> int:
        """How many of ``want_bytes`` a large send may copy now: at most :data:`TURN_BYTES`,
        0 when this pass's allowance is spent (then wait with :meth:`next_turn`). Loop thread only."""
        if self._allowance_at != self.now:  # the first large send of this pass: a fresh allowance
            self._allowance_at, self._allowance = self.now, PASS_SEND_BYTES
        allowance = self._allowance
        if allowance <= 0:
            return 0
        given = min(want_bytes, allowance, TURN_BYTES)
        self._allowance = allowance - given
        return given

    def give_back(self, unused_bytes: int) -> None:
        """Return what a :meth:`grant` gave and the kernel did not take. Loop thread only."""
        self._allowance += unused_bytes

    def next_turn(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` in a later pass, after the allowance is renewed: turns are
        served in the order they were asked for, as many per pass as the allowance can
        feed (:data:`PASS_SEND_BYTES` / :data:`TURN_BYTES`). Loop thread only."""
        self._turns.append(callback)
        if not self._serving_turns:  # only while someone waits: an idle pass costs nothing more
            self._serving_turns = True
            self._ready.append((self._serve_turns, ()))

    def _serve_turns(self) -> None:
        """Once a pass while writers wait: queue the next of them for the next pass, in order."""
        turns = self._turns
        ready = self._ready
        for _ in range(min(len(turns), _TURNS_PER_PASS)):
            ready.append((turns.popleft(), ()))
        if turns:
            ready.append((self._serve_turns, ()))  # after them: once per pass
        else:
            self._serving_turns = False

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
        while timers and timers[0].cancelled:  # don't wake up for a cancelled timer
            heapq.heappop(timers)._loop = None
            self._cancelled_timers -= 1
        if ready or self._stopping:
            timeout: Optional[float] = 0
        elif timers:
            timeout = max(0.0, timers[0].when - time.monotonic())
        else:
            timeout = None
        events = self.selector.select(timeout)
        now = self.now = time.monotonic()
        for key, mask in events:
            try:
                key.data(mask)
            except Exception as exc:  # one bad callback must not stop the loop
                self.exception_handler(exc, "I/O callback %r" % (key.data,))
        if timers:
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                timer._loop = None
                if timer.cancelled:
                    self._cancelled_timers -= 1
                else:
                    ready.append((timer.callback, timer.args))
        for _ in range(len(ready)):
            callback, args = ready.popleft()
            try:
                callback(*args)
            except Exception as exc:
                self.exception_handler(exc, "callback %r" % (callback,))
        for callback in self._pass_callbacks:
            try:
                callback()
            except Exception as exc:
                self.exception_handler(exc, "end-of-pass callback %r" % (callback,))

    def run_ready(self) -> None:
        """Run the callbacks queued now, without selecting: a last pass at a stop, so results still arriving are released."""
        for _ in range(len(self._ready)):
            callback, args = self._ready.popleft()
            try:
                callback(*args)
            except Exception as exc:
                self.exception_handler(exc, "callback %r" % (callback,))

    def _timer_cancelled(self) -> None:
        """Count a cancellation; rebuild the heap once most of it is cancelled handles.

        Each rebuild is O(n) and needs n/2 cancellations since the last one, so the
        cost per cancel stays O(1) amortised and the heap at most twice the live timers.
        """
        self._cancelled_timers += 1
        timers = self._timers
        if self._cancelled_timers > _MIN_TIMERS_TO_COMPACT and self._cancelled_timers * 2 > len(timers):
            live = []
            for timer in timers:
                if timer.cancelled:
                    timer._loop = None
                else:
                    live.append(timer)
            heapq.heapify(live)
            timers[:] = live  # in place: run_once may hold a reference to the list
            self._cancelled_timers = 0

    def close(self) -> None:
        """Release the selector and the waker; registered sockets are not closed."""
        self.selector.unregister(self._waker)
        self._waker.close()
        self.selector.close()

    @property
    def pending_timers(self) -> int:
        """Timers in the heap, cancelled ones included (for the status page and tests)."""
        return len(self._timers)

    @property
    def cancelled_timers(self) -> int:
        """Cancelled timers still in the heap (at most about half of ``pending_timers``)."""
        return self._cancelled_timers

    @staticmethod
    def _default_exception_handler(exc: BaseException, context: str) -> None:
        log.error("unhandled exception in %s", context, exc_info=exc)
