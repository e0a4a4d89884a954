"""WSGI (PEP 3333) without I/O: a request's environ, what ``start_response`` accepts, ``wsgi.file_wrapper``.

Theory of operation
-------------------
This module holds the rules of the interface and nothing that moves bytes: like the
parser, it is plain values in and plain values out, so every rule can be tested alone.
The handler that runs an application on the application pool
(:mod:`reactor.handlers.app`) uses it on both sides of the call.

**Before the call**, :class:`EnvironMaker` turns a parsed request
(:class:`reactor.events.RequestHead`) into the environ (PEP 3333, "environ Variables").
What is the same for every request (``wsgi.version``, ``SERVER_NAME``, ``SCRIPT_NAME``,
``wsgi.multithread``...) is made once, at start, and copied; per request only the
request-line and the field lines are added. The rules that frameworks depend on:
``PATH_INFO`` is percent-decoded and carried as latin-1 (the bytes of the path, one
code point each), ``QUERY_STRING`` is left encoded, repeated fields are joined with
``", "``, a field name with ``_`` is dropped (``X-Auth_User`` would otherwise be
indistinguishable from ``X-Auth-User``), and the body arrives decoded: a chunked
request has ``CONTENT_LENGTH`` and no ``HTTP_TRANSFER_ENCODING``, and
``wsgi.input_terminated`` is true. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` count
only from a trusted proxy; from anyone else they are removed.

**During the call**, :class:`StartResponse` is the ``start_response`` callable. It
checks what the application gives it at once, so an error surfaces as an exception in
the application's own call (PEP 3333: the server "should check for errors in the
headers at the time start_response is called"): the status, each field's name (a
token) and value (no CR, LF or NUL; latin-1 only), and no hop-by-hop field (RFC 9110
§7.6.1: ``Connection``, ``Keep-Alive``, ``Transfer-Encoding``... belong to one
connection, which the server owns). It keeps the status and fields until the first
body byte; ``exc_info`` replaces them until then and re-raises after. ``write()``
collects bytes for the server to send first.
"""

from __future__ import annotations

import io
import re
import sys
import urllib.parse
from typing import Any, BinaryIO, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Type

from reactor.abnf import TCHAR
from reactor.events import RequestHead

#: What an application is: ``app(environ, start_response) -> iterable of bytes`` (PEP 3333).
WSGIApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ExcInfo = Tuple[Type[BaseException], BaseException, Any]

#: Response fields an application may not set: hop-by-hop (RFC 9110 §7.6.1, PEP 3333
#: "Other HTTP Features"), and any ``Proxy-*``. The server frames and persists the
#: connection itself; a copy from the application would contradict it.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer"})
#: Fields the server sends itself on every response; an application's copy is dropped
#: (X-Request-ID: the id the access log names, the client's own when it sent one).
SERVER_FIELDS = frozenset({"date", "server", "x-request-id"})

_STATUS = re.compile(r"([2-5][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
_TOKEN = re.compile(TCHAR + r"+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
#: A field name's kind, looked up per field line: most names repeat on every response.
_PLAIN, _LENGTH, _DROP = 0, 1, 2
_NAME_KINDS: Dict[str, int] = {}
_NAME_KINDS_MAX = 256
#: Field lines that passed the checks once -> their kind: an application sends the same few
#: (Content-Type, Cache-Control...) on every response, and a dict lookup replaces the checks.
_CHECKED: Dict[Tuple[str, str], int] = {}
_CHECKED_MAX = 256
_CHECKED_VALUE_MAX = 100  # longer values (cookies, ETags) rarely repeat: not kept
#: Statuses that passed the check once -> their code.
_STATUS_CODES: Dict[str, int] = {}
#: Request field name (lower case, as the parser gives it) -> environ key; None: dropped.
_ENVIRON_KEYS: Dict[str, Optional[str]] = {}
_ENVIRON_KEYS_MAX = 256
#: Fields that only a trusted proxy may set (--forwarded-allow-ips).
FORWARDED_KEYS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO")


def environ_key(name: str) -> Optional[str]:
    """The environ key of a request field (lower-case ``name``): ``HTTP_USER_AGENT``, ``CONTENT_TYPE``; None to drop it.

    Dropped: names holding ``_`` (after ``-`` becomes ``_`` two names would meet, so a
    client could forge a field a proxy set), ``Content-Length`` (set from the decoded
    body) and ``Transfer-Encoding`` (the body arrives decoded). PEP 3333, "environ Variables".
    """
    key = _ENVIRON_KEYS.get(name, "")
    if key != "":
        return key
    if "_" in name or name in ("content-length", "transfer-encoding"):
        key = None
    elif name == "content-type":
        key = "CONTENT_TYPE"
    else:
        key = "HTTP_" + name.upper().replace("-", "_")
    if len(_ENVIRON_KEYS) >= _ENVIRON_KEYS_MAX:
        _ENVIRON_KEYS.clear()  # many distinct names: start again, cheaply
    _ENVIRON_KEYS[name] = key
    return key


def split_script_name(path: str, root_path: str) -> Optional[str]:
    """The part of an origin-form ``path`` (no query) below ``root_path``, or None when it is outside.

    Whole segments match: with ``/app``, ``/app/x`` gives ``/x`` and ``/app`` gives ``""``,
    while ``/application`` is outside (as waitress's ``url_prefix``). An empty
    ``root_path`` matches every path. Both are compared percent-encoded, as sent.
    """
    if not root_path:
        return path
    if not path.startswith(root_path):
        return None
    rest = path[len(root_path) :]
    if rest and rest[0] != "/":
        return None
    return rest


class EnvironMaker:
    """Makes each request's environ from what is the same for all of them (PEP 3333).

    ``server_name`` and ``server_port`` are the server's address; ``script_name`` the
    ``--root-path``; ``multithread`` and ``multiprocess`` what the configuration says
    (more than one application thread; more than one worker process). ``errors`` is
    ``wsgi.errors``, standard error unless given.
    """

    def __init__(
        self,
        server_name: str,
        server_port: int,
        script_name: str = "",
        multithread: bool = True,
        multiprocess: bool = False,
        errors: Optional[Any] = None,
        software: str = "reactor",
    ) -> None:
        self.base: Dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": software,
            "SERVER_NAME": server_name,
            "SERVER_PORT": str(server_port),
            "SCRIPT_NAME": script_name,
        }

    def make(
        self,
        head: RequestHead,
        path_info: str,
        query: str,
        body: BinaryIO,
        body_bytes: Optional[int],
        remote_addr: str,
        remote_port: int,
        secure: bool,
        trusted_proxy: bool = False,
    ) -> Dict[str, Any]:
        """The environ of one request.

        ``path_info`` is the path below the script name, still percent-encoded;
        ``query`` the query without its ``?``. ``body`` is ``wsgi.input`` and
        ``body_bytes`` its length (None: the request had no message body, so no
        ``CONTENT_LENGTH``). ``trusted_proxy``: the peer is a proxy whose
        ``X-Forwarded-For`` (its right-most address) and ``X-Forwarded-Proto`` are believed.
        """
        environ = self.base.copy()
        environ["REQUEST_METHOD"] = head.method
        environ["PATH_INFO"] = (
            urllib.parse.unquote_to_bytes(path_info).decode("latin-1") if "%" in path_info else path_info
        )
        environ["QUERY_STRING"] = query
        environ["REQUEST_URI"] = environ["RAW_URI"] = head.target
        environ["SERVER_PROTOCOL"] = "HTTP/" + head.http_version
        environ["REMOTE_ADDR"] = remote_addr
        environ["REMOTE_PORT"] = str(remote_port)
        environ["wsgi.url_scheme"] = "https" if secure else "http"
        environ["wsgi.input"] = body
        if body_bytes is not None:
            environ["CONTENT_LENGTH"] = str(body_bytes)
        keys = _ENVIRON_KEYS
        for name, value in head.fields:
            key = keys.get(name, "")
            if key == "":
                key = environ_key(name)
            if key is None:
                continue
            if key in environ:
                environ[key] += ", " + value  # repeated field lines, one list (RFC 9110 §5.3)
            else:
                environ[key] = value
        if trusted_proxy:
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
            if forwarded_for:
                environ["REMOTE_ADDR"] = forwarded_for.rsplit(",", 1)[-1].strip()  # the proxy's own entry
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").rsplit(",", 1)[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        else:
            for key in FORWARDED_KEYS:
                environ.pop(key, None)
        return environ


def empty_input() -> BinaryIO:
    """``wsgi.input`` of a request without a message body: reads give ``b""``."""
    return io.BytesIO()


def check_status(status: object) -> int:
    """The status code of a ``start_response`` status (``"200 OK"``), or ValueError/TypeError.

    A final status, 200-599, then optionally a space and a reason phrase without
    control characters (PEP 3333, "The start_response() Callable"). The server sends the
    registered reason phrase of the code; the application's own phrase is not sent.
    """
    if type(status) is not str:
        raise TypeError("the status must be a str such as '200 OK', not %s" % type(status).__name__)
    code = _STATUS_CODES.get(status)
    if code is not None:
        return code
    match = _STATUS.fullmatch(status)
    if match is None:
        raise ValueError("bad status %r: a final status such as '200 OK' (200-599)" % status[:60])
    code = int(match.group(1))
    if len(_STATUS_CODES) >= _CHECKED_MAX:
        _STATUS_CODES.clear()
    _STATUS_CODES[status] = code
    return code


def check_fields(headers: object) -> Tuple[List[Tuple[str, str]], Optional[int]]:
    """The response fields to send, and the Content-Length the application stated (None: none).

    ``headers`` must be a list of ``(name, value)`` tuples of str: a name is a token
    (RFC 9110 §5.1), a value holds no CR, LF, NUL or other control character but HTAB
    and only latin-1 characters (§5.5; PEP 3333 "Unicode Issues"). A hop-by-hop field
    (:data:`HOP_BY_HOP`, ``Proxy-*``) or a Content-Length that is not one decimal
    length raises ValueError; a wrong type raises TypeError. ``Date`` and ``Server`` are
    left out: the server sends its own.
    """
    if type(headers) is not list and not isinstance(headers, (list, tuple)):
        raise TypeError("response headers must be a list of (name, value) tuples, not %s" % type(headers).__name__)
    fields: List[Tuple[str, str]] = []
    length: Optional[int] = None
    checked = _CHECKED
    for field in headers:
        try:
            kind = checked.get(field) if type(field) is tuple else None  # only tuples of two str are kept
        except TypeError:  # unhashable: a list inside, say; the checks say what is wrong
            kind = None
        if kind is None:
            kind, field = _check_field(field)
        if kind == _PLAIN:
            fields.append(field)
        elif kind == _LENGTH:
            stated = int(field[1])
            if length is not None and stated != length:
                raise ValueError("header Content-Length: %r is not one decimal length" % field[1])
            length = stated
            fields.append(field)
    return fields, length


def _check_field(field: object) -> Tuple[int, Tuple[str, str]]:
    """One field line's kind and the line as a plain tuple, or TypeError/ValueError (see :func:`check_fields`)."""
    if type(field) is not tuple:
        if not isinstance(field, tuple) or len(field) != 2:
            raise TypeError("a response header must be a (name, value) tuple, not %r" % (field,))
        field = (field[0], field[1])
    elif len(field) != 2:
        raise TypeError("a response header must be a (name, value) tuple, not %r" % (field,))
    name, value = field
    kind = _NAME_KINDS.get(name) if type(name) is str else None
    if kind is None:
        kind = _name_kind(name)
    if type(value) is not str:
        raise TypeError("the value of header %s must be a str, not %s" % (name, type(value).__name__))
    if _FIELD_VALUE.fullmatch(value) is None:
        raise ValueError("header %s: a control character or a character outside latin-1 in %r" % (name, value))
    if kind == _LENGTH:
        stated = value.strip()
        if not stated.isdigit() or not stated.isascii():
            raise ValueError("header Content-Length: %r is not one decimal length" % value)
    if len(value) <= _CHECKED_VALUE_MAX:
        if len(_CHECKED) >= _CHECKED_MAX:
            _CHECKED.clear()  # many distinct lines: start again, cheaply
        _CHECKED[field] = kind
    return kind, field


def _name_kind(name: object) -> int:
    if type(name) is not str:
        raise TypeError("a header name must be a str, not %s" % type(name).__name__)
    if _TOKEN.fullmatch(name) is None:
        raise ValueError("header name %r is not a token (RFC 9110 §5.1)" % name[:60])
    lower = name.lower()
    if lower in HOP_BY_HOP or lower.startswith("proxy-"):
        raise ValueError("the application set %s, a hop-by-hop header that the server owns" % name)
    kind = _LENGTH if lower == "content-length" else _DROP if lower in SERVER_FIELDS else _PLAIN
    if len(_NAME_KINDS) >= _NAME_KINDS_MAX:
        _NAME_KINDS.clear()
    _NAME_KINDS[name] = kind
    return kind


class StartResponse:
    """``start_response`` for one request (PEP 3333), and ``write``.

    After a successful call, ``status`` (an int), ``fields`` and ``length`` (the stated
    Content-Length, or None) hold what the application said. ``written`` collects what
    ``write()`` was given, in order, and ``written_bytes`` counts it. The server sets
    ``sent`` once the head has gone: from then on an ``exc_info`` is re-raised.
    Raises TypeError or ValueError for what :func:`check_status` and
    :func:`check_fields` refuse; a second call without ``exc_info`` is a RuntimeError.
    """

    __slots__ = ("status", "fields", "length", "written", "written_bytes", "sent")

    def __init__(self) -> None:
        self.status: Optional[int] = None
        self.fields: List[Tuple[str, str]] = []
        self.length: Optional[int] = None
        self.written: List[bytes] = []
        self.written_bytes = 0
        self.sent = False

    def __call__(self, status: str, headers: List[Tuple[str, str]], exc_info: Optional[ExcInfo] = None) -> Any:
        if exc_info is not None:
            try:
                if self.sent:  # too late to change the response: the application's error goes on
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no cycle through the frame (PEP 3333)
        elif self.status is not None:
            raise RuntimeError("start_response() called a second time without exc_info")
        code = check_status(status)
        fields, length = check_fields(headers)
        self.status, self.fields, self.length = code, fields, length
        return self.write

    def write(self, data: bytes) -> None:
        """Send ``data`` before what the application iterable yields (PEP 3333, "The write() Callable").

        The bytes are kept and sent in order; raises RuntimeError before
        ``start_response`` and TypeError for anything but bytes.
        """
        if self.status is None:
            raise RuntimeError("write() called before start_response()")
        if type(data) is not bytes and not isinstance(data, bytes):
            raise TypeError("write() takes bytes, not %s" % type(data).__name__)
        if data:
            self.written.append(data)
            self.written_bytes += len(data)

    def take_written(self) -> bytes:
        """What ``write()`` collected since the last call, joined (``b""`` for nothing)."""
        written = self.written
        if not written:
            return b""
        data = written[0] if len(written) == 1 else b"".join(written)
        written.clear()
        self.written_bytes = 0
        return data


class FileWrapper:
    """``wsgi.file_wrapper`` (PEP 3333, "Optional Platform-Specific File Handling").

    The server sends a wrapper around a regular file with ``sendfile`` (or, over TLS,
    in blocks from the page cache), from the file's current position; anything else is
    iterated in ``block_size`` reads. ``close()`` closes the file (PEP 3333 asks the
    wrapper to pass it on), once.
    """

    __slots__ = ("filelike", "block_size", "_closed")

    def __init__(self, filelike: Any, block_size: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.block_size = block_size
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.block_size)
            if not block:
                return
            yield block

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
