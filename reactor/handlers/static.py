"""Static files under the document root: GET and HEAD (RFC 9110 §9.3.1, §9.3.2).

The loop thread does only string work: percent-decode the path once, refuse NUL,
backslashes and ``..`` segments (403) and dotfiles (404), and pick the route. A worker
does everything that touches the disk: resolve symlinks, confirm the result is still
under the root (403 if not), stat, find ``index.html`` for a directory, open, and read
small files whole. Large files come back as an open descriptor that the connection
sends in bounded pieces, so no file is ever held whole in memory.

HTML is shown inline; other files carry ``Content-Disposition: attachment`` so browsers
download them (``--inline`` turns that off).
"""

from __future__ import annotations

import functools
import mimetypes
import os
import stat
import urllib.parse
from typing import TYPE_CHECKING, List, Optional

from reactor.errors import HTTPError
from reactor.response import FileBody, Response

if TYPE_CHECKING:  # pragma: no cover
    from reactor.config import Config
    from reactor.connection import Connection, Request

ALLOW = "GET, HEAD, OPTIONS"
#: Files up to this size are read whole by the worker; larger ones are streamed.
SMALL_FILE_BYTES = 256 * 1024

# Web types that some systems' mime.types lack or map differently.
_WEB_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",  # RFC 9239
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}
_mime = mimetypes.MimeTypes()  # reads the system's mime.types now, not on the loop thread
for _ext, _type in _WEB_TYPES.items():
    _mime.add_type(_type, _ext)


def content_type(name: str) -> str:
    """The Content-Type for a file name: ``mimetypes`` plus the web types above.

    Text types get ``; charset=utf-8``; unknown types are ``application/octet-stream``.
    """
    media_type, _encoding = _mime.guess_type(name, strict=False)
    if media_type is None:
        return "application/octet-stream"
    if media_type.startswith("text/"):
        return media_type + "; charset=utf-8"
    return media_type


def content_disposition(name: str) -> str:
    """``attachment; filename="..."`` (RFC 6266), with ``filename*`` for non-ASCII names."""
    fallback = "".join(
        char if 0x20 <= ord(char) < 0x7F and char not in '"\\' else "_" for char in name
    )
    value = 'attachment; filename="%s"' % fallback
    if fallback != name:
        value += "; filename*=UTF-8''%s" % urllib.parse.quote(name, safe="")
    return value


class FileResult:
    """What a worker found: a file (bytes or an open descriptor) or a redirect."""

    __slots__ = ("name", "size", "mtime", "data", "fd", "redirect")

    def __init__(
        self,
        name: str = "",
        size: int = 0,
        mtime: float = 0.0,
        data: Optional[bytes] = None,
        fd: int = -1,
        redirect: Optional[str] = None,
    ) -> None:
        self.name = name
        self.size = size
        self.mtime = mtime
        self.data = data
        self.fd = fd
        self.redirect = redirect

    def close(self) -> None:
        """Release the descriptor if the result is dropped unsent."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def split_path(path: str, dotfiles: bool = False) -> List[str]:
    """Percent-decode an origin-form path once and split it into safe segments.

    ``path`` excludes the query. Raises HTTPError: 400 if it is not UTF-8 after
    decoding; 403 for NUL, a backslash or a ``..`` segment; 404 for a dotfile or
    dot-directory unless ``dotfiles``. Empty segments (``//``) are dropped.
    """
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise HTTPError(400, "request-target is not UTF-8 after percent-decoding") from None
    if "\x00" in decoded:
        raise HTTPError(403, "NUL in path")
    if "\\" in decoded:
        raise HTTPError(403, "backslash in path")
    segments = [segment for segment in decoded.split("/") if segment]
    if ".." in segments:
        raise HTTPError(403, "'..' segment in path")
    if not dotfiles and any(segment.startswith(".") for segment in segments):
        raise HTTPError(404, "no such file")
    return segments


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def open_file(root: str, segments: List[str], slash: bool) -> FileResult:
    """Worker job: find the file for ``segments`` under ``root`` and open or read it.

    ``root`` is already resolved (``os.path.realpath``). ``slash`` tells whether the
    request path ended in ``/``; a directory without it is redirected. Raises HTTPError
    403 (outside the root, permission denied) or 404 (missing, not a regular file).
    """
    real = os.path.realpath(os.path.join(root, *segments))
    if not _inside(root, real):
        raise HTTPError(403, "path resolves outside the document root")
    try:
        info = os.stat(real)
        if stat.S_ISDIR(info.st_mode):
            if not slash and segments:
                return FileResult(redirect="/" + "/".join(urllib.parse.quote(s) for s in segments) + "/")
            real = os.path.realpath(os.path.join(real, "index.html"))
            if not _inside(root, real):
                raise HTTPError(403, "path resolves outside the document root")
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise HTTPError(404, "no such file") from None
    except PermissionError:
        raise HTTPError(403, "permission denied") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HTTPError(404, "not a regular file")
        # The path may have been swapped for a symlink since realpath(); trust only
        # where the opened descriptor really points.
        opened = _fd_path(fd)
        if opened is not None and not _inside(root, opened):
            raise HTTPError(403, "path resolves outside the document root")
        name = os.path.basename(real)
        if info.st_size <= SMALL_FILE_BYTES:
            data = _read_all(fd, info.st_size)
            os.close(fd)
            return FileResult(name, len(data), info.st_mtime, data=data)
        return FileResult(name, info.st_size, info.st_mtime, fd=fd)
    except BaseException:
        os.close(fd)
        raise


def _fd_path(fd: int) -> Optional[str]:
    try:
        return os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return None  # no /proc: the realpath() check above stands alone


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break  # the file shrank; send what is there, Content-Length will match
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class StaticFiles:
    """GET and HEAD of files under ``config.root``."""

    def __init__(self, config: "Config") -> None:
        self.root = os.path.realpath(config.root)
        self.attachments = config.attachments
        self.dotfiles = config.dotfiles

    def check(self, request: "Request") -> Optional[Response]:
        """Answer OPTIONS, refuse other methods (405) and bad paths; pick the route."""
        head = request.head
        assert head is not None
        if head.method == "OPTIONS":
            return Response(204, [("Allow", ALLOW)])
        if head.method not in ("GET", "HEAD"):
            raise HTTPError(405, "%s is not allowed here" % head.method, headers=(("Allow", ALLOW),))
        path, _, query = head.path.partition("?")
        segments = split_path(path, self.dotfiles)
        request.route = functools.partial(self._serve, segments, path.endswith("/"), query)
        return None

    def _serve(self, segments: List[str], slash: bool, query: str, conn: "Connection", request: "Request") -> None:
        conn.run_in_pool(open_file, (self.root, segments, slash), functools.partial(self._respond, query))

    def _respond(self, query: str, result: FileResult) -> Response:
        if result.redirect is not None:
            location = result.redirect + ("?" + query if query else "")
            return Response(
                308,
                [("Location", location), ("Content-Type", "text/plain; charset=utf-8")],
                ("Moved to %s\n" % location).encode("utf-8"),
            )
        media_type = content_type(result.name)
        fields = [("Content-Type", media_type), ("X-Content-Type-Options", "nosniff")]
        if self.attachments and not media_type.startswith("text/html"):
            fields.append(("Content-Disposition", content_disposition(result.name)))
        if result.data is not None:
            return Response(200, fields, result.data)
        fd, result.fd = result.fd, -1
        return Response(200, fields, file=FileBody(fd, 0, result.size))
