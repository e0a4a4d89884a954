"""One timer per session and a deadline it chases: how every protocol here keeps its time limits.

A session (an HTTP exchange, a WebSocket) is in one state at a time, and each state
may have a time limit. Setting a deadline is a plain assignment (:meth:`Deadline.arm`,
from the loop's time of the pass), done at every change of state, several times per
request; the timer is settled once, when the pass ends and the session waits
(:meth:`Deadline.settle`), and is moved only if it would fire too late. A timer that
fires early (the deadline was pushed back meanwhile) re-arms itself at the deadline;
one that fires with no deadline set does nothing. So a request answered within one pass
touches the loop's timer heap not at all, and pushing the deadline back on every read
of a slow upload is O(1).

The loop's timers are cancelled lazily (see :mod:`reactor.loop`), so moving a timer
earlier is cheap too.
"""

from __future__ import annotations

from typing import Callable, Optional

from reactor.loop import EventLoop, TimerHandle


def _nothing() -> None:
    """What a closed deadline calls: nothing."""


class Deadline:
    """A deadline in loop seconds (``when``, or None for none) and the one timer that enforces it.

    ``expired()`` is called on the loop thread once the loop's time has reached ``when``.
    ``fired(when)``, if given, is told of every firing first, with the deadline as it
    stands (for ``--trace``).
    """

    __slots__ = ("loop", "when", "handle", "expired", "fired")

    def __init__(
        self,
        loop: EventLoop,
        expired: Callable[[], None],
        fired: Optional[Callable[[Optional[float]], None]] = None,
    ) -> None:
        self.loop = loop
        self.when: Optional[float] = None
        self.handle: Optional[TimerHandle] = None
        self.expired = expired
        self.fired = fired

    def arm(self, delay_s: float) -> None:
        """Set the deadline ``delay_s`` seconds after the loop's time of this pass; the timer follows at :meth:`settle`."""
        self.when = self.loop.now + delay_s

    def settle(self) -> bool:
        """Make the timer fire by the deadline, moving it only if it would fire later. True if it moved."""
        when = self.when
        if when is None:
            return False
        handle = self.handle
        if handle is not None:
            if handle.when <= when:
                return False
            handle.cancel()
        self.handle = self.loop.call_at(when, self._fire)
        return True

    def fires_at(self) -> Optional[float]:
        """When the timer will fire (loop seconds), or None if none is set."""
        return None if self.handle is None else self.handle.when

    def cancel(self) -> None:
        """No deadline, no timer (the session ended)."""
        self.when = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def close(self) -> None:
        """Cancel, and let go of the callbacks (they are the session's own bound methods: a reference cycle)."""
        self.cancel()
        self.expired = _nothing
        self.fired = None

    def _fire(self) -> None:
        self.handle = None
        when = self.when
        if self.fired is not None:
            self.fired(when)
        if when is None:
            return
        if self.loop.now < when:
            self.handle = self.loop.call_at(when, self._fire)  # pushed back meanwhile: wait for it
            return
        self.expired()
