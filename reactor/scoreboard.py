"""The scoreboard: a small table in shared memory, one slot per worker process.

Apache httpd's name for the same idea. The supervisor maps it (an anonymous
``MAP_SHARED`` mapping) before it forks, so every worker sees the same bytes. Slot
``number - 1`` belongs to worker ``number``; the supervisor fills ``pid`` and
``started`` when it forks and clears the slot when it reaps. The worker writes the rest
from a loop timer, about once a second:

- ``heartbeat``: ``time.monotonic()`` of the last beat. ``CLOCK_MONOTONIC`` is one clock
  for the whole machine, so the supervisor can compare it with its own; a loop stuck in
  one callback stops beating, and past ``--worker-timeout`` the supervisor kills it.
- ``requests``, ``accepted``, ``open``: the worker's own counters, for the status page
  of whichever worker answers.

Every field is one aligned 8-byte store, so a reader never sees half a number; a slot
read while it is being written may mix two beats' counters, which is fine for a status
page. Nothing here knows HTTP; it imports nothing of ours.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
import time
from typing import Iterator, Optional

#: Slots in the table: twice :data:`MAX_WORKERS`, because a rolling reload runs the old
#: and the new workers side by side for a moment.
SLOTS = 256
MAX_WORKERS = SLOTS // 2
_SLOT = struct.Struct("=qddqqq")  # pid, started, heartbeat, requests, accepted, open
_SLOT_BYTES = 64  # one cache line each: two workers never write the same line


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


class Scoreboard:
    """``SLOTS`` rows in anonymous shared memory. Create it before forking."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, SLOTS * _SLOT_BYTES)  # MAP_SHARED | MAP_ANONYMOUS on POSIX

    def _offset(self, number: int) -> int:
        if not 1 <= number <= SLOTS:
            raise ValueError("worker number %d outside 1..%d" % (number, SLOTS))
        return (number - 1) * _SLOT_BYTES

    def claim(self, number: int, pid: int) -> None:
        """Supervisor, at fork: the slot is ``pid``'s; it has not beaten yet."""
        _SLOT.pack_into(self._map, self._offset(number), pid, time.monotonic(), 0.0, 0, 0, 0)

    def clear(self, number: int) -> None:
        """Supervisor, at reap: the slot is free."""
        _SLOT.pack_into(self._map, self._offset(number), 0, 0.0, 0.0, 0, 0, 0)

    def beat(self, number: int, requests: int, accepted: int, open_connections: int) -> None:
        """Worker: record a heartbeat now, with its counters."""
        offset = self._offset(number)
        pid, started = struct.unpack_from("=qd", self._map, offset)
        _SLOT.pack_into(
            self._map, offset, pid or os.getpid(), started, time.monotonic(), requests, accepted, open_connections
        )

    def read(self, number: int) -> Slot:
        return Slot(number, *_SLOT.unpack_from(self._map, self._offset(number)))

    def live(self) -> Iterator[Slot]:
        """The slots that belong to a process, in worker-number order."""
        for number in range(1, SLOTS + 1):
            slot = self.read(number)
            if slot.pid:
                yield slot


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
