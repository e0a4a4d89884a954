"""``POST /upload``: store a JSON document under ``<root>/uploads/``, durably and atomically.

The loop thread checks the method (405), Content-Type (415) and, from Content-Length,
the uploads quota (507) before the body is read, so ``Expect: 100-continue`` clients get
a refusal without sending it; the parser bounds the body (413). A worker then validates
the JSON (400) and writes it: a temp file in the same directory, ``fsync``, a hard link
to the final name (which fails instead of overwriting, so names stay unique), ``fsync``
of the directory, temp file removed.
A crash at any moment leaves either nothing or a complete file under its final name
(plus at worst a ``.upload-*.tmp`` that :func:`remove_stale_temp_files` clears at start).

The uploads quota (``--max-uploads-bytes``, :class:`UploadQuota`) holds across threads
and worker processes alike: under an exclusive ``flock(2)`` on the uploads directory, the
writer adds up what the directory holds, refuses (507) if the body does not fit, and
creates its temp file already at the body's size (``ftruncate``), so the next writer's
sum counts this upload while it is being written. A failed write removes its temp file,
which gives the room back; nothing is ever half-written past the quota. Files deleted
from ``uploads/`` free their room for the next upload.

Several processes (``--workers``) may write into the same directory at once, and each
sweeps it when it starts, while the others keep writing. Two rules make that safe:

- Names cannot collide: the temp name comes from ``mkstemp`` (``O_EXCL``), and the final
  name is made with ``link(2)``, which fails rather than replace a file another process
  has just published; on ``EEXIST`` the next random name is tried.
- A sweep never deletes a file that is being written: the writer holds an exclusive
  ``flock(2)`` on its temp file from just after creating it until its name is gone, and
  the sweep deletes only temp files whose lock it can take without waiting. The kernel
  drops the lock when the writer's descriptor closes, so a crashed writer (even
  ``kill -9``) leaves a file the next sweep can lock and remove. The one gap, between
  ``mkstemp`` and ``flock``, is closed by the writer: once it holds the lock, it checks
  that its name still points at its file, and starts over with a new name if a sweep
  took it. flock works across processes, PID namespaces (containers) and NFS (as fcntl
  locks), which a check of "is the writer's PID alive" would not.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import logging
import os
import secrets
import stat
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Iterator, Optional, Set

from reactor.errors import EXHAUSTED_ERRNOS, HTTPError
from reactor.response import Response

if TYPE_CHECKING:  # pragma: no cover
    from reactor.config import Config
    from reactor.connection import Connection, Request

log = logging.getLogger("reactor.upload")

ALLOW = "POST, OPTIONS"
UPLOADS_DIR = "uploads"
TEMP_PREFIX = ".upload-"
TEMP_SUFFIX = ".tmp"
_NAME_ATTEMPTS = 64


def _reject_constant(name: str) -> Any:
    raise ValueError("%s is not valid JSON (RFC 8259)" % name)


def validate_json(body: bytes) -> None:
    """Raise HTTPError(400) unless ``body`` is one UTF-8 JSON text (RFC 8259).

    Python's json module also accepts NaN and Infinity; RFC 8259 does not, nor do we.
    """
    if not body.strip():
        raise HTTPError(400, "empty body; a JSON document is required")
    try:
        json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise HTTPError(400, "body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise HTTPError(400, "invalid JSON: %s" % str(exc).splitlines()[0][:120]) from None


class UploadQuota:
    """The room uploads may take, ``limit_bytes`` (0: no limit), over everything in uploads/.

    :meth:`reserved_temp_file` is the definitive check, on a worker. ``used_bytes`` is the
    sum the last check found (in this process), for :meth:`fits`, the early check on the
    loop thread; it is trusted for :data:`EARLY_CHECK_S` seconds only, since other
    processes store uploads and people delete them.
    """

    EARLY_CHECK_S = 1.0

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self._checked_at = float("-inf")  # time.monotonic() of the last sum

    def fits(self, size: int) -> bool:
        """False if ``size`` more bytes surely do not fit (a refusal before the body is read)."""
        if not self.limit_bytes:
            return True
        if size > self.limit_bytes:
            return False
        if time.monotonic() - self._checked_at > self.EARLY_CHECK_S:
            return True  # not known well enough: the worker decides
        return self.used_bytes + size <= self.limit_bytes

    def reserved_temp_file(self, directory: str, size: int) -> "tuple[int, str]":
        """Worker: a locked temp file of ``size`` bytes (see :func:`_locked_temp_file`), if it fits.

        Under :meth:`locked`, shared with every thread and process writing there: sum
        what it holds (temp files of uploads in flight at their full size), refuse past
        the limit, then create the temp file at its full size.
        Raises HTTPError(507) when it does not fit, or OSError.
        """
        with self.locked(directory):  # held for one directory scan and one mkstemp
            used = used_bytes(directory)
            self.used_bytes, self._checked_at = used, time.monotonic()
            if used + size > self.limit_bytes:
                raise self.full_error()
            fd, temp = _locked_temp_file(directory)
            try:
                os.ftruncate(fd, size)  # the next sum counts it at once (sparse: no blocks yet)
            except BaseException:
                _remove(temp)
                _close(fd)
                raise
            return fd, temp

    @staticmethod
    @contextlib.contextmanager
    def locked(directory: str) -> Iterator[None]:
        """An exclusive flock on ``directory``: every writer's sum and name change take it."""
        lock = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)  # releases the flock

    def full_error(self) -> HTTPError:
        used, limit = self.used_bytes, self.limit_bytes
        return HTTPError(507, "no room left for uploads (%d of %d bytes used; --max-uploads-bytes)" % (used, limit))


def used_bytes(directory: str) -> int:
    """Bytes in the regular files under ``directory``, temp files included, each inode once
    (an upload being published has two names for a moment); symlinks not followed; 0 if
    it is missing."""
    total = 0
    seen: Set["tuple[int, int]"] = set()
    for parent, _dirs, names in os.walk(directory):
        for name in names:
            try:
                info = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


class _FullDisk:
    """Directories whose disk was found full: a warning when an episode starts, INFO when it ends.

    Worker threads share it, hence the lock. One line per episode, not one per refused
    upload, as for pool saturation and accept failures.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._directories: Set[str] = set()

    def full(self, directory: str, exc: OSError) -> None:
        with self._lock:
            if directory in self._directories:
                return
            self._directories.add(directory)
        log.warning(
            "cannot store uploads in %s: %s; answering 507 until an upload fits", directory, exc.strerror or exc
        )

    def stored(self, directory: str) -> None:
        if directory not in self._directories:  # the usual case: no lock
            return
        with self._lock:
            if directory not in self._directories:
                return
            self._directories.discard(directory)
        log.info("uploads are stored in %s again", directory)


_full_disk = _FullDisk()


def store_upload(directory: str, body: bytes, quota: Optional[UploadQuota] = None) -> str:
    """Worker job: validate ``body`` and store it as ``directory/upload_YYYYMMDD_HHMMSS_xxxx.json``.

    Returns the file name. Raises HTTPError: 400 for invalid JSON, 507 when ``quota``
    has no room for it or the disk is full (RFC 4918 §11.5), 500 when the directory
    cannot be written (EACCES, EIO...). Nothing is left behind on error, not even a
    file already linked under its final name: a 5xx means the upload is not stored
    (and its room in the quota is free again).
    Running out of descriptors or memory (EMFILE, ENFILE, ENOMEM) is raised as the
    OSError, which the pool bridge answers 503 with Retry-After: a moment later the
    same upload may well succeed.
    """
    validate_json(body)
    temp = final = None
    fd = -1
    try:
        os.makedirs(directory, exist_ok=True)
        if quota is not None and quota.limit_bytes:
            fd, temp = quota.reserved_temp_file(directory, len(body))
        else:
            fd, temp = _locked_temp_file(directory)
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)  # the bytes are on disk before any name points at them
        if quota is not None and quota.limit_bytes:
            # Names change under the quota's lock: a sum never sees the upload between
            # names (readdir during a link and an unlink may miss both).
            with quota.locked(directory):
                name = _publish(temp, directory)
                final = os.path.join(directory, name)
                _remove(temp)
                temp = None
        else:
            name = _publish(temp, directory)
            final = os.path.join(directory, name)
        _fsync_directory(directory)  # the new name itself survives a crash
        final = None  # durable: keep it
        _full_disk.stored(directory)
        return name
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _full_disk.full(directory, exc)
            raise HTTPError(507, "no space left on the server's disk to store the upload") from None
        if exc.errno in EXHAUSTED_ERRNOS:
            raise  # back-pressure, not a fault of the disk: the caller answers 503
        log.error("cannot store upload in %s: %s", directory, exc)
        raise HTTPError(500, "cannot store the upload: %s" % (exc.strerror or exc)) from None
    finally:
        for path in (temp, final):
            if path is not None:
                _remove(path)  # a removed temp file is room given back to the quota
        if fd >= 0:
            _close(fd)  # only now: it releases the lock, and the temp name is already gone


def _locked_temp_file(directory: str) -> "tuple[int, str]":
    """A new temp file in ``directory``, open and under our exclusive flock. Raises OSError."""
    for _ in range(_NAME_ATTEMPTS):
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a sweep holds it, a moment
        try:
            ours = os.path.samestat(os.fstat(fd), os.stat(temp))
        except FileNotFoundError:
            ours = False  # a sweep locked and removed it before we could lock it
        if ours:
            return fd, temp
        _close(fd)
    raise OSError(errno.EAGAIN, "no temp file survived %d attempts" % _NAME_ATTEMPTS)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError as exc:  # the data was fsynced already; nothing to answer
        log.error("cannot close an upload temp file: %s", exc)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # never mask the error being answered
        log.error("cannot remove %s: %s", path, exc)


def _publish(temp: str, directory: str) -> str:
    """Give the complete temp file its final, unique name; return that name."""
    for _ in range(_NAME_ATTEMPTS):
        name = "upload_%s_%s.json" % (time.strftime("%Y%m%d_%H%M%S"), secrets.token_hex(2))
        final = os.path.join(directory, name)
        try:
            os.link(temp, final)  # atomic, and refuses to replace an existing file
            return name
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise
            # No hard links on this file system: rename, after checking the name is free.
            if os.path.lexists(final):
                continue
            os.replace(temp, final)
            return name
    raise HTTPError(500, "no free upload file name after %d attempts" % _NAME_ATTEMPTS)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(directory: str) -> int:
    """Delete temp files a crash left in ``directory``; return how many. Call at start.

    A temp file whose flock another process (or thread) holds is being written and is
    left alone; see the module docstring for why that is race-free. Raises OSError when
    ``directory`` exists but cannot be listed.
    """
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
            removed += _remove_if_abandoned(os.path.join(directory, name))
    return removed


def _remove_if_abandoned(path: str) -> int:
    """Remove ``path`` if no one holds its lock; 1 if removed, else 0."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return 0  # gone already, or not a plain file of ours (a symlink): not ours to judge
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # a live writer holds it
        if not os.path.samestat(os.fstat(fd), os.lstat(path)):
            return 0  # the name now belongs to a newer file
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0  # its writer finished and removed it meanwhile
    finally:
        os.close(fd)


def is_json_media_type(value: Optional[str]) -> bool:
    """True for ``application/json`` (any case) with no charset other than UTF-8."""
    if value is None:
        return False
    media_type, *parameters = value.split(";")
    if media_type.strip(" \t").lower() != "application/json":
        return False
    for parameter in parameters:
        key, _, val = parameter.partition("=")
        if key.strip(" \t").lower() == "charset" and val.strip(' \t"').lower() not in ("utf-8", "utf8"):
            return False
    return True


class Uploads:
    """``POST /upload``."""

    def __init__(self, config: "Config") -> None:
        self.directory = os.path.join(os.path.realpath(config.root), UPLOADS_DIR)
        self.quota = UploadQuota(config.max_uploads_bytes)

    def route(self, request: "Request") -> Optional[Response]:
        """405 for other methods, 415 for non-JSON; otherwise collect the body.

        Raises HTTPError 405 or 415.
        """
        head = request.head
        assert head is not None
        if head.method == "OPTIONS":
            request.route = self._options
            return None
        if head.method != "POST":
            raise HTTPError(405, "use POST to upload", headers=(("Allow", ALLOW),))
        if not is_json_media_type(head.get("content-type")):
            raise HTTPError(
                415, "Content-Type must be application/json (UTF-8)", headers=(("Accept-Post", "application/json"),)
            )
        if head.content_length is not None and not self.quota.fits(head.content_length):
            raise self.quota.full_error()  # before the body is read (and before 100 Continue)
        request.want_body()
        request.route = self._store
        return None

    @staticmethod
    def _options(conn: "Connection", request: "Request") -> Response:
        return Response(204, [("Allow", ALLOW), ("Accept-Post", "application/json")])

    def _store(self, conn: "Connection", request: "Request") -> None:
        body = bytes(request.body or b"")
        conn.run_in_pool(store_upload, (self.directory, body, self.quota), functools.partial(self._created, len(body)))

    @staticmethod
    def _created(size: int, name: str) -> Response:
        location = "/%s/%s" % (UPLOADS_DIR, name)
        document = {"file": name, "location": location, "bytes": size}
        return Response(
            201,
            [("Location", location), ("Content-Type", "application/json")],
            (json.dumps(document) + "\n").encode("utf-8"),
        )
