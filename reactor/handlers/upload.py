"""``POST /upload``: store a JSON document under ``<root>/uploads/``, durably and atomically.

The loop thread checks the method (405) and Content-Type (415) before the body is read,
so ``Expect: 100-continue`` clients get a refusal without sending it; the parser bounds
the body (413). A worker then validates the JSON (400) and writes it: a temp file in
the same directory, ``fsync``, a hard link to the final name (which fails instead of
overwriting, so names stay unique), ``fsync`` of the directory, temp file removed.
A crash at any moment leaves either nothing or a complete file under its final name
(plus at worst a ``.upload-*.tmp`` that :func:`remove_stale_temp_files` clears at start).
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Set

from reactor.errors import HTTPError
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
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})  # answered 503 by Connection.run_in_pool


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


def store_upload(directory: str, body: bytes) -> str:
    """Worker job: validate ``body`` and store it as ``directory/upload_YYYYMMDD_HHMMSS_xxxx.json``.

    Returns the file name. Raises HTTPError: 400 for invalid JSON, 507 when the disk
    is full (RFC 4918 §11.5), 500 when the directory cannot be written (EACCES, EIO...).
    Running out of descriptors or memory (EMFILE, ENFILE, ENOMEM) is raised as the
    OSError, which the pool bridge answers 503 with Retry-After: a moment later the
    same upload may well succeed. Nothing is left behind on error, not even a file
    already linked under its final name: a 5xx means the upload is not stored.
    """
    validate_json(body)
    temp = final = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)  # the bytes are on disk before any name points at them
        finally:
            os.close(fd)
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
        if exc.errno in _EXHAUSTED:
            raise  # back-pressure, not a fault of the disk: the caller answers 503
        log.error("cannot store upload in %s: %s", directory, exc)
        raise HTTPError(500, "cannot store the upload: %s" % (exc.strerror or exc)) from None
    finally:
        for path in (temp, final):
            if path is not None:
                _remove(path)


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
    """Delete temp files a crash left in ``directory``; return how many. Call at start."""
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except FileNotFoundError:
                pass
    return removed


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
        request.want_body()
        request.route = self._store
        return None

    @staticmethod
    def _options(conn: "Connection", request: "Request") -> Response:
        return Response(204, [("Allow", ALLOW), ("Accept-Post", "application/json")])

    def _store(self, conn: "Connection", request: "Request") -> None:
        body = bytes(request.body or b"")
        conn.run_in_pool(store_upload, (self.directory, body), functools.partial(self._created, len(body)))

    @staticmethod
    def _created(size: int, name: str) -> Response:
        location = "/%s/%s" % (UPLOADS_DIR, name)
        document = {"file": name, "location": location, "bytes": size}
        return Response(
            201,
            [("Location", location), ("Content-Type", "application/json")],
            (json.dumps(document) + "\n").encode("utf-8"),
        )
