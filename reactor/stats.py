"""Counters for the status page (``--status-path``), kept by the loop thread.

Each counter is a plain integer that the connection or the server increments where the
thing happens; nothing is locked, because only the loop thread writes or reads them.
Anything that can be derived when the page is asked for (connections by state, the
pool's queue) is not counted at all: see :mod:`reactor.handlers.status`.
"""

from __future__ import annotations

import time
from typing import List


class Stats:
    """Totals since the server started.

    - ``started``: ``time.monotonic()`` seconds at creation, for the uptime.
    - ``accepted``: connections accepted; ``refused``: connections answered 503 at
      ``max_connections`` and closed.
    - ``responses``: final responses by status class, ``responses[2]`` counting 2xx;
      ``responses[1]`` counts interim ``100 Continue`` responses.
    - ``sent_bytes``: bytes handed to the kernel by ``send`` and ``sendfile``.
    """

    __slots__ = ("started", "accepted", "refused", "responses", "sent_bytes")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.accepted = 0
        self.refused = 0
        self.responses: List[int] = [0] * 6  # index = status // 100; index 0 unused
        self.sent_bytes = 0

    @property
    def requests(self) -> int:
        """Requests answered with a final response (1xx interim responses excluded)."""
        return sum(self.responses[2:])

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started
