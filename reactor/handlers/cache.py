"""The hot-file cache: small files kept in memory, answered on the loop thread.

Theory of operation
-------------------
A miss goes to the worker pool, which resolves the path, reads the file and builds an
:class:`~reactor.handlers.files.Entry`: the bytes, the validators and the ready-made
response fields of each form (identity, gzip). If the file is small (at most
``entry_max_bytes``) the loop thread puts the entry here, keyed by the request path as
received (percent-encoding and all: two spellings of one path are two entries, which
costs memory but never correctness, because only paths that passed every safety check
on their way to the pool are ever stored).

A hit is answered without leaving the loop thread: no pool round trip, no system call.
That also means no ``stat``, so a hit cannot see an edit by itself. Freshness comes
from the pool instead, like nginx's ``open_file_cache_valid``:

- an entry checked less than :data:`VALID_S` ago is served as is;
- an older one is still served, and one revalidation job (at most one in flight per
  entry) re-resolves the path and compares inode, size, mtime and ctime (and those of
  a ``.gz`` sidecar); a match renews the entry, a difference drops it;
- an entry not confirmed for :data:`EXPIRE_S` is not served at all: the request takes
  the miss path, which reloads it.

**Staleness bound**: a cached response reflects a check of the file made less than
:data:`EXPIRE_S` (2 s) earlier; a file requested steadily is checked every
:data:`VALID_S` (1 s), so an edit shows up about one second later (plus one pool
round trip). Deleting or replacing a file behaves the same way.

The cache is bounded by the bytes of the bodies it holds (identity plus gzip, plus a
fixed overhead per entry) and evicts the least recently used entries. It is touched
only on the loop thread, so it needs no lock.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Callable, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from reactor.handlers.files import Entry

#: Seconds after a check during which an entry is served without revalidation.
VALID_S = 1.0
#: Seconds after a check after which an entry is no longer served from memory.
EXPIRE_S = 2.0
#: Bytes charged per entry besides its bodies (field values, objects, dict slot).
ENTRY_OVERHEAD_BYTES = 1024


class HotCache:
    """Request path → :class:`Entry`, least recently used first, at most ``max_bytes``.

    ``entry_max_bytes`` is the largest file admitted. Loop thread only.
    """

    def __init__(self, max_bytes: int, entry_max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entry_max_bytes = min(entry_max_bytes, max_bytes)
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._entries: "collections.OrderedDict[str, Entry]" = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str, now: float) -> "Optional[Entry]":
        """The entry for ``key`` if it was confirmed less than EXPIRE_S before ``now``."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if now - entry.checked_at >= EXPIRE_S:
            self.remove(key, entry)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def admits(self, entry: "Entry") -> bool:
        """Whether ``entry`` may be cached: its body is in memory and small enough."""
        return entry.identity.data is not None and entry.size <= self.entry_max_bytes

    def put(self, key: str, entry: "Entry") -> None:
        """Store ``entry`` under ``key`` (replacing any older one), then evict to fit."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.size_bytes -= old.cost_bytes
        entry.cost_bytes = entry.body_bytes() + ENTRY_OVERHEAD_BYTES
        self._entries[key] = entry
        self.size_bytes += entry.cost_bytes
        self._evict()

    def resized(self, key: str, entry: "Entry") -> None:
        """Account for a body added to a cached ``entry`` (a gzip form), then evict to fit."""
        if self._entries.get(key) is not entry:
            return
        cost = entry.body_bytes() + ENTRY_OVERHEAD_BYTES
        self.size_bytes += cost - entry.cost_bytes
        entry.cost_bytes = cost
        self._evict()

    def remove(self, key: str, entry: "Optional[Entry]" = None) -> None:
        """Drop ``key`` (only if it still maps to ``entry``, when one is given)."""
        current = self._entries.get(key)
        if current is None or (entry is not None and current is not entry):
            return
        del self._entries[key]
        self.size_bytes -= current.cost_bytes

    def forget(self, stale: "Callable[[Entry], bool]") -> "List[Entry]":
        """Drop every entry ``stale(entry)`` says is stale (live reload); return them."""
        dropped = [(key, entry) for key, entry in self._entries.items() if stale(entry)]
        for key, entry in dropped:
            self.remove(key, entry)
        return [entry for _key, entry in dropped]

    def clear(self) -> None:
        self._entries.clear()
        self.size_bytes = 0

    def _evict(self) -> None:
        entries = self._entries
        while self.size_bytes > self.max_bytes and entries:
            _key, entry = entries.popitem(last=False)
            self.size_bytes -= entry.cost_bytes
            self.evictions += 1
