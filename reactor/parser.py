"""A sans-I/O HTTP/1.1 request parser: bytes in, events out (RFC 9112).

Theory of operation
-------------------
The parser owns a receive buffer and nothing else: no socket, no clock, no thread.
The connection ``feed``\\s it whatever ``recv`` returned (``b""`` for end of stream)
and then calls ``next_event`` until it returns ``NEED_DATA`` (feed more) or
``PAUSED`` (a whole request has been parsed).

One request comes out as ``RequestHead``, zero or more ``BodyData`` and ``RequestEnd``.
After ``RequestEnd`` the parser pauses on purpose, even if the buffer already holds a
pipelined request: the connection answers first and then calls ``start_next_cycle``.
That gives back-pressure (nothing is parsed ahead of the responses) and keeps the
responses in request order.

Framing follows RFC 9112 §6.3 exactly, and the checks that stop request smuggling
(§11.2) come first: Transfer-Encoding together with Content-Length, a Content-Length
that is not ``1*DIGIT``, several differing Content-Length values and a final coding
other than chunked are all rejected before any body byte is read.

Any malformed input raises :class:`~reactor.errors.ProtocolError` with the status to
answer. The error is sticky: every later call raises it again, so bytes after a
rejected request are never parsed as another request.

Deliberate choices (see ``docs/parser.md``):

- A bare LF line terminator is rejected with 400 (RFC 9112 §2.2 allows either
  choice); it is detected as soon as it arrives, so such a client never hangs.
- Up to a few empty lines before a request-line are ignored (RFC 9112 §2.2).
- HTTP/1.x with x > 1 is treated as HTTP/1.1 (RFC 9110 §2.5).
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Union

from reactor import abnf
from reactor.errors import ProtocolError
from reactor.events import (
    NEED_DATA,
    PAUSED,
    BodyData,
    EndOfStream,
    Event,
    Fields,
    RequestEnd,
    RequestHead,
    TargetForm,
    _Sentinel,
)

# Parser states. Plain ints: they are compared on every call.
_HEAD = 0  # waiting for a request-line and header section
_BODY_LENGTH = 1  # Content-Length body, ``_remaining`` bytes to go
_CHUNK_SIZE = 2  # chunk-size line (RFC 9112 §7.1)
_CHUNK_DATA = 3  # chunk-data, ``_remaining`` bytes to go
_CHUNK_CRLF = 4  # the CRLF that ends chunk-data
_TRAILERS = 5  # trailer section after the last-chunk (RFC 9112 §7.1.2)
_BODY_END = 6  # body complete, RequestEnd not yet returned
_DONE = 7  # request complete: paused until start_next_cycle()
_ERROR = 8  # a ProtocolError was raised; it is raised again on every call
_CLOSED = 9  # EndOfStream returned

_MAX_LEADING_EMPTY_LINES = 8
_KNOWN_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "compress", "x-compress", "br", "zstd"})

# Field names seen in nearly every request, mapped straight to their lower-case form.
_NAME_CACHE = {
    name.encode(): name.lower()
    for name in (
        "Host", "User-Agent", "Accept", "Accept-Language", "Accept-Encoding", "Connection",
        "Referer", "Cookie", "Content-Type", "Content-Length", "Cache-Control", "Upgrade-Insecure-Requests",
        "If-None-Match", "If-Modified-Since", "Range", "Origin", "Pragma", "Expect", "Transfer-Encoding",
        "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "DNT", "Priority",
        "host", "user-agent", "accept", "connection", "content-type", "content-length",
    )
}


class RequestParser:
    """Parse HTTP/1.1 requests from bytes (RFC 9112), without doing any I/O.

    Limits, all in bytes except ``max_field_lines``:

    - ``max_request_line_bytes``: request-line without its CRLF; longer → 414.
    - ``max_header_section_bytes``: field lines after the request-line, CRLFs included;
      the same bound applies to a chunked trailer section; longer → 431.
    - ``max_field_lines``: number of field lines; more → 431.
    - ``max_body_bytes``: message body after removing the transfer coding; more → 413.
    - ``max_chunk_line_bytes``: a chunk-size line with its extensions; longer → 400.
    """

    __slots__ = (
        "max_request_line_bytes",
        "max_header_section_bytes",
        "max_field_lines",
        "max_body_bytes",
        "max_chunk_line_bytes",
        "request_line",
        "_buf",
        "_eof",
        "_state",
        "_error",
        "_scan_from",
        "_remaining",
        "_body_bytes",
    )

    def __init__(
        self,
        *,
        max_request_line_bytes: int = 8192,
        max_header_section_bytes: int = 8192,
        max_field_lines: int = 100,
        max_body_bytes: int = 1024 * 1024,
        max_chunk_line_bytes: int = 1024,
    ) -> None:
        self.max_request_line_bytes = max_request_line_bytes
        self.max_header_section_bytes = max_header_section_bytes
        self.max_field_lines = max_field_lines
        self.max_body_bytes = max_body_bytes
        self.max_chunk_line_bytes = max_chunk_line_bytes
        #: The current request-line as text (for logs), or None before one arrives.
        self.request_line: Optional[str] = None
        self._buf = bytearray()
        self._eof = False
        self._state = _HEAD
        self._error: Optional[ProtocolError] = None
        self._scan_from = 0  # where to resume searching for the end of the header section
        self._remaining = 0  # bytes left in a Content-Length body or in the current chunk
        self._body_bytes = 0  # decoded body bytes so far (chunked)

    # -- input ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer; ``b""`` means it closed its sending side."""
        if data:
            self._buf += data
        else:
            self._eof = True

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self._buf)

    @property
    def in_message(self) -> bool:
        """True once any byte of the current request has arrived (for timeouts)."""
        return self._state != _HEAD or bool(self._buf)

    def start_next_cycle(self) -> None:
        """Resume after ``PAUSED``: the response to the last request has been sent.

        Raises RuntimeError if the current request is not complete.
        """
        if self._state != _DONE:
            raise RuntimeError("start_next_cycle() before the request was complete")
        self._state = _HEAD
        self._scan_from = 0
        self.request_line = None

    # -- output --------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Yield events until more bytes are needed or a request is complete."""
        while True:
            event = self.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            yield event  # type: ignore[misc]

    def next_event(self) -> Union[Event, _Sentinel]:
        """Return the next event, ``NEED_DATA`` or ``PAUSED``.

        Raises ProtocolError (400, 413, 414, 417, 431, 501, 505) on malformed input,
        and again on every later call.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except ProtocolError as error:
            self._state = _ERROR
            self._error = error
            raise

    def _next_event(self) -> Union[Event, _Sentinel]:
        buf = self._buf
        while True:
            state = self._state
            if state == _HEAD:
                return self._read_head()
            if state == _BODY_LENGTH or state == _CHUNK_DATA:
                if not buf:
                    if self._eof:
                        raise ProtocolError(400, "connection closed before the message body was complete")
                    return NEED_DATA
                n = self._remaining
                if len(buf) <= n:
                    data = bytes(buf)
                    buf.clear()
                else:
                    data = bytes(buf[:n])
                    del buf[:n]
                self._remaining = n = n - len(data)
                if n == 0:
                    self._state = _BODY_END if state == _BODY_LENGTH else _CHUNK_CRLF
                return BodyData(data)
            if state == _BODY_END:
                self._state = _DONE
                return RequestEnd()
            if state == _CHUNK_SIZE:
                if not self._read_chunk_size():
                    return NEED_DATA
            elif state == _CHUNK_CRLF:
                if len(buf) < 2:
                    if self._eof:
                        raise ProtocolError(400, "connection closed inside chunked message body")
                    if buf and buf[0] != 13:
                        raise ProtocolError(400, "chunk-data not followed by CRLF")
                    return NEED_DATA
                if buf[0] != 13 or buf[1] != 10:
                    raise ProtocolError(400, "chunk-data not followed by CRLF")
                del buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                trailers = self._read_trailers()
                if trailers is None:
                    return NEED_DATA
                self._state = _DONE
                return RequestEnd(trailers)
            elif state == _DONE:
                return PAUSED
            else:  # _CLOSED
                return EndOfStream()

    # -- request-line and header section ---------------------------------------------

    def _read_head(self) -> Union[Event, _Sentinel]:
        buf = self._buf
        if buf[:2] == b"\r\n":
            # RFC 9112 §2.2: ignore at least one empty line before the request-line.
            skipped = 0
            while buf[:2] == b"\r\n" and skipped < _MAX_LEADING_EMPTY_LINES:
                del buf[:2]
                skipped += 1
            if buf[:2] == b"\r\n":
                raise ProtocolError(400, "too many empty lines before the request-line")
        end = buf.find(b"\r\n\r\n", self._scan_from)
        if end < 0:
            return self._head_incomplete()
        line_end = buf.find(b"\r\n")
        if line_end > self.max_request_line_bytes:
            raise ProtocolError(414, "request-line too long")
        if end + 2 - line_end > self.max_header_section_bytes:
            raise ProtocolError(431, "header section too large")
        head = bytes(buf[:end])
        del buf[: end + 4]
        self._scan_from = 0
        return self._parse_head(head)

    def _head_incomplete(self) -> Union[Event, _Sentinel]:
        buf = self._buf
        if self._eof:
            if not buf:
                self._state = _CLOSED
                return EndOfStream()
            raise ProtocolError(400, "connection closed before the header section was complete")
        line_end = buf.find(b"\r\n")
        if line_end < 0:
            if len(buf) > self.max_request_line_bytes:
                raise ProtocolError(414, "request-line too long")
        elif line_end > self.max_request_line_bytes:
            raise ProtocolError(414, "request-line too long")
        elif len(buf) - line_end > self.max_header_section_bytes:
            raise ProtocolError(431, "header section too large")
        if buf.count(b"\n") != buf.count(b"\r\n"):
            # Without this a request written with bare LFs would wait for a CRLFCRLF
            # that never comes.
            raise ProtocolError(400, "bare LF line terminator; CRLF is required")
        self._scan_from = max(0, len(buf) - 3)
        return NEED_DATA

    def _parse_head(self, head: bytes) -> RequestHead:
        lines = head.split(b"\r\n")
        request_line = lines[0]
        self.request_line = request_line.decode("latin-1")
        match = abnf.REQUEST_LINE.fullmatch(request_line)
        if match is None:
            raise ProtocolError(400, _request_line_problem(request_line))
        method_b, target_b, major, minor = match.groups()
        if major != b"1":
            raise ProtocolError(505, "HTTP version not supported; only HTTP/1.x")
        http_version = "1.0" if minor == b"0" else "1.1"
        method = method_b.decode("ascii")

        if len(lines) - 1 > self.max_field_lines:
            raise ProtocolError(431, "too many field lines")
        fields = _parse_field_lines(lines, 1)

        host = content_length = transfer_encoding = connection = expect = None
        host_count = 0
        cl_values: List[str] = []
        for name, value in fields:
            if name == "host":
                host = value
                host_count += 1
            elif name == "content-length":
                cl_values.append(value)
            elif name == "transfer-encoding":
                transfer_encoding = value if transfer_encoding is None else transfer_encoding + "," + value
            elif name == "connection":
                connection = value if connection is None else connection + "," + value
            elif name == "expect":
                expect = value if expect is None else expect + "," + value

        # Host (RFC 9112 §3.2): exactly one in HTTP/1.1, and well-formed.
        if host_count > 1:
            raise ProtocolError(400, "more than one Host field line")
        if host is None and http_version == "1.1":
            raise ProtocolError(400, "missing Host field (required in HTTP/1.1)")
        if host is not None and abnf.HOST.fullmatch(host.encode("latin-1")) is None:
            raise ProtocolError(400, "invalid Host field value")

        target = target_b.decode("ascii")
        target_form, path, authority = _classify_target(method, target)
        if authority is None:
            authority = host

        # Persistence (RFC 9112 §9.3).
        tokens = _tokens(connection) if connection is not None else ()
        if "close" in tokens:
            keep_alive = False
        else:
            keep_alive = http_version == "1.1" or "keep-alive" in tokens

        # Message body framing (RFC 9112 §6.3).
        chunked = False
        if transfer_encoding is not None:
            if cl_values:
                raise ProtocolError(400, "both Transfer-Encoding and Content-Length (RFC 9112 §6.1)")
            _check_transfer_codings(transfer_encoding)
            chunked = True
            content_length = None
            if http_version == "1.0":
                keep_alive = False  # RFC 9112 §6.1: framing of a 1.0 message with TE is suspect
        elif cl_values:
            content_length = _content_length(cl_values)
            if content_length > self.max_body_bytes:
                raise ProtocolError(413, "message body larger than %d bytes" % self.max_body_bytes)
        else:
            content_length = 0

        expect_continue = False
        if expect is not None:
            expectations = _tokens(expect)
            if any(token != "100-continue" for token in expectations):
                raise ProtocolError(417, "unsupported expectation; only 100-continue")
            # RFC 9110 §10.1.1: never send 100 (Continue) to an HTTP/1.0 client.
            expect_continue = http_version == "1.1" and bool(expectations)

        if chunked:
            self._state = _CHUNK_SIZE
            self._body_bytes = 0
        elif content_length:
            self._state = _BODY_LENGTH
            self._remaining = content_length
        else:
            self._state = _BODY_END
        return RequestHead(
            method,
            target,
            target_form,
            path,
            authority,
            http_version,
            fields,
            keep_alive,
            content_length,
            chunked,
            expect_continue,
        )

    # -- chunked transfer coding (RFC 9112 §7.1) ----------------------------------------

    def _read_chunk_size(self) -> bool:
        buf = self._buf
        line_end = buf.find(b"\r\n")
        if line_end < 0:
            if len(buf) > self.max_chunk_line_bytes:
                raise ProtocolError(400, "chunk-size line too long")
            if b"\n" in buf:
                raise ProtocolError(400, "bare LF line terminator; CRLF is required")
            if self._eof:
                raise ProtocolError(400, "connection closed inside chunked message body")
            return False
        if line_end > self.max_chunk_line_bytes:
            raise ProtocolError(400, "chunk-size line too long")
        match = abnf.CHUNK_LINE.fullmatch(buf, 0, line_end)
        if match is None:
            raise ProtocolError(400, "invalid chunk-size line")
        size = int(match.group(1), 16)
        del buf[: line_end + 2]
        if size == 0:
            self._state = _TRAILERS
            return True
        self._body_bytes += size
        if self._body_bytes > self.max_body_bytes:
            raise ProtocolError(413, "message body larger than %d bytes" % self.max_body_bytes)
        self._remaining = size
        self._state = _CHUNK_DATA
        return True

    def _read_trailers(self) -> Optional[Fields]:
        buf = self._buf
        if buf[:2] == b"\r\n":
            del buf[:2]
            return ()
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.max_header_section_bytes:
                raise ProtocolError(431, "trailer section too large")
            if buf.count(b"\n") != buf.count(b"\r\n"):
                raise ProtocolError(400, "bare LF line terminator; CRLF is required")
            if self._eof:
                raise ProtocolError(400, "connection closed inside the trailer section")
            return None
        if end + 4 > self.max_header_section_bytes:
            raise ProtocolError(431, "trailer section too large")
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        if len(lines) > self.max_field_lines:
            raise ProtocolError(431, "too many trailer field lines")
        return _parse_field_lines(lines, 0)


# -- helpers (pure functions) ---------------------------------------------------------


def _parse_field_lines(lines: List[bytes], start: int) -> Fields:
    """Parse ``lines[start:]`` as field lines (RFC 9112 §5) into (name, value) pairs.

    Names are lower-cased; values are ISO-8859-1 text with OWS trimmed.
    Raises ProtocolError(400) naming the first problem.
    """
    fields = []
    match_line = abnf.FIELD_LINE.fullmatch
    names = _NAME_CACHE
    for index in range(start, len(lines)):
        line = lines[index]
        match = match_line(line)
        if match is None:
            raise ProtocolError(400, _field_line_problem(line))
        name_b, value_b = match.groups()
        name = names.get(name_b)
        if name is None:
            name = name_b.decode("ascii").lower()
        fields.append((name, value_b.decode("latin-1")))
    return tuple(fields)


def _field_line_problem(line: bytes) -> str:
    """A one-line reason why ``line`` is not a valid field line (only on the error path)."""
    if line[:1] in (b" ", b"\t"):
        return "obs-fold (line folding) is not accepted (RFC 9112 §5.2)"
    if b"\n" in line:
        return "bare LF line terminator; CRLF is required"
    name, colon, _ = line.partition(b":")
    if not colon:
        return "field line without a colon"
    if name[-1:] in (b" ", b"\t"):
        return "whitespace between field name and colon (RFC 9112 §5.1)"
    if abnf.TOKEN.fullmatch(name) is None:
        return "field name is not a token"
    return "invalid character in field value"


def _request_line_problem(line: bytes) -> str:
    if b"\n" in line:
        return "bare LF line terminator; CRLF is required"
    parts = line.split(b" ")
    if len(parts) != 3:
        return "malformed request-line; expected method SP request-target SP HTTP-version"
    method, target, version = parts
    if abnf.TOKEN.fullmatch(method) is None:
        return "method is not a token"
    if not target or any(byte < 0x21 or byte > 0x7E for byte in target):
        return "invalid character in request-target"
    return "malformed HTTP-version"


def _classify_target(method: str, target: str) -> "tuple[TargetForm, str, Optional[str]]":
    """Tell the request-target's form (RFC 9112 §3.2) and split out path and authority."""
    if target[0] == "/":
        if method == "CONNECT":
            raise ProtocolError(400, "CONNECT requires authority-form")
        return TargetForm.ORIGIN, target, None
    if target == "*":
        if method != "OPTIONS":
            raise ProtocolError(400, "asterisk-form is only for OPTIONS")
        return TargetForm.ASTERISK, "*", None
    if method == "CONNECT":
        if abnf.AUTHORITY_FORM.fullmatch(target.encode("ascii")) is None:
            raise ProtocolError(400, "invalid authority-form request-target")
        return TargetForm.AUTHORITY, "", target
    match = abnf.ABSOLUTE_FORM.fullmatch(target.encode("ascii"))
    if match is None:
        raise ProtocolError(400, "invalid request-target")
    authority = match.group(2).decode("ascii")
    if not authority or "@" in authority or abnf.HOST.fullmatch(match.group(2)) is None:
        raise ProtocolError(400, "invalid authority in absolute-form request-target")
    path = match.group(3).decode("ascii")
    if not path.startswith("/"):
        path = "/" + path
    return TargetForm.ABSOLUTE, path, authority


def _tokens(value: str) -> "tuple[str, ...]":
    """Split a comma-separated list of tokens (RFC 9110 §5.6.1), lower-cased, empties dropped."""
    return tuple(token for token in (part.strip(" \t").lower() for part in value.split(",")) if token)


def _check_transfer_codings(value: str) -> None:
    """Accept only ``chunked`` as the sole transfer coding (RFC 9112 §6.1, §7).

    Raises ProtocolError: 400 if chunked is not the final coding, is repeated, or the
    list is empty; 501 for any other coding, which this server does not implement.
    """
    codings = [part.strip(" \t").lower() for part in value.split(",")]
    if not codings or not all(codings):
        raise ProtocolError(400, "empty transfer coding in Transfer-Encoding")
    if codings[-1] != "chunked":
        if codings[-1].split(";")[0].strip() in _KNOWN_CODINGS or codings[-1].startswith("chunked"):
            raise ProtocolError(400, "final transfer coding is not chunked (RFC 9112 §6.3)")
        raise ProtocolError(501, "transfer coding not implemented: %s" % codings[-1][:40])
    for coding in codings[:-1]:
        if coding == "chunked":
            raise ProtocolError(400, "chunked applied more than once (RFC 9112 §7)")
        raise ProtocolError(501, "transfer coding not implemented: %s" % coding[:40])


def _content_length(values: List[str]) -> int:
    """The single Content-Length of a request (RFC 9110 §8.6, RFC 9112 §6.3).

    Each value may be a list ("5, 5"); every member must be ``1*DIGIT`` and all must be
    equal. Raises ProtocolError(400) otherwise.
    """
    parts = set()
    for value in values:
        for part in value.split(","):
            part = part.strip(" \t")
            if abnf.CONTENT_LENGTH.fullmatch(part.encode("latin-1")) is None:
                raise ProtocolError(400, "invalid Content-Length")
            parts.add(int(part))
    if len(parts) != 1:
        raise ProtocolError(400, "conflicting Content-Length values")
    return parts.pop()
