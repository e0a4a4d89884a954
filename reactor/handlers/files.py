"""The static handler's disk work: resolving paths, opening, reading, compressing.

Everything here runs on a worker thread (it stats, opens and reads), never on the loop
thread. The loop thread has already refused unsafe paths (:func:`split_path` runs
there: it is string work); a worker then

1. resolves symlinks and confirms the result is still under the root (403 if not),
   redirects a directory named without its trailing slash, finds ``index.html`` or
   makes a listing (:func:`locate`);
2. opens the file and checks where the descriptor really points (a symlink may have
   been swapped in since), then builds an :class:`Entry`: the file's validators, its
   media type, and ready-made response fields for each form it can be sent in;
3. reads small files whole; large ones stay an open descriptor that the connection
   sends with ``os.sendfile``, so no file is ever held whole in memory.

An Entry is handed to the loop thread and from then on belongs to it; a worker that
compresses a cached entry's body returns the bytes instead of touching the entry.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import stat
import time
import urllib.parse
from typing import TYPE_CHECKING, List, Optional, Tuple

from reactor.errors import HTTPError
from reactor.handlers import compress, conditional, livereload, mime
from reactor.response import FrozenFields
from reactor.serializer import format_http_date

if TYPE_CHECKING:  # pragma: no cover
    from reactor.config import Config

#: Files up to this size are read whole (and may be cached); larger ones are streamed.
SMALL_FILE_BYTES = 256 * 1024
NOT_FOUND_PAGE = "404.html"
INDEX_PAGE = "index.html"
GZIP_SUFFIX = ".gz"
#: With --live-reload, HTML files up to this size are read whole to put the script in;
#: a larger one is sent as it is (gigantic pages are not edited by hand).
MAX_PAGE_BYTES = compress.MAX_COMPRESS_BYTES
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
# What the file system may answer about a name the client chose: it resolves to no file
# (404), or to one this server may not read (403). The client's doing, not a fault of the
# server: no traceback, at most a debug line. Any other errno (EIO, EMFILE...) is raised.
_NO_SUCH_NAME = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EINVAL})
_NOT_ALLOWED = frozenset({errno.EACCES, errno.EPERM})

log = logging.getLogger("reactor.static")

# A file's identity for revalidation: path, then device, inode, size, mtime and ctime
# in ns, then the same for its .gz sidecar (or None).
Stamp = Tuple[object, ...]


@dataclasses.dataclass(frozen=True)
class Options:
    """What the static handler was told at start, shared read-only with the workers."""

    root: str  # resolved with os.path.realpath
    dotfiles: bool = False
    attachments: bool = True
    list_directories: bool = False
    gzip: bool = True
    max_age_s: Optional[int] = None
    live_reload: bool = False  # pages get the live-reload script and Cache-Control: no-store

    @classmethod
    def from_config(cls, config: "Config") -> "Options":
        return cls(
            root=os.path.realpath(config.root),
            dotfiles=config.dotfiles,
            attachments=config.attachments,
            list_directories=config.list_directories,
            gzip=config.gzip,
            max_age_s=config.max_age_s,
            live_reload=config.live_reload,
        )


class Variant:
    """One form of a file's content: unencoded (identity) or gzip.

    ``data`` (bytes in memory) or ``fd`` (an open descriptor, for large files) holds the
    body once it is ready; a gzip form starts with neither and is filled on a worker.
    ``fields`` are the 200 response's fields; ``meta_fields`` the same less
    Content-Type and Content-Encoding (a multipart/byteranges response has its own);
    ``not_modified_fields`` are those a 304 repeats (RFC 9110 §15.4.5).
    """

    __slots__ = ("etag", "size", "data", "fd", "sidecar", "fields", "meta_fields", "not_modified_fields")

    def __init__(self, etag: str, size: int, sidecar: Optional[str] = None) -> None:
        self.etag = etag
        self.size = size
        self.data: Optional[bytes] = None
        self.fd = -1
        self.sidecar = sidecar  # path of a precompressed file to send instead of compressing
        self.fields: FrozenFields = FrozenFields()
        self.meta_fields: Tuple[Tuple[str, str], ...] = ()
        self.not_modified_fields: Tuple[Tuple[str, str], ...] = ()

    @property
    def ready(self) -> bool:
        return self.data is not None or self.fd >= 0

    def set_data(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def take_fd(self) -> int:
        """Hand the descriptor to the caller, who must close it."""
        fd, self.fd = self.fd, -1
        return fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Entry:
    """A regular file as the static handler serves it: validators, type, forms.

    ``key`` is the request path it was found by (the cache key), ``segments`` and
    ``slash`` how to find it again. ``last_modified_s`` is whole POSIX seconds.
    ``gzip`` is None when the file is never sent gzip-encoded (a type that does not
    compress, compression off, a file too large with no sidecar, or gzip shown not
    to help). ``ranged`` is the form byte ranges are cut from: ``identity``, except for
    a page with the live-reload script, whose ``identity`` is the page and ``ranged``
    the file as it is on disk (with its own ETag). ``epoch`` is the live-reload epoch
    the entry was read at (-1 without live reload).
    """

    __slots__ = (
        "key",
        "segments",
        "slash",
        "path",
        "stamp",
        "size",
        "content_type",
        "last_modified_s",
        "identity",
        "gzip",
        "checked_at",
        "revalidating",
        "cacheable",
        "cost_bytes",
        "ranged",
        "epoch",
    )

    def __init__(
        self,
        key: str,
        segments: List[str],
        slash: bool,
        path: str,
        stamp: Stamp,
        size: int,
        content_type: str,
        last_modified_s: int,
        identity: Variant,
        checked_at: float,
    ) -> None:
        self.key = key
        self.segments = segments
        self.slash = slash
        self.path = path
        self.stamp = stamp
        self.size = size
        self.content_type = content_type
        self.last_modified_s = last_modified_s
        self.identity = identity
        self.gzip: Optional[Variant] = None
        self.checked_at = checked_at  # time.monotonic() just before the stat
        self.revalidating = False
        self.cacheable = True
        self.cost_bytes = 0
        self.ranged = identity
        self.epoch = -1

    def body_bytes(self) -> int:
        """Bytes of body held in memory (what the cache is charged)."""
        total = len(self.identity.data) if self.identity.data is not None else 0
        if self.gzip is not None and self.gzip.data is not None:
            total += len(self.gzip.data)
        if self.ranged is not self.identity and self.ranged.data is not None:
            total += len(self.ranged.data)
        return total

    def close(self) -> None:
        """Release any open descriptor (a large file, a large sidecar)."""
        self.identity.close()
        self.ranged.close()
        if self.gzip is not None:
            self.gzip.close()


# -- the results a worker hands back ------------------------------------------------------


class Redirect:
    """A directory asked for without its trailing slash: ``location`` is the path to use."""

    __slots__ = ("location",)

    def __init__(self, location: str) -> None:
        self.location = location

    def close(self) -> None:
        pass


class Listing:
    """A directory without ``index.html``: the HTML listing of ``directory``."""

    __slots__ = ("directory",)

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def close(self) -> None:
        pass


# -- path safety and resolution -----------------------------------------------------------


def split_path(path: str, dotfiles: bool = False) -> List[str]:
    """Percent-decode an origin-form path once and split it into safe segments.

    Loop thread (string work only). ``path`` excludes the query. Raises HTTPError: 400
    if it is not UTF-8 after decoding; 403 for NUL, a backslash, a ``..`` segment or a
    path starting with ``//`` (``//etc/passwd``, an absolute path); 404 for a dotfile or
    dot-directory unless ``dotfiles``. Other empty segments (``/a//b``) are dropped, so
    no redirect built from them can start with ``//`` (another host).
    """
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise HTTPError(400, "request-target is not UTF-8 after percent-decoding") from None
    if "\x00" in decoded:
        raise HTTPError(403, "NUL in path")
    if "\\" in decoded:
        raise HTTPError(403, "backslash in path")
    if decoded.startswith("//"):  # //etc/passwd: an absolute file-system path, as a traversal attempt
        raise HTTPError(403, "path starts with '//' (an absolute path)")
    segments = [segment for segment in decoded.split("/") if segment]
    if ".." in segments:
        raise HTTPError(403, "'..' segment in path")
    if not dotfiles and any(segment.startswith(".") for segment in segments):
        raise HTTPError(404, "no such file")
    return segments


def quote_path(segments: List[str], slash: bool) -> str:
    """The origin-form path for ``segments``: ``/a%20b/c`` (and a final ``/`` if ``slash``)."""
    path = "/" + "/".join(urllib.parse.quote(segment, safe="") for segment in segments)
    if slash and segments:
        path += "/"
    return path


def refused(exc: OSError, path: str) -> HTTPError:
    """The answer to ``exc``, raised while resolving or opening ``path`` for a client.

    404 for a name that resolves to nothing (ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP,
    EINVAL), 403 for one the server may not read (EACCES, EPERM). Raises ``exc`` itself
    for anything else: that is the server's trouble, not the client's.
    """
    if exc.errno in _NO_SUCH_NAME:
        answer = HTTPError(404, "no such file")
    elif exc.errno in _NOT_ALLOWED:
        answer = HTTPError(403, "permission denied")
    else:
        raise exc
    if exc.errno not in (errno.ENOENT, errno.EACCES):  # the usual two need no explaining
        log.debug("%d for %r: %s", answer.status, path[-100:], exc.strerror)
    return answer


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def locate(options: Options, segments: List[str], slash: bool) -> "str | Redirect | Listing":
    """Worker: what ``segments`` names under the root: a file's real path, or else.

    Returns the real path of a regular file (a directory's ``index.html``), a
    :class:`Redirect` for a directory without its trailing slash, or a
    :class:`Listing` when listings are on and the directory has no index. Raises
    HTTPError 403 (outside the root, permission denied) or 404 (missing, a directory
    without index, a file asked for with a trailing slash, not a regular file, a name
    the file system cannot resolve: see :func:`refused`), or OSError for other failures.
    """
    root = options.root
    real = os.path.realpath(os.path.join(root, *segments))
    if not _inside(root, real):
        raise HTTPError(403, "path resolves outside the document root")
    try:
        info = os.stat(real)
        if stat.S_ISDIR(info.st_mode):
            if not slash and segments:
                return Redirect(quote_path(segments, slash=True))
            index = os.path.realpath(os.path.join(real, INDEX_PAGE))
            if not _inside(root, index):
                raise HTTPError(403, "path resolves outside the document root")
            try:
                if stat.S_ISREG(os.stat(index).st_mode):
                    return index
            except OSError as exc:
                if exc.errno not in _NO_SUCH_NAME:
                    raise  # 403 below, or a fault of the server's
            if options.list_directories:
                return Listing(real)
            raise HTTPError(
                404, "no index.html in this directory (start the server with --list-directories to list its files)"
            )
        if not stat.S_ISREG(info.st_mode):
            raise HTTPError(404, "not a regular file")
        if slash:
            raise HTTPError(404, "not a directory")
    except OSError as exc:
        raise refused(exc, real) from None
    return real


def _fd_path(fd: int) -> Optional[str]:
    try:
        return os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return None  # no /proc: the realpath() check in locate() stands alone


def _file_stamp(info: os.stat_result) -> Tuple[int, int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _sidecar(root: str, path: str, info: os.stat_result) -> Optional[os.stat_result]:
    """The stat of ``path.gz`` if it is a usable precompressed copy of ``path``.

    Usable: a regular file under the root, not older than the original (``gzip -k``
    keeps the original's mtime; an older sidecar is a stale one).
    """
    candidate = path + GZIP_SUFFIX
    try:
        sidecar = os.stat(candidate)
    except OSError:
        return None
    if not stat.S_ISREG(sidecar.st_mode) or sidecar.st_mtime_ns < info.st_mtime_ns:
        return None
    if not _inside(root, os.path.realpath(candidate)):
        return None
    return sidecar


def current_stamp(options: Options, segments: List[str], slash: bool) -> Tuple[float, Optional[Stamp]]:
    """Worker: ``(time.monotonic() before the check, stamp or None)`` for revalidation.

    The stamp is None when the path no longer names a regular file.
    """
    checked_at = time.monotonic()
    try:
        found = locate(options, segments, slash)
        if not isinstance(found, str):
            return checked_at, None
        info = os.stat(found)
    except (HTTPError, OSError):
        return checked_at, None
    sidecar = None
    if options.gzip and mime.is_compressible(mime.content_type(os.path.basename(found))):
        sidecar = _sidecar(options.root, found, info)
    return checked_at, _stamp(found, info, sidecar)


def _stamp(path: str, info: os.stat_result, sidecar: Optional[os.stat_result]) -> Stamp:
    return (path, _file_stamp(info), _file_stamp(sidecar) if sidecar is not None else None)


def open_entry(
    options: Options, path: str, key: str, segments: List[str], slash: bool, checked_at: float, epoch: int = -1
) -> Entry:
    """Worker: open ``path`` (from :func:`locate`) and build its :class:`Entry`.

    Small files are read whole and closed; a large one keeps its descriptor in
    ``entry.identity.fd`` (the caller closes it through ``entry.close()``). With live
    reload, an HTML file up to :data:`MAX_PAGE_BYTES` is read whole and its identity
    form is the page with the script for ``epoch`` (:func:`reactor.handlers.livereload.inject`).
    Raises HTTPError 403 or 404, or OSError.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise refused(exc, path) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HTTPError(404, "not a regular file")
        # The path may have been swapped for a symlink since realpath(); trust only
        # where the opened descriptor really points.
        opened = _fd_path(fd)
        if opened is not None and not _inside(options.root, opened):
            raise HTTPError(403, "path resolves outside the document root")
        name = os.path.basename(path)
        media_type = mime.content_type(name)
        compressible = options.gzip and mime.is_compressible(media_type)
        page = options.live_reload and media_type.startswith("text/html") and info.st_size <= MAX_PAGE_BYTES
        # A page's precompressed sidecar lacks the script: it is never sent for the page.
        sidecar = _sidecar(options.root, path, info) if compressible and not page else None
        now_s = time.time()
        last_modified_s = min(int(info.st_mtime), int(now_s))  # never in the future (§8.8.2.1)
        size = info.st_size
        identity = Variant(conditional.make_etag(info.st_ino, size, info.st_mtime_ns), size)
        entry = Entry(
            key,
            segments,
            slash,
            path,
            _stamp(path, info, sidecar),
            size,
            media_type,
            last_modified_s,
            identity,
            checked_at,
        )
        # A small file's gzip form is kept in memory with it, so its sidecar must be small too.
        if sidecar is not None and (size > SMALL_FILE_BYTES or sidecar.st_size <= SMALL_FILE_BYTES):
            entry.gzip = Variant(
                conditional.make_etag(sidecar.st_ino, sidecar.st_size, sidecar.st_mtime_ns, "gz"),
                sidecar.st_size,
                sidecar=path + GZIP_SUFFIX,
            )
        elif compressible and size <= compress.MAX_COMPRESS_BYTES:
            suffix = "lr%x-gz" % epoch if page else "gz"
            entry.gzip = Variant(conditional.make_etag(info.st_ino, size, info.st_mtime_ns, suffix), 0)
        if size <= SMALL_FILE_BYTES or page:
            data = _read_all(fd, size)
            if len(data) != size or _file_stamp(os.fstat(fd)) != _file_stamp(info):
                entry.cacheable = False  # written to while we read: serve it, don't keep it
                entry.size = len(data)
            identity.set_data(data)
            os.close(fd)
            fd = -1
        else:
            identity.fd = fd
        entry.epoch = epoch
        if page:  # the page is the file with the script, a representation of its own (own ETag)
            assert identity.data is not None
            entry.identity = Variant(conditional.make_etag(info.st_ino, size, info.st_mtime_ns, "lr%x" % epoch), 0)
            entry.identity.set_data(livereload.inject(identity.data, epoch))
        # Vary only where a gzip form exists: a file too large to compress never varies.
        _set_fields(entry, options, name, entry.gzip is not None, format_http_date(last_modified_s))
        return entry
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def _set_fields(entry: Entry, options: Options, name: str, varies: bool, last_modified: str) -> None:
    """Build each form's response fields once, here on the worker."""
    media_type = entry.content_type
    cache_control = None
    if options.live_reload and media_type.startswith("text/html"):
        cache_control = "no-store"  # a page must never come from a cache without its script's epoch
    elif options.max_age_s is not None:
        cache_control = "max-age=%d" % options.max_age_s
    ranged = entry.ranged if entry.ranged is not entry.identity else None
    for variant in (entry.identity, entry.gzip, ranged):
        if variant is None:
            continue
        validators = [("ETag", variant.etag), ("Last-Modified", last_modified)]
        if varies:
            validators.append(("Vary", "Accept-Encoding"))
        if cache_control is not None:
            validators.append(("Cache-Control", cache_control))
        meta = []
        if options.attachments and not media_type.startswith("text/html"):
            meta.append(("Content-Disposition", mime.content_disposition(name)))
        meta.extend(validators)
        meta.append(("Accept-Ranges", "bytes"))
        meta.append(("X-Content-Type-Options", "nosniff"))
        head = [("Content-Type", media_type)]
        if variant is entry.gzip:
            head.append(("Content-Encoding", "gzip"))
        variant.fields = FrozenFields(head + meta)
        variant.meta_fields = tuple(meta)
        variant.not_modified_fields = tuple(validators)


def gzip_body(entry: Entry) -> Optional[bytes]:
    """Worker: the gzip form of ``entry``'s body, or None if gzip does not make it smaller.

    Reads the sidecar when there is one, else compresses the identity body (in memory
    or from its descriptor). Does not modify ``entry``. Raises OSError.
    """
    variant = entry.gzip
    assert variant is not None
    if variant.sidecar is not None:
        fd = os.open(variant.sidecar, _OPEN_FLAGS)
        try:
            return _read_all(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    identity = entry.identity
    if identity.data is not None:
        body = compress.gzip_bytes(identity.data)
    else:
        body = compress.gzip_file(identity.fd, entry.size)
    return body if len(body) < identity.size else None


def open_sidecar(entry: Entry) -> None:
    """Worker: make a large sidecar ready to send: open it into ``entry.gzip.fd``."""
    variant = entry.gzip
    assert variant is not None and variant.sidecar is not None
    fd = os.open(variant.sidecar, _OPEN_FLAGS)
    info = os.fstat(fd)
    variant.fd = fd
    variant.size = info.st_size


def read_range(entry: Entry, offset: int, length: int) -> bytes:
    """``length`` bytes of the ranged form's body from ``offset`` (memory or descriptor)."""
    identity = entry.ranged
    if identity.data is not None:
        return identity.data[offset : offset + length]
    pieces = []
    while length > 0:
        block = os.pread(identity.fd, length, offset)
        if not block:
            raise HTTPError(500, "file shrank while reading a range")
        pieces.append(block)
        offset += len(block)
        length -= len(block)
    return b"".join(pieces)


def read_not_found_page(options: Options) -> Optional[bytes]:
    """Worker: the root's ``404.html`` if it is a small regular file under the root."""
    path = os.path.realpath(os.path.join(options.root, NOT_FOUND_PAGE))
    if not _inside(options.root, path):
        return None
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > SMALL_FILE_BYTES:
            return None
        return _read_all(fd, info.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break  # the file shrank; the caller compares lengths
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
