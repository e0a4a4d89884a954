"""The scoreboard: a small table in shared memory, one slot per worker process.

Apache httpd's name for the same idea. The supervisor maps it (an anonymous
``MAP_SHARED`` mapping) before it forks, so every worker sees the same bytes. Slot
``number - 1`` belongs to worker ``number``; the supervisor fills ``pid`` and
``started`` when it forks and clears the slot when it reaps (a row past the slots keeps
the highest number in use, so a reader scans only that far). The worker writes the rest:

- ``heartbeat``: ``time.monotonic()`` of the last beat, from a loop timer about once a
  second. ``CLOCK_MONOTONIC`` is one clock for the whole machine, so the supervisor can
  compare it with its own; a loop stuck in one callback stops beating, and past
  ``--worker-timeout`` the supervisor kills it.
- ``requests``, ``accepted``: the worker's own counters, for the status page of
  whichever worker answers; written on each beat.
- ``open`` and ``taking``: its open connections, and whether it takes new ones at all
  (0 while booting, out of descriptors, draining or stopping), written at once on every
  accept, close and change, for :class:`AcceptGate`.
- ``retire``: set once when the worker has served its ``--max-requests`` and asks to be
  replaced (it then signals the supervisor, which reads the flag).

Every field is one aligned 8-byte store and load (native ``q``/``d`` memoryviews copy
whole words), so a reader never sees half a number; a slot read while it is being
written may mix two beats' counters, which is fine for a status page and for the gate.
Nothing here knows HTTP; it imports nothing of ours.

Connection-aware accepting
--------------------------
All workers accept from one listener, and whichever is idle in ``select`` first takes
what is queued. Connections that live long (keep-alive, up to ``--keepalive-max``
requests each) stay with the worker that accepted them, so a burst taken mostly by one
worker stays uneven. :class:`AcceptGate` is nginx's ``accept_disabled`` made to compare
with the peers: a worker holding more than :data:`ACCEPT_SLACK` connections over the
least-loaded live peer that takes connections stops accepting (takes its listener out
of the selector) and looks again a few milliseconds later or when one of its own
connections closes. The least-loaded worker never finds a peer with fewer, so it never
defers; a peer whose heartbeat is stale or whose slot is cleared does not count.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import time
from typing import Iterator, Optional

#: Slots in the table: twice :data:`MAX_WORKERS`, because a rolling reload runs the old
#: and the new workers side by side for a moment.
SLOTS = 256
MAX_WORKERS = SLOTS // 2
_WORDS = 8  # 8-byte fields per slot: 64 bytes, one cache line, so two workers never write the same line
# Field indices within a slot; pid..taking are what a Slot shows; retire is the worker's request to go.
_PID, _STARTED, _HEARTBEAT, _REQUESTS, _ACCEPTED, _OPEN, _TAKING, _RETIRE = range(8)
_HIGH = SLOTS * _WORDS  # the row past the slots: the highest worker number claimed

#: Connections a worker may hold over the least-loaded peer before it defers accepting.
#: 1 keeps two workers' counts within 2 of each other (8/8 or 9/7 of 16). With 0, one of
#: two workers holding an odd number of long-lived connections between them would defer,
#: rechecking, for as long as they last; either way deferrals are rare (docs/workers.md).
ACCEPT_SLACK = 1


@dataclasses.dataclass(frozen=True)
class Slot:
    """One worker's row, as read. Times are ``time.monotonic()`` seconds (0.0: never)."""

    number: int
    pid: int
    started: float
    heartbeat: float
    requests: int
    accepted: int
    open: int
    taking: bool


class Scoreboard:
    """``SLOTS`` rows in anonymous shared memory. Create it before forking."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, (SLOTS + 1) * _WORDS * 8)  # MAP_SHARED | MAP_ANONYMOUS on POSIX
        # Native views: an item is copied as one machine word, never byte by byte.
        self._q = memoryview(self._map).cast("q")
        self._d = memoryview(self._map).cast("d")

    @staticmethod
    def _base(number: int) -> int:
        if not 1 <= number <= SLOTS:
            raise ValueError("worker number %d outside 1..%d" % (number, SLOTS))
        return (number - 1) * _WORDS

    def claim(self, number: int, pid: int) -> None:
        """Supervisor, at fork: the slot is ``pid``'s (the rest is as :meth:`clear` left it)."""
        base = self._base(number)
        self._d[base + _STARTED] = time.monotonic()
        self._q[base + _PID] = pid
        if number > self._q[_HIGH]:
            self._q[_HIGH] = number

    def clear(self, number: int) -> None:
        """Supervisor, at reap: the slot is free."""
        base = self._base(number)
        self._q[base : base + _WORDS] = memoryview(bytes(_WORDS * 8)).cast("q")
        high = self._q[_HIGH]
        while high and not self._q[(high - 1) * _WORDS + _PID]:
            high -= 1
        self._q[_HIGH] = high

    def beat(self, number: int, requests: int, accepted: int, open_connections: int) -> None:
        """Worker: record a heartbeat now, with its counters."""
        base = self._base(number)
        q = self._q
        if not q[base + _PID]:
            q[base + _PID] = os.getpid()  # beat before the supervisor's claim: a fork returns in either order
        q[base + _REQUESTS] = requests
        q[base + _ACCEPTED] = accepted
        q[base + _OPEN] = open_connections
        self._d[base + _HEARTBEAT] = time.monotonic()

    def publish(self, number: int, open_connections: int) -> None:
        """Worker, on every accept and close: its open connections now (one store)."""
        self._q[(number - 1) * _WORDS + _OPEN] = open_connections

    def set_taking(self, number: int, taking: bool) -> None:
        """Worker: whether it takes new connections now (one store)."""
        self._q[(number - 1) * _WORDS + _TAKING] = 1 if taking else 0

    def set_retiring(self, number: int, retiring: bool = True) -> None:
        """Worker: it has served its share (``--max-requests``) and asks to be replaced (one store).

        The supervisor clears the flag when it cannot replace the worker after all.
        """
        self._q[self._base(number) + _RETIRE] = 1 if retiring else 0

    def retiring(self, number: int) -> bool:
        """Supervisor: whether worker ``number`` asked to be replaced."""
        return bool(self._q[self._base(number) + _RETIRE])

    def read(self, number: int) -> Slot:
        base = self._base(number)
        q, d = self._q, self._d
        return Slot(
            number,
            q[base + _PID],
            d[base + _STARTED],
            d[base + _HEARTBEAT],
            q[base + _REQUESTS],
            q[base + _ACCEPTED],
            q[base + _OPEN],
            bool(q[base + _TAKING]),
        )

    def live(self) -> Iterator[Slot]:
        """The slots that belong to a process, in worker-number order."""
        for number in range(1, self._q[_HIGH] + 1):
            slot = self.read(number)
            if slot.pid:
                yield slot

    def fewest_open(self, number: int, beat_since: float) -> Optional[int]:
        """The fewest open connections of a peer of worker ``number`` that takes connections.

        Peers count only with a heartbeat at or after ``beat_since`` (monotonic seconds):
        a stuck loop, a process not yet beating and a cleared slot do not. None: no peer.
        """
        q, d = self._q, self._d
        fewest: Optional[int] = None
        for base in range(0, q[_HIGH] * _WORDS, _WORDS):
            if base == (number - 1) * _WORDS or not q[base + _TAKING] or not q[base + _PID]:
                continue
            if d[base + _HEARTBEAT] < beat_since:
                continue
            held = q[base + _OPEN]
            if fewest is None or held < fewest:
                fewest = held
        return fewest


class AcceptGate:
    """Connection-aware accepting for worker ``number`` on a listener shared with its peers.

    The server calls :meth:`publish` on every accept and close, :meth:`set_taking` when
    its listener goes in or out of the selector for good or for a pause, and
    :meth:`should_defer` after each accept and while deferring. ``stale_s``: a peer
    silent that long (seconds since its heartbeat) is left out, so a stuck loop holds
    no one back for longer. Only a worker under a supervisor has one: a lone process
    pays nothing.
    """

    def __init__(self, scoreboard: Scoreboard, number: int, stale_s: float, slack: int = ACCEPT_SLACK) -> None:
        scoreboard._base(number)  # raises ValueError for a number outside the table
        self._scoreboard = scoreboard
        self.number = number
        self.stale_s = stale_s
        self.slack = slack

    def publish(self, open_connections: int) -> None:
        self._scoreboard.publish(self.number, open_connections)

    def set_taking(self, taking: bool) -> None:
        self._scoreboard.set_taking(self.number, taking)

    def should_defer(self, open_connections: int) -> bool:
        """True when a live peer that takes connections holds more than ``slack`` fewer."""
        if open_connections <= self.slack:
            return False  # no peer can hold fewer than none: skip the scan
        fewest = self._scoreboard.fewest_open(self.number, time.monotonic() - self.stale_s)
        return fewest is not None and open_connections > fewest + self.slack


@dataclasses.dataclass(frozen=True)
class WorkerIdentity:
    """Who this process is under a supervisor: its number and the shared table."""

    number: int
    scoreboard: Scoreboard


_this_worker: Optional[WorkerIdentity] = None


def set_this_worker(identity: Optional[WorkerIdentity]) -> None:
    """Called once in a freshly forked worker, before it serves anything."""
    global _this_worker
    _this_worker = identity


def this_worker() -> Optional[WorkerIdentity]:
    """This process's identity under a supervisor, or None for a lone process (``--workers 1``)."""
    return _this_worker
