"""Compressed forms of files, shared by every request for the same file version.

Theory of operation
-------------------
Compressing a file costs CPU on the pool and a body in memory; doing it once per request
made 300 clients of one 6 MiB text file cost 300 compressions and 300 copies. Here a
compressed form is made once per *file version* and shared:

- :class:`GzipCache` maps a file's identity ETag (inode, size and mtime, so an edited
  file is another key) to its gzip body, least recently used first, within
  ``max_bytes``. A form larger than the budget is still shared by the requests that
  waited for it, just not kept. That gzip did not make a file smaller is remembered too
  (for a small fixed cost), so it is not tried again.
- :meth:`GzipCache.compress` runs at most one compression per ETag: requests that arrive
  while it runs wait for it and get the same ``bytes`` object. Each connection's outbox
  then holds that object or a memoryview of it, so many slow clients cost one copy.
- At most ``max_in_flight`` compressions run on the pool at once (the server uses
  ``pool_size - 1``), so one popular file, or many, leave a worker for everything else;
  further file versions wait in order.

Loop thread only, like the hot-file cache: no lock.
"""

from __future__ import annotations

import collections
import functools
import logging
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from reactor.errors import busy
from reactor.response import Outcome, Pool

log = logging.getLogger("reactor.static")

#: Bytes charged for an entry besides its body (the key, the slot; also a "no gain" entry).
ENTRY_OVERHEAD_BYTES = 256

#: Called once with ``(body, None)`` (None: gzip does not make the file smaller) or
#: ``(None, exception)`` when the compression failed or could not start.
Waiter = Callable[[Optional[bytes], Optional[BaseException]], None]


class GzipCache:
    """Identity ETag → gzip body (or "no gain"), at most ``max_bytes``; compressions in flight.

    ``max_in_flight`` (at least 1) bounds the compressions running on the pool at once.
    """

    def __init__(self, max_bytes: int, max_in_flight: int) -> None:
        self.max_bytes = max_bytes
        self.max_in_flight = max(1, max_in_flight)
        self.size_bytes = 0
        self.in_flight = 0  # compressions submitted to the pool and not finished
        self.hits = 0
        self.misses = 0
        self.joined = 0  # requests that waited for a compression another request started
        self.compressions = 0  # compressions started
        self._forms: "collections.OrderedDict[str, Optional[bytes]]" = collections.OrderedDict()
        self._waiters: Dict[str, List[Waiter]] = {}  # ETags being compressed or queued
        self._queued: Deque[Tuple[str, Pool, Callable[..., Any], Tuple[Any, ...], bool]] = collections.deque()

    def __len__(self) -> int:
        return len(self._forms)

    def get(self, etag: str) -> Tuple[bool, Optional[bytes]]:
        """``(known, body)``: whether the gzip form of ``etag`` is known, and the body.

        ``(True, None)`` means gzip does not make this file smaller.
        """
        if etag not in self._forms:
            self.misses += 1
            return False, None
        self._forms.move_to_end(etag)
        self.hits += 1
        return True, self._forms[etag]

    def compress(
        self,
        pool: Pool,
        etag: str,
        job: Callable[..., Optional[bytes]],
        args: Tuple[Any, ...],
        waiter: Waiter,
        keep: bool = True,
    ) -> None:
        """Call ``waiter`` once ``job(*args)`` (on the pool) has made the gzip form of ``etag``.

        If a compression of ``etag`` is already running or queued, ``waiter`` joins it and
        ``job`` is not run. ``keep=False`` serves the result without caching it (a file
        that changed while it was read). The waiter runs on the loop thread, possibly
        before this returns (when the pool refuses the job: a 503, :func:`reactor.errors.busy`).
        """
        waiters = self._waiters.get(etag)
        if waiters is not None:
            waiters.append(waiter)
            self.joined += 1
            return
        self._waiters[etag] = [waiter]
        self._queued.append((etag, pool, job, args, keep))
        self._start_queued()

    def _start_queued(self) -> None:
        while self._queued and self.in_flight < self.max_in_flight:
            etag, pool, job, args, keep = self._queued.popleft()
            self.in_flight += 1
            self.compressions += 1
            if not pool.submit(job, args, functools.partial(self._compressed, etag, keep)):
                self.in_flight -= 1
                self._finish(etag, None, busy())

    def _compressed(self, etag: str, keep: bool, future: "Outcome[Optional[bytes]]") -> None:
        self.in_flight -= 1
        try:
            body: Optional[bytes] = future.result()
            error: Optional[BaseException] = None
        except BaseException as exc:  # handed to each waiter, which answers for its request
            body, error = None, exc
        if error is None and keep:
            self._store(etag, body)
        self._finish(etag, body, error)
        self._start_queued()

    def _finish(self, etag: str, body: Optional[bytes], error: Optional[BaseException]) -> None:
        for waiter in self._waiters.pop(etag, ()):
            try:
                waiter(body, error)
            except Exception as exc:  # one request's bug must not strand the others
                log.error("error answering a request that waited for a compression", exc_info=exc)

    def _store(self, etag: str, body: Optional[bytes]) -> None:
        cost = (len(body) if body is not None else 0) + ENTRY_OVERHEAD_BYTES
        if cost > self.max_bytes:
            return  # served to the requests that waited, not kept
        self.remove(etag)
        self._forms[etag] = body
        self.size_bytes += cost
        while self.size_bytes > self.max_bytes:
            _etag, evicted = self._forms.popitem(last=False)
            self.size_bytes -= (len(evicted) if evicted is not None else 0) + ENTRY_OVERHEAD_BYTES

    def remove(self, etag: str) -> None:
        """Forget the form of ``etag`` (if known)."""
        if etag in self._forms:
            body = self._forms.pop(etag)
            self.size_bytes -= (len(body) if body is not None else 0) + ENTRY_OVERHEAD_BYTES
