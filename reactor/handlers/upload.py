"""``POST /upload``: store a JSON document under ``<root>/uploads/``, durably and atomically.

The loop thread checks the method (405), Content-Type (415) and, from Content-Length,
the uploads quota (507) before the body is read, so ``Expect: 100-continue`` clients get
a refusal without sending it; the parser bounds the body (413). A worker then validates
the JSON (400) and writes it: a temp file in the same directory, ``fsync``, a hard link
to the final name (which fails instead of overwriting, so names stay unique), ``fsync``
of the directory, temp file removed.
A crash at any moment leaves either nothing or a complete file under its final name
(plus at worst a ``.upload-*.tmp`` that :func:`remove_stale_temp_files` clears at start).

The uploads quota (``--max-uploads-bytes``) holds across threads and worker processes
alike: :mod:`reactor.handlers.quota` keeps the bytes the folder uses in a ledger beside
the uploads, changed under an exclusive ``flock(2)`` on the directory. The writer
reserves the body's size there before its temp file exists (507 if it does not fit),
names its files under the same lock, and gives the size back if it fails, so nothing is
ever half-written past the quota, and an upload costs the same whatever the folder
holds. Files deleted from ``uploads/`` by hand free their room at the next scan of the
folder, at most :data:`~reactor.handlers.quota.RESCAN_S` (10 s) and one scan later.

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

import errno
import fcntl
import functools
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence, Set

from reactor.errors import EXHAUSTED_ERRNOS, HTTPError
from reactor.handlers.quota import TEMP_PREFIX, TEMP_SUFFIX, UploadQuota
from reactor.loop import EventLoop
from reactor.response import Outcome, Response
from reactor.workers import WorkerPool

if TYPE_CHECKING:  # pragma: no cover
    from reactor.config import Config
    from reactor.connection import Connection, Request

log = logging.getLogger("reactor.upload")

__all__ = ["UploadQuota", "Uploads", "store_upload", "remove_stale_temp_files", "validate_json"]

ALLOW = "POST, OPTIONS"
UPLOADS_DIR = "uploads"
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
    size = len(body)
    counted = quota is not None and quota.limit_bytes > 0
    reserved = False  # the quota counts this upload's size
    try:
        os.makedirs(directory, exist_ok=True)
        if counted:
            assert quota is not None
            with quota.account(directory) as account:  # one small read and write, whatever the folder holds
                quota.reserve(account, size)  # 507 if it does not fit
                fd, temp = _locked_temp_file(directory)
                os.ftruncate(fd, size)  # its blocks are claimed as it is written; sparse until then
                account.named(os.path.basename(temp), size, True)
            reserved = True
        else:
            fd, temp = _locked_temp_file(directory)
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)  # the bytes are on disk before any name points at them
        if counted:
            assert quota is not None
            # Names change under the quota's lock, and a scan that runs meanwhile hears of them.
            with quota.account(directory) as account:
                name = _publish(temp, directory)
                final = os.path.join(directory, name)
                account.named(name, size, True)
                _remove(temp)
                account.named(os.path.basename(temp), size, False)
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
        left = [path for path in (temp, final) if path is not None]
        if left and reserved:
            assert quota is not None
            _give_back(quota, directory, left, size)  # the reservation, with the files
        else:
            for path in left:
                _remove(path)
        if fd >= 0:
            _close(fd)  # only now: it releases the lock, and the temp name is already gone


def _give_back(quota: UploadQuota, directory: str, paths: Sequence[str], size: int) -> None:
    """Remove what a failed upload left and give its reserved ``size`` back to the quota."""
    try:
        with quota.account(directory) as account:
            for path in paths:
                _remove(path)
                account.named(os.path.basename(path), size, False)
            account.add(-size)
    except OSError as exc:  # the ledger cannot be had: still remove; the next scan corrects the count
        log.error("cannot give %d bytes back to the uploads quota: %s", size, exc)
        for path in paths:
            _remove(path)


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
    """``POST /upload``, and the upkeep of ``uploads/``: the start-up sweep and the quota's scans."""

    def __init__(self, config: "Config") -> None:
        self.directory = os.path.join(os.path.realpath(config.root), UPLOADS_DIR)
        self.quota = UploadQuota(config.max_uploads_bytes if config.uploads else 0)  # read-only: no ledger
        self._loop: Optional[EventLoop] = None
        self._pool: Optional[WorkerPool] = None

    def start(self, loop: EventLoop, pool: WorkerPool) -> None:
        """At start, before serving: sweep stray temp files; count the folder if no process has lately.

        Then, with a quota, a scan on ``pool`` every :meth:`UploadQuota.rescan_interval_s`.
        Raises OSError when the folder cannot be listed or its ledger written.
        """
        removed = remove_stale_temp_files(self.directory)
        if removed:
            log.warning("removed %d incomplete upload temp file(s) left by an earlier crash", removed)
        if not self.quota.limit_bytes:
            return
        self.quota.settle(self.directory)
        self._loop, self._pool = loop, pool
        loop.call_later(self.quota.rescan_interval_s(), self._rescan)

    def _rescan(self) -> None:
        """Loop thread: ask the pool to look at the folder again (nothing, if the pool is full)."""
        assert self._loop is not None and self._pool is not None
        if not self._pool.submit(self.quota.rescan, (self.directory,), self._rescanned):
            self._loop.call_later(self.quota.rescan_interval_s(), self._rescan)

    def _rescanned(self, future: "Outcome[bool]") -> None:
        try:
            future.result()
        except Exception as exc:  # a folder that cannot be read now; the uploads will say so too
            log.warning("cannot scan %s for the uploads quota: %s", self.directory, exc)
        assert self._loop is not None
        self._loop.call_later(self.quota.rescan_interval_s(), self._rescan)

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
