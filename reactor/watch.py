"""Watching a folder for changes: inotify as one more descriptor, or polling; debounced batches.

Theory of operation
-------------------
A :class:`Watcher` reports what changed under a folder as :class:`Batch` es: an epoch
(an integer that grows by one with every batch) and the paths, relative to the folder,
of the files that were written, created, deleted or renamed. It knows nothing of HTTP,
of sockets or of the loop that drives it; two drivers do: the server's loop
(:mod:`reactor.handlers.livereload`, one process) and the supervisor's (``--workers``).

**inotify** (Linux) is a kernel event source behind one file descriptor: a watch per
directory, and ``read(2)`` returns the events. The descriptor is non-blocking and goes
into the driver's selector beside the sockets, so a saved file wakes the loop exactly
like a client's bytes do. The calls come through :mod:`ctypes` (the standard library
has no binding). A directory created later gets its watches when its event arrives;
listing it (the files made before the watch existed count as new) is a walk of the
disk, so the server's driver runs it on the disk pool and keeps the events of the new
watches that come back before the walk does.

**Polling** (``--watch poll``; other systems; containers and network mounts, where
inotify sees no remote changes; or when the kernel's watches run out, ``ENOSPC`` from
``inotify_add_watch``, and the watcher falls back by itself) lists the tree with
:func:`os.scandir` every ``interval_s`` and compares inode, size and modification time
with the previous listing (:func:`scan_tree`, on the disk pool). Once a listing has found
a change, the next comes ``quiet_s`` later, until one finds nothing new: so a batch ends
after the same quiet as with inotify, and a change is told within ``interval_s`` plus
``quiet_s`` plus two listings.

**Debounce** (:class:`Debouncer`): one save by an editor is several events (a swap
file, a backup, the file itself written, perhaps renamed over), and a build writes many
files. Paths collect into one batch until ``quiet_s`` passed without an event and no
file is still open for writing (an ``IN_MODIFY`` not yet followed by its
``IN_CLOSE_WRITE``), or ``max_wait_s`` passed since the batch began, whichever comes
first: merged, never dropped. When the kernel's queue overflows (``IN_Q_OVERFLOW``)
events were lost; the batch says so (``overflow``) rather than pretend it is complete.

**Ignored** (:class:`IgnoreRules`): names starting with ``.``, editors' temporary and
backup files (``*~``, ``#*#``, ``*.swp``, ``*.swx``, vim's ``4913``, JetBrains'
``*___jb_tmp___`` and ``*___jb_old___``), the top-level ``uploads/`` (what the server
itself writes there must not look like an edit), and the patterns given with
``--live-reload-ignore``. Symbolic links to directories are not followed (no loops).
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import functools
import json
import logging
import os
import stat
import struct
import time
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Optional, Set, Tuple

if TYPE_CHECKING:  # pragma: no cover
    import ctypes

log = logging.getLogger("reactor.watch")

#: Quiet time that ends a batch, in seconds (a save's events come within a few ms).
QUIET_S = 0.05
#: Longest a batch waits while events keep coming, in seconds.
MAX_WAIT_S = 1.0
#: Default time between two listings when polling, in seconds.
POLL_INTERVAL_S = 0.5
#: Top-level folders never watched: the server writes there itself.
DEFAULT_IGNORED_TOP = ("uploads",)

#: rel path -> (inode, size, mtime in ns): what a poll compares.
Snapshot = Dict[str, Tuple[int, int, int]]

# What an event means for a batch (Debouncer.add).
CHANGED = "changed"  # created, deleted, renamed, attributes (touch)
WRITING = "writing"  # written to and still open for writing (IN_MODIFY)
CLOSED = "closed"  # closed after writing (IN_CLOSE_WRITE): the save is complete

# <sys/inotify.h>
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
#: What every directory's watch asks for.
WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name
_READ_BYTES = 64 * 1024
_READS_PER_CALL = 16  # a flood of events must not hold the loop: the rest waits for the next pass


class WatchesExhausted(OSError):
    """``inotify_add_watch`` failed with ENOSPC: ``fs.inotify.max_user_watches`` is reached."""


# -- what to ignore ---------------------------------------------------------------------


def _editor_temp(name: str) -> bool:
    return (
        name.endswith("~")
        or (len(name) > 1 and name.startswith("#") and name.endswith("#"))
        or name.endswith((".swp", ".swx", "___jb_tmp___", "___jb_old___"))
        or name == "4913"  # vim checks it may write in the folder by creating and deleting this
    )


class IgnoreRules:
    """Which paths (relative to the watched folder, ``/``-separated) are never reported.

    ``patterns`` are :mod:`fnmatch` globs matched against the relative path and against
    the name alone (``*.map``, ``build``, ``drafts/*``); a directory that matches is
    not watched at all. ``top`` names top-level folders to skip (``uploads``).
    """

    def __init__(self, patterns: Tuple[str, ...] = (), top: Tuple[str, ...] = DEFAULT_IGNORED_TOP) -> None:
        self.patterns = tuple(pattern.strip("/") for pattern in patterns if pattern.strip("/"))
        self.top = frozenset(top)

    def ignores(self, rel: str, is_dir: bool = False) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if name.startswith("."):
            return True  # dotfiles, .git/, and editors' hidden swap and lock files
        if not is_dir and _editor_temp(name):
            return True
        if rel in self.top:
            return True
        return any(fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)


# -- the debounce ------------------------------------------------------------------------


class Debouncer:
    """Paths collected into one batch until quiet (see the module docstring). Times are monotonic seconds.

    Pure bookkeeping: :meth:`add` what happened and when, ask :meth:`deadline` when to
    look again, :meth:`take` the batch once it is due.
    """

    def __init__(self, quiet_s: float = QUIET_S, max_wait_s: float = MAX_WAIT_S) -> None:
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.paths: Set[str] = set()
        self.writing: Set[str] = set()  # written to, not closed yet
        self.overflow = False
        self.held = 0  # > 0: something still to come (a new directory being listed); wait for it
        self.first = 0.0
        self.last = 0.0

    def __bool__(self) -> bool:
        return bool(self.paths) or self.overflow

    def add(self, rel: str, now: float, kind: str = CHANGED) -> None:
        """Note that ``rel`` changed at ``now``; ``kind`` is CHANGED, WRITING or CLOSED."""
        self._touch(now)
        self.paths.add(rel)
        if kind == WRITING:
            self.writing.add(rel)
        else:
            self.writing.discard(rel)

    def overflowed(self, now: float) -> None:
        """Events were lost: the batch must say anything may have changed."""
        self._touch(now)
        self.overflow = True

    def _touch(self, now: float) -> None:
        if not self:
            self.first = now
        self.last = now

    def deadline(self) -> Optional[float]:
        """When the batch is due (monotonic seconds), or None while it is empty."""
        if not self:
            return None
        latest = self.first + self.max_wait_s
        if self.writing or self.held:
            return latest
        return min(self.last + self.quiet_s, latest)

    def take(self, now: float) -> Optional[Tuple[FrozenSet[str], bool]]:
        """``(paths, overflow)`` if the batch is due at ``now``, else None; the next batch starts empty."""
        due = self.deadline()
        if due is None or now < due:
            return None
        paths, overflow = frozenset(self.paths), self.overflow
        self.paths = set()
        self.writing = set()
        self.overflow = False
        return paths, overflow


# -- batches and how they travel between processes ------------------------------------


@dataclasses.dataclass(frozen=True)
class Batch:
    """One debounced set of changes: ``epoch`` (grows by one per batch), ``paths``, ``overflow``.

    ``paths`` are relative to the watched folder, ``/``-separated and sorted; a
    directory that appeared or went away ends with ``/``. ``overflow``: the kernel
    dropped events, so more than ``paths`` may have changed.
    """

    epoch: int
    paths: Tuple[str, ...]
    overflow: bool = False

    def describe(self) -> str:
        """For the log: the first paths and how many more."""
        if self.overflow:
            return "unknown files (the kernel's event queue overflowed)"
        more = len(self.paths) - 5
        return ", ".join(self.paths[:5]) + (" and %d more" % more if more > 0 else "")

    def encode(self) -> bytes:
        """One line for a pipe (the supervisor tells its workers): JSON, then ``\\n``.

        Names that are not UTF-8 travel as the surrogate escapes :func:`os.fsdecode` made.
        """
        return json.dumps({"epoch": self.epoch, "paths": list(self.paths), "overflow": self.overflow}).encode() + b"\n"

    @staticmethod
    def decode(buffer: bytearray) -> "List[Batch]":
        """The whole lines at the start of ``buffer`` as batches; they are removed from it.

        Raises ValueError for a line that is not a batch (the pipe carries nothing else).
        """
        batches: List[Batch] = []
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                return batches
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            record = json.loads(line)
            batches.append(Batch(int(record["epoch"]), tuple(record["paths"]), bool(record["overflow"])))


@dataclasses.dataclass(frozen=True)
class Feed:
    """What a worker gets from the supervisor's watcher: the read end of its pipe and the epoch at fork."""

    fd: int
    epoch: int


# -- polling -----------------------------------------------------------------------------


def scan_tree(root: str, rules: IgnoreRules) -> Snapshot:
    """Every file under ``root`` not ignored: ``{rel path: (inode, size, mtime_ns)}``. Blocking (a pool job).

    Symbolic links to files are followed (the server serves what they point at); links
    to directories are not. A folder that cannot be read is skipped; one that vanishes
    during the scan too.
    """
    found: Snapshot = {}
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as entries:
                for entry in entries:
                    rel = rel_dir + "/" + entry.name if rel_dir else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if not rules.ignores(rel, is_dir=True):
                                pending.append(rel)
                            continue
                        if rules.ignores(rel):
                            continue
                        info = entry.stat()
                    except OSError:
                        continue  # vanished meanwhile, or a dangling link
                    if stat.S_ISREG(info.st_mode):
                        found[rel] = (info.st_ino, info.st_size, info.st_mtime_ns)
        except OSError:
            continue
    return found


def compare(old: Snapshot, new: Snapshot) -> Set[str]:
    """Paths created, deleted or changed between two snapshots."""
    changed = {rel for rel, seen in new.items() if old.get(rel) != seen}
    changed.update(rel for rel in old if rel not in new)
    return changed


# -- inotify -----------------------------------------------------------------------------


@functools.cache
def _libc() -> "Optional[ctypes.CDLL]":
    """The C library's inotify calls, or None (not Linux). Loaded on first use: a server
    without live reload never imports :mod:`ctypes` (its objects would only lengthen
    every garbage collection)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already runs with
    except OSError:  # pragma: no cover - no dynamic loading
        return None
    if not all(hasattr(libc, name) for name in ("inotify_init1", "inotify_add_watch", "inotify_rm_watch")):
        return None  # not Linux
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def inotify_available() -> bool:
    """True where the C library has inotify (Linux)."""
    return _libc() is not None


class Inotify:
    """An inotify instance (inotify(7)): a non-blocking descriptor and its watches.

    Raises OSError from ``inotify_init1`` (EMFILE: ``fs.inotify.max_user_instances``),
    or OSError(ENOSYS) where there is no inotify.
    """

    def __init__(self) -> None:
        libc = _libc()
        if libc is None:
            raise OSError(errno.ENOSYS, "inotify is not available on this system")
        self._libc = libc
        fd = int(libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0:
            code = _errno()
            raise OSError(code, os.strerror(code))
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def add(self, path: str) -> int:
        """Watch directory ``path``; its watch descriptor. Any thread.

        Raises WatchesExhausted (ENOSPC), or OSError (the directory vanished, ENOENT;
        not a directory, ENOTDIR; EACCES).
        """
        wd = int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK))
        if wd < 0:
            code = _errno()
            if code == errno.ENOSPC:
                raise WatchesExhausted(code, "inotify watches exhausted (fs.inotify.max_user_watches)", path)
            raise OSError(code, os.strerror(code), path)
        return wd

    def remove(self, wd: int) -> None:
        """Stop watch ``wd`` (an IN_IGNORED event follows); a watch already gone is fine."""
        self._libc.inotify_rm_watch(self.fd, wd)

    def read(self) -> List[Tuple[int, int, str]]:
        """The events waiting, as ``(wd, mask, name)``; ``[]`` when none. Never blocks."""
        events = []
        for _ in range(_READS_PER_CALL):
            try:
                data = os.read(self.fd, _READ_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = data[offset : offset + length].rstrip(b"\0")
                offset += length
                events.append((wd, mask, os.fsdecode(name)))
            if len(data) < _READ_BYTES // 2:
                break  # the queue is drained (a full one would have filled the buffer)
        return events

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclasses.dataclass
class Walk:
    """New directories' watches and files, found by :meth:`Watcher.add_trees` (off the loop)."""

    dirs: Dict[int, str]  # wd -> rel dir
    files: List[str]
    exhausted: bool = False  # the kernel's watches ran out on the way


# -- the watcher -------------------------------------------------------------------------


class Watcher:
    """What changed under ``root``, as debounced :class:`Batch` es. One driver thread, except :meth:`add_trees` and :func:`scan_tree`.

    ``mode``: ``"auto"`` (inotify where it works, else polling), ``"inotify"`` (raises
    OSError where it cannot start) or ``"poll"``. ``epoch``: the first batch's epoch
    minus one; by default the wall clock in milliseconds, so a restarted server starts
    above any epoch a page kept from before (and reloads it). The constructor walks the
    tree (watches, or the first listing): call it before serving.

    The driver's part: put :meth:`fileno` in its selector (when not -1) and call
    :meth:`read` when it is readable; list :attr:`new_dirs` with :meth:`add_trees` (on a
    pool) and hand the result to :meth:`trees_added`; when polling, run :func:`scan_tree`
    every ``interval_s`` (from :attr:`next_scan_at`) and hand it to :meth:`scanned`; wake
    at :meth:`deadline` and call :meth:`take`.
    """

    def __init__(
        self,
        root: str,
        rules: Optional[IgnoreRules] = None,
        mode: str = "auto",
        interval_s: float = POLL_INTERVAL_S,
        quiet_s: float = QUIET_S,
        max_wait_s: float = MAX_WAIT_S,
        epoch: Optional[int] = None,
    ) -> None:
        if mode not in ("auto", "inotify", "poll"):
            raise ValueError("mode must be auto, inotify or poll, not %r" % mode)
        self.root = os.path.realpath(root)
        self.rules = rules if rules is not None else IgnoreRules()
        self.interval_s = interval_s
        self.epoch = epoch if epoch is not None else int(time.time() * 1000)
        self.debounce = Debouncer(quiet_s, max_wait_s)
        self.backend = "poll"
        self.inotify: Optional[Inotify] = None
        self.dirs: Dict[int, str] = {}  # wd -> rel dir ("" for the root)
        self.wds: Dict[str, int] = {}  # rel dir -> wd
        self.new_dirs: List[str] = []  # directories that appeared, not listed yet
        self._orphans: List[Tuple[int, int, str]] = []  # events of watches a walk has not reported yet
        self.snapshot: Optional[Snapshot] = None
        self.next_scan_at = 0.0
        self._quiet_seen = False  # polling: the last listing found nothing new
        self.reason = "--watch poll" if mode == "poll" else ""  # why polling, for the startup line
        if mode != "poll":
            try:
                self._start_inotify()
            except OSError as exc:
                if mode == "inotify":
                    raise
                self.reason = _why(exc)
                log.info("watching %s by polling every %g s: %s", self.root, interval_s, self.reason)
        if self.backend == "poll":
            self.scanned(scan_tree(self.root, self.rules), time.monotonic())

    def __repr__(self) -> str:
        return "<Watcher %s %s epoch %d>" % (self.root, self.backend, self.epoch)

    def describe(self) -> str:
        """How it watches, for the startup line: ``inotify, 12 folders`` or ``polling every 0.5 s (...)``."""
        if self.backend == "inotify":
            return "inotify, %d folder%s" % (len(self.dirs), "" if len(self.dirs) == 1 else "s")
        return "polling every %g s%s" % (self.interval_s, " (%s)" % self.reason if self.reason else "")

    def fileno(self) -> int:
        """inotify's descriptor, or -1 when polling."""
        return self.inotify.fd if self.inotify is not None else -1

    # -- inotify

    def _start_inotify(self) -> None:
        inotify = Inotify()
        self.inotify = inotify
        try:
            walk = self.add_trees([""])
            if walk.exhausted:
                raise WatchesExhausted(errno.ENOSPC, "inotify watches exhausted (fs.inotify.max_user_watches)")
            if "" not in walk.dirs.values():
                raise OSError(errno.ENOENT, "cannot watch the folder", self.root)
        except BaseException:
            inotify.close()
            self.inotify = None
            raise
        self._merge(walk.dirs)
        self.backend = "inotify"

    def add_trees(self, rel_dirs: List[str]) -> Walk:
        """Watch each of ``rel_dirs`` and every folder under it; list their files. Any thread.

        Reads nothing of the watcher's own state but its root, rules and descriptor, so
        the server runs it on the disk pool. A folder that vanished meanwhile is skipped.
        """
        inotify = self.inotify
        walk = Walk({}, [])
        if inotify is None:
            return walk
        pending = list(rel_dirs)
        while pending:
            rel_dir = pending.pop()
            path = os.path.join(self.root, rel_dir) if rel_dir else self.root
            try:
                walk.dirs[inotify.add(path)] = rel_dir
            except WatchesExhausted:
                walk.exhausted = True
                return walk
            except OSError:
                continue
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        rel = rel_dir + "/" + entry.name if rel_dir else entry.name
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            continue
                        if self.rules.ignores(rel, is_dir):
                            continue
                        if is_dir:
                            pending.append(rel)
                        else:
                            walk.files.append(rel)
            except OSError:
                continue
        return walk

    def trees_added(self, walk: Walk, now: float) -> None:
        """The driver's :meth:`add_trees` finished: know the new watches, count their files as changed."""
        self.debounce.held = max(0, self.debounce.held - 1)
        if self.inotify is None:
            return
        self._merge(walk.dirs)
        for rel in walk.files:
            self.debounce.add(rel, now)
        orphans, self._orphans = self._orphans, []
        self._handle(orphans, now)
        if walk.exhausted:
            self._fall_back("inotify watches exhausted (raise fs.inotify.max_user_watches)", now)

    def take_new_dirs(self) -> List[str]:
        """The folders to list now (with :meth:`add_trees`); the batch waits for :meth:`trees_added`."""
        dirs, self.new_dirs = self.new_dirs, []
        if dirs:
            self.debounce.held += 1
        return dirs

    def _merge(self, dirs: Dict[int, str]) -> None:
        for wd, rel_dir in dirs.items():
            old = self.wds.get(rel_dir)
            if old is not None and old != wd:
                self.dirs.pop(old, None)
            self.dirs[wd] = rel_dir
            self.wds[rel_dir] = wd

    def read(self, now: float) -> None:
        """inotify's descriptor is readable: note what the events say."""
        if self.inotify is not None:
            self._handle(self.inotify.read(), now)

    def _handle(self, events: List[Tuple[int, int, str]], now: float) -> None:
        debounce = self.debounce
        for event in events:
            wd, mask, name = event
            if mask & IN_Q_OVERFLOW:
                log.warning("inotify's event queue overflowed under %s; some changes are unknown", self.root)
                debounce.overflowed(now)
                continue
            rel_dir = self.dirs.get(wd)
            if rel_dir is None:
                if debounce.held:
                    self._orphans.append(event)  # a walk on the pool has this watch; it reports soon
                continue
            if mask & IN_IGNORED:
                del self.dirs[wd]
                if self.wds.get(rel_dir) == wd:
                    del self.wds[rel_dir]
                continue
            if not name:  # the watched folder itself was deleted or moved
                if not rel_dir and mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                    log.warning("the watched folder %s was moved or deleted", self.root)
                continue
            rel = rel_dir + "/" + name if rel_dir else name
            is_dir = bool(mask & IN_ISDIR)
            if self.rules.ignores(rel, is_dir):
                continue
            if is_dir:
                if mask & (IN_CREATE | IN_MOVED_TO):
                    self.new_dirs.append(rel)
                    debounce.add(rel + "/", now)
                elif mask & (IN_DELETE | IN_MOVED_FROM):
                    self._forget_tree(rel)
                    debounce.add(rel + "/", now)
                continue
            if mask & IN_MODIFY:
                debounce.add(rel, now, WRITING)
            elif mask & IN_CLOSE_WRITE:
                debounce.add(rel, now, CLOSED)
            else:
                debounce.add(rel, now)

    def _forget_tree(self, rel_dir: str) -> None:
        """A folder moved away or was deleted: drop the watches of it and everything under it."""
        prefix = rel_dir + "/"
        for wd, watched in list(self.dirs.items()):
            if watched == rel_dir or watched.startswith(prefix):
                del self.dirs[wd]
                if self.wds.get(watched) == wd:
                    del self.wds[watched]
                if self.inotify is not None:
                    self.inotify.remove(wd)  # the watch of a moved folder would report under its old name

    def _fall_back(self, reason: str, now: float) -> None:
        """inotify cannot go on: poll from now on (the next listing is the new baseline)."""
        log.warning("watching %s: %s; polling every %g s instead", self.root, reason, self.interval_s)
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None
        self.dirs.clear()
        self.wds.clear()
        self.new_dirs = []
        self._orphans = []
        self.debounce.held = 0
        self.backend = "poll"
        self.reason = reason
        self.snapshot = None
        self.next_scan_at = now

    # -- polling

    def scanned(self, snapshot: Snapshot, now: float) -> None:
        """A :func:`scan_tree` listing is back: what differs from the last one changed.

        While a batch waits, the next listing comes ``quiet_s`` later rather than
        ``interval_s``: the quiet that ends a batch is seen by a listing that found
        nothing new, as inotify would see it, whatever the phase of the polling cycle.
        """
        changed = compare(self.snapshot, snapshot) if self.snapshot is not None else set()
        for rel in changed:
            self.debounce.add(rel, now)
        self.snapshot = snapshot
        self._quiet_seen = not changed
        self.next_scan_at = now + (self.debounce.quiet_s if self.debounce else self.interval_s)

    # -- batches

    def deadline(self) -> Optional[float]:
        """When :meth:`take` may have a batch (monotonic seconds), or None.

        When polling, not before a listing has shown the quiet (or the batch's time is up).
        """
        due = self.debounce.deadline()
        if due is not None and self.backend == "poll" and not self._quiet_seen:
            return self.debounce.first + self.debounce.max_wait_s
        return due

    def take(self, now: float) -> Optional[Batch]:
        """The batch due at ``now`` (the epoch moves on by one), or None."""
        taken = self.debounce.take(now)
        if taken is None:
            return None
        paths, overflow = taken
        self.epoch += 1
        self._quiet_seen = False
        return Batch(self.epoch, tuple(sorted(paths)), overflow)

    def close(self) -> None:
        """Release inotify's descriptor (the driver unregisters it first)."""
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None


def _why(exc: OSError) -> str:
    if isinstance(exc, WatchesExhausted):
        return "inotify watches exhausted (raise fs.inotify.max_user_watches)"
    if exc.errno == errno.EMFILE:
        return "too many inotify instances (fs.inotify.max_user_instances)"
    return "inotify unavailable: %s" % str(exc.strerror or exc).lower()
