"""The uploads quota: a running total that every process writing ``uploads/`` shares.

Theory of operation
-------------------
``--max-uploads-bytes`` bounds everything in ``uploads/``, whatever put it there, for all
the worker processes (and separate servers) that write the folder. Adding the folder
up at every upload made an upload's cost grow with the files stored (800 ms at
100,000), and every upload waited for the one before. Instead the total is kept:

- **The ledger**, ``uploads/.quota``, holds the bytes the folder is known to use. Every
  change goes through :meth:`UploadQuota.account`: an exclusive ``flock(2)`` on the
  folder (the lock the upload writer takes to name its files), the ledger read, the
  change, the ledger written back. An upload *reserves* its size there before its temp
  file exists, so a second writer sees it at once; publishing it changes no byte count;
  a failed upload gives its size back. Nothing is ever accepted past the limit, in one
  process or many, and an upload costs one small read and write whatever the folder holds.
- **Scans** notice what people add or delete by hand. At start, a server whose folder
  has no ledger, or one no process has scanned for :data:`RESCAN_S`, adds the folder up
  under the lock (as a server coming up after a stop must). While it runs, each process
  asks its pool every :meth:`UploadQuota.rescan_interval_s` (``RESCAN_S``, 10 s, or 20
  times the last scan's duration if longer: a scan takes at most a twentieth of one pool
  thread) to scan again, unless another process did so in the last half interval. That
  scan runs *without* the lock, so uploads go on meanwhile: it registers itself in the
  ledger first, and while it is registered every writer appends what it changes (name,
  size, whether the name exists now) to the ledger's journal. At the end, under the lock,
  each journaled name is counted as it stands now rather than as the scan happened to
  see it, and the result replaces the total. So room a deletion frees is usable within
  one interval and one scan (about 10.5 s for 100,000 files), and a file added by hand
  counts from then on.

Every approximation errs towards *more* bytes used: a temp file a crashed writer left
is still counted until the sweep removes it and the next scan looks. The early check
on the loop thread (:meth:`UploadQuota.fits`) refuses from what this process last saw.

The ledger is a text file: one header line of fixed width (the folder it counts, by
device and inode, so that a copy of it elsewhere is not trusted; ``used``; when the last
scan ended and how long it took; the registered scan and when it began), then the
journal, one ``name size exists`` line per change.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import stat
import time
from typing import Dict, Iterator, List, Optional, Set, Tuple

from reactor.errors import HTTPError

log = logging.getLogger("reactor.upload")

#: The ledger's name in the uploads folder (a dotfile: never served unless --dotfiles).
LEDGER_NAME = ".quota"
#: Least time between two scans of the folder, from any process.
RESCAN_S = 10.0
#: A scan runs at most once per this many times its own duration (5% of one pool thread).
RESCAN_DUTY = 20
#: A registered scan not finished in this long (or 10 times the last one's duration) was abandoned.
ABANDONED_SCAN_S = 60.0
#: A journal past this is dropped and its scan voided (the next one starts over).
MAX_JOURNAL_BYTES = 4 * 1024 * 1024
#: Files changed this long before a scan began may still be journaled by a writer (clock steps, a slow fsync).
_CHANGED_MARGIN_S = 5.0
TEMP_PREFIX = ".upload-"
TEMP_SUFFIX = ".tmp"

_HEADER = (
    b"reactor uploads quota v1 folder=%016x.%016x used=%019d scanned=%017.6f took=%012.6f scan=%016x began=%017.6f\n"
)
_HEADER_BYTES = len(_HEADER % (0, 0, 0, 0.0, 0.0, 0, 0.0))
_PARSE = re.compile(
    rb"reactor uploads quota v1 folder=([0-9a-f]{16})\.([0-9a-f]{16}) used=(\d{19}) scanned=([\d.]{17}) "
    rb"took=([\d.]{12}) scan=([0-9a-f]{16}) began=([\d.]{17})\n"
)


class Ledger:
    """The ledger's header: the folder it counts, the bytes used, the last scan (end,
    duration), the scan registered now.

    ``folder`` is the folder's (device, inode): a ledger copied along with the files
    (``cp -r``, a backup put back) describes another folder, and is counted again.
    """

    __slots__ = ("folder", "used_bytes", "scanned_at", "took_s", "scan_id", "began_at")

    def __init__(
        self, folder: Tuple[int, int], used_bytes: int, scanned_at: float, took_s: float, scan_id: int, began_at: float
    ) -> None:
        self.folder = folder
        self.used_bytes = used_bytes
        self.scanned_at = scanned_at  # time.time() at the end of the last scan
        self.took_s = took_s
        self.scan_id = scan_id  # 0: no scan registered, so no journal is kept
        self.began_at = began_at

    def encode(self) -> bytes:
        device, inode = self.folder
        took = min(self.took_s, 99999.0)
        return _HEADER % (device, inode, max(0, self.used_bytes), self.scanned_at, took, self.scan_id, self.began_at)

    @classmethod
    def decode(cls, data: bytes) -> Optional["Ledger"]:
        match = _PARSE.match(data)
        if match is None:
            return None
        device, inode, used, scanned, took, scan, began = match.groups()
        return cls(
            (int(device, 16), int(inode, 16)), int(used), float(scanned), float(took), int(scan, 16), float(began)
        )


class Account:
    """The ledger of one folder while its lock is held (:meth:`UploadQuota.account`)."""

    __slots__ = ("fd", "ledger", "_journal", "_changed")

    def __init__(self, fd: int, ledger: Ledger) -> None:
        self.fd = fd
        self.ledger = ledger
        self._journal: List[bytes] = []
        self._changed = False

    @property
    def used_bytes(self) -> int:
        return self.ledger.used_bytes

    def add(self, size: int) -> None:
        """Count ``size`` more bytes (a reservation), or fewer when negative (given back)."""
        self.ledger.used_bytes += size
        self._changed = True

    def named(self, name: str, size: int, exists: bool) -> None:
        """``name`` (in the folder's top level) now exists with ``size`` bytes, or no longer does."""
        if self.ledger.scan_id:
            self._journal.append(b"%s %d %d\n" % (os.fsencode(name), size, int(exists)))

    def write(self) -> None:
        """Write the changes back (the header in place; journal lines at the end)."""
        if self._journal:
            end = os.fstat(self.fd).st_size
            if end + sum(map(len, self._journal)) > MAX_JOURNAL_BYTES:
                log.info("uploads quota: the journal grew past %d bytes; the scan starts over", MAX_JOURNAL_BYTES)
                self.ledger.scan_id = 0
                os.ftruncate(self.fd, _HEADER_BYTES)
                self._changed = True
            else:
                os.pwrite(self.fd, b"".join(self._journal), end)
        if self._changed:
            os.pwrite(self.fd, self.ledger.encode(), 0)

    def journal(self) -> Dict[str, Tuple[int, bool]]:
        """The journal: each name's size and whether it exists, as of its last line."""
        size = os.fstat(self.fd).st_size
        data = os.pread(self.fd, size - _HEADER_BYTES, _HEADER_BYTES) if size > _HEADER_BYTES else b""
        last: Dict[str, Tuple[int, bool]] = {}
        for line in data.splitlines():
            name, size_text, exists = line.rsplit(b" ", 2)
            last[os.fsdecode(name)] = (int(size_text), exists == b"1")
        return last


class UploadQuota:
    """The room uploads may take, ``limit_bytes`` (0: no limit), over everything in uploads/.

    :meth:`reserve` (a worker, under :meth:`account`) is the definitive check.
    ``used_bytes`` is what this process last learned, for :meth:`fits`, the early check
    on the loop thread; it is trusted for :data:`EARLY_CHECK_S` seconds only, since other
    processes store uploads and people delete them.
    """

    EARLY_CHECK_S = 1.0

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self._checked_at = float("-inf")  # time.monotonic() when used_bytes was learned
        self.took_s = 0.0  # the last scan's duration, from the ledger

    def fits(self, size: int) -> bool:
        """False if ``size`` more bytes surely do not fit (a refusal before the body is read)."""
        if not self.limit_bytes:
            return True
        if size > self.limit_bytes:
            return False
        if time.monotonic() - self._checked_at > self.EARLY_CHECK_S:
            return True  # not known well enough: the worker decides
        return self.used_bytes + size <= self.limit_bytes

    def rescan_interval_s(self) -> float:
        """Seconds between two looks at the folder: :data:`RESCAN_S`, or more for a slow scan."""
        return max(RESCAN_S, RESCAN_DUTY * self.took_s)

    def _learned(self, ledger: Ledger) -> None:
        self.used_bytes, self._checked_at, self.took_s = ledger.used_bytes, time.monotonic(), ledger.took_s

    @contextlib.contextmanager
    def account(self, directory: str) -> Iterator[Account]:
        """Worker: the folder's :class:`Account` under the exclusive flock every writer of it takes.

        A missing or unreadable ledger is rebuilt first by adding the folder up. The
        changes are written back when the block ends normally; if it raises, the ledger
        is left as it was. Raises OSError.
        """
        lock = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            info = os.fstat(lock)
            folder = (info.st_dev, info.st_ino)
            fd = os.open(os.path.join(directory, LEDGER_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                ledger = Ledger.decode(os.pread(fd, _HEADER_BYTES, 0))
                if ledger is None or ledger.folder != folder:  # new, garbled, or another folder's
                    ledger = _recount(fd, directory, folder)
                account = Account(fd, ledger)
                yield account
                account.write()
                self._learned(account.ledger)
            finally:
                os.close(fd)
        finally:
            os.close(lock)  # releases the flock

    def reserve(self, account: Account, size: int) -> None:
        """Count ``size`` bytes for an upload about to be written. Raises HTTPError(507) if they do not fit."""
        if account.used_bytes + size > self.limit_bytes:
            self._learned(account.ledger)
            raise self.full_error()
        account.add(size)

    def full_error(self) -> HTTPError:
        used, limit = self.used_bytes, self.limit_bytes
        return HTTPError(507, "no room left for uploads (%d of %d bytes used; --max-uploads-bytes)" % (used, limit))

    # -- scans

    def settle(self, directory: str) -> None:
        """At start: add the folder up under the lock unless a process has done so lately.

        Does nothing if the folder does not exist yet (it is made at the first upload,
        whose ledger starts from a count). Raises OSError.
        """
        if not os.path.isdir(directory):
            return
        with self.account(directory) as account:
            ledger = account.ledger
            now = time.time()
            if now - RESCAN_S <= ledger.scanned_at <= now + 1:
                return  # a peer (or the recount just now) counted it
            account.ledger = _recount(account.fd, directory, ledger.folder)

    def rescan(self, directory: str) -> bool:
        """Worker: add the folder up without holding the lock, and make that the total.

        Returns False when there was nothing to do: another process scanned it in the
        last half interval or is scanning it now, or the folder is gone. Raises OSError.
        """
        if not os.path.isdir(directory):
            return False
        scan_id = secrets.randbits(63) or 1
        with self.account(directory) as account:
            ledger = account.ledger
            now = time.time()
            interval = max(RESCAN_S, RESCAN_DUTY * ledger.took_s)
            if now - interval / 2 <= ledger.scanned_at <= now + 1:
                return False
            if ledger.scan_id and now - ledger.began_at < max(ABANDONED_SCAN_S, 10 * ledger.took_s):
                return False
            ledger.scan_id, ledger.began_at = scan_id, now
            os.ftruncate(account.fd, _HEADER_BYTES)  # a fresh journal
            account.add(0)
        began = time.monotonic()
        total, counted = scan(directory, since=now - _CHANGED_MARGIN_S)
        with self.account(directory) as account:
            ledger = account.ledger
            if ledger.scan_id != scan_id:
                return False  # voided: a recount or a full journal came first
            for name, (size, exists) in account.journal().items():
                total += (size if exists else 0) - counted.get(name, 0)
            took = time.monotonic() - began
            if total != ledger.used_bytes:
                log.debug("uploads quota: %d bytes used, not %d (a scan of %.3f s)", total, ledger.used_bytes, took)
            account.ledger = Ledger(ledger.folder, total, time.time(), took, 0, 0.0)
            os.ftruncate(account.fd, _HEADER_BYTES)
            account.add(0)
        return True


def _recount(fd: int, directory: str, folder: Tuple[int, int]) -> Ledger:
    """Under the lock: the folder added up, written as the ledger with an empty journal."""
    began = time.monotonic()
    total, _counted = scan(directory, since=float("inf"))
    ledger = Ledger(folder, total, time.time(), time.monotonic() - began, 0, 0.0)
    os.ftruncate(fd, 0)
    os.pwrite(fd, ledger.encode(), 0)
    return ledger


def scan(directory: str, since: float) -> Tuple[int, Dict[str, int]]:
    """Bytes in the regular files under ``directory`` (each inode once, symlinks not followed,
    the ledger left out) and, for the names in its top level that are temp files or were
    changed at or after ``since`` (``st_ctime``, seconds), the bytes each added to the sum."""
    total = 0
    counted: Dict[str, int] = {}
    seen: Set[Tuple[int, int]] = set()
    folders = [(directory, True)]
    while folders:
        folder, top = folders.pop()
        try:
            entries = os.scandir(folder)
        except OSError as exc:
            if top and exc.errno != errno.ENOENT:
                raise  # the folder itself cannot be read: no count at all
            continue  # a subfolder gone meanwhile, or closed to us: counted as empty, as du would
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append((entry.path, False))
                        continue
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # deleted meanwhile
                if not stat.S_ISREG(info.st_mode) or (top and entry.name == LEDGER_NAME):
                    continue
                added = info.st_size
                if info.st_nlink > 1:  # another name may count it too (an upload being published has two)
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        added = 0
                    seen.add(key)
                total += added
                if top and (info.st_ctime >= since or entry.name.startswith(TEMP_PREFIX)):
                    counted[entry.name] = added
    return total, counted
