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

The header section is handled as one block: once its empty line has arrived, it is
decoded as ISO-8859-1 and checked by a single regular expression, and the field lines
are split out by another, so the per-request Python work does not grow with the number
of checks. While a section is still arriving, the bytes so far are checked for what
can already be known (limits, a request-line that cannot become valid, a bare CR or
LF), so a client that can never complete a request is answered instead of left waiting.

Framing follows RFC 9112 §6.3 exactly, and the checks that stop request smuggling
(§11.2) come first: Transfer-Encoding together with Content-Length, a Content-Length
that is not ``1*DIGIT``, several differing Content-Length values and a final coding
other than chunked are all rejected before any body byte is read.

Any malformed input raises :class:`~reactor.errors.ProtocolError` with the status to
answer. The error is sticky: every later call raises it again, so bytes after a
rejected request are never parsed as another request.

Limits are checked so that where the input is cut does not matter: a request that fits
the limits when it arrives in one piece also fits when it arrives a byte at a time.

Deliberate choices (see ``docs/parser.md``):

- A bare LF line terminator is rejected with 400 (RFC 9112 §2.2 allows either
  choice); it is detected as soon as it arrives, so such a client never hangs.
- Up to eight empty lines before a request-line are ignored (RFC 9112 §2.2).
- HTTP/1.x with x > 1 is treated as HTTP/1.1 (RFC 9110 §2.5).
- After a CONNECT request the connection closes: what follows it would be tunnel
  data, never another request.
"""

from __future__ import annotations

from typing import Iterator, Optional, Set, Union

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
_HEXDIG = frozenset(b"0123456789abcdefABCDEF")
# The fields the parser itself acts on; every other field is only passed on.
_SPECIAL_FIELDS = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect"})
# Events are immutable, so the common RequestEnd without trailers is one object; and a
# RequestHead is built by tuple.__new__ directly, skipping the Python-level __new__ that
# NamedTuple generates (a function call per request, for the same tuple).
_REQUEST_END = RequestEnd()
_ORIGIN = TargetForm.ORIGIN
_new_tuple = tuple.__new__
_NO_MEMBERS: "frozenset[str]" = frozenset()
# Host values that matched abnf.HOST. A server hears the same few values (its own names)
# on nearly every request, so a set lookup stands in for the regex. Shared by every parser,
# so it does not grow with the connections; at most 64 values of at most 300 characters (a
# DNS name has 253, then a port), emptied when full: distinct values cost the regex only.
_VALID_HOSTS: Set[str] = set()
_VALID_HOSTS_MAX = 64
_VALID_HOST_MAX_CHARS = 300
# Content-Length values with more significant digits than this are over any body limit;
# int() is never asked to convert them (it refuses very long strings since Python 3.11).
_MAX_LENGTH_DIGITS = 18


class RequestParser:
    """Parse HTTP/1.1 requests from bytes (RFC 9112), without doing any I/O.

    Limits, all in bytes except ``max_field_lines``:

    - ``max_request_line_bytes``: request-line without its CRLF; longer → 414.
    - ``max_header_section_bytes``: field lines after the request-line and the empty
      line that ends them, CRLFs included; longer → 431. The same bound applies to a
      chunked trailer section (→ 431) and to all chunk extensions of one message
      together (→ 400).
    - ``max_field_lines``: field lines in the header section, and in a trailer
      section; more → 431.
    - ``max_body_bytes``: message body after removing the transfer coding; more → 413,
      decided from Content-Length or from each chunk-size before the data is read.
    - ``max_chunk_line_bytes``: one chunk-size line with its extensions, without the
      CRLF; longer → 400.
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
        "_empty_lines",
        "_remaining",
        "_body_bytes",
        "_chunk_ext_bytes",
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
        self._scan_from = 0  # buffer bytes before this were searched while the head was incomplete
        self._empty_lines = 0  # empty lines skipped before this request-line
        self._remaining = 0  # bytes left in a Content-Length body or in the current chunk
        self._body_bytes = 0  # decoded body bytes so far (chunked)
        self._chunk_ext_bytes = 0  # chunk-ext bytes so far in this message

    # -- input ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer; ``b""`` means it closed its sending side.

        Raises RuntimeError if called with data after the end of stream.
        """
        if data:
            if self._eof:
                raise RuntimeError("feed() after the end of stream")
            self._buf += data
        else:
            self._eof = True

    def buffered_bytes(self) -> int:
        """Bytes received but not yet turned into events.

        A method, not a property: CPython 3.11 calls a property's getter through C, about
        500 instructions more per call (``tests/benchmarks/instructions.py``), and the
        server asks once or twice per request.
        """
        return len(self._buf)

    @property
    def head_request(self) -> bool:
        """True if the request being received is a HEAD request, as far as its bytes tell.

        From the request-line once it was read, else from the first bytes buffered: an
        error answered before the head is complete (414, 431, a timeout) must not carry
        content either (RFC 9110 §9.3.2).
        """
        line = self.request_line
        if line is not None:
            return line.startswith("HEAD ")
        return self._buf.startswith(b"HEAD ")

    @property
    def in_message(self) -> bool:
        """True once any byte of the current request has arrived (for timeouts)."""
        return self._state != _HEAD or bool(self._buf)

    def start_next_cycle(self) -> bool:
        """Resume after ``PAUSED``: the response to the last request has been sent.

        Returns whether bytes of the next request are buffered already (a pipelined
        request), so the caller knows whether to parse on or to wait for input.

        Raises RuntimeError if the current request is not complete.
        """
        if self._state != _DONE:
            raise RuntimeError("start_next_cycle() before the request was complete")
        self._state = _HEAD
        self._scan_from = 0
        self._empty_lines = 0
        self.request_line = None
        return bool(self._buf)

    def detach(self) -> bytes:
        """Give the connection up to another protocol (after a ``101``): the bytes buffered behind the request.

        They are the new protocol's first input, in the order they arrived (h11 calls them
        ``trailing_data``). The parser is spent afterwards: it stays paused for good.
        Raises RuntimeError unless the current request is complete (``PAUSED``).
        """
        if self._state != _DONE:
            raise RuntimeError("detach() before the request was complete")
        data = bytes(self._buf)
        self._buf.clear()
        return data

    # -- output --------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Yield events until more bytes are needed or a request is complete.

        Raises ProtocolError like :meth:`next_event`.
        """
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
        # One function for the whole state machine: a call per event saved (two per
        # request), and a try block costs nothing until something raises.
        try:
            buf = self._buf
            while True:
                state = self._state
                if state == _HEAD:
                    return self._read_head()
                if state == _BODY_END:  # the end of every request without a body
                    self._state = _DONE
                    return _REQUEST_END
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
                if state == _CHUNK_SIZE:
                    if not self._read_chunk_size():
                        return NEED_DATA
                elif state == _CHUNK_CRLF:
                    if len(buf) < 2:
                        if buf and buf[0] != 13:
                            raise ProtocolError(400, "chunk-data not followed by CRLF")
                        if self._eof:
                            raise ProtocolError(400, "connection closed inside chunked message body")
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
        except ProtocolError as error:
            self._state = _ERROR
            self._error = error
            raise

    # -- request-line and header section ---------------------------------------------

    def _read_head(self) -> Union[Event, _Sentinel]:
        buf = self._buf
        if not buf:  # the usual case between keep-alive requests: nothing to look at
            if self._eof:
                self._state = _CLOSED
                return EndOfStream()
            return NEED_DATA
        # RFC 9112 §2.2: ignore at least one empty line before the request-line. (A
        # request-line never starts with CR: one index instead of a method call.)
        if buf[0] == 13:
            while buf.startswith(b"\r\n"):
                if self._empty_lines == _MAX_LEADING_EMPTY_LINES:
                    raise ProtocolError(400, "too many empty lines before the request-line")
                self._empty_lines += 1
                del buf[:2]
        end = buf.find(b"\r\n\r\n", self._scan_from)
        if end < 0:
            return self._head_incomplete()
        line_end = buf.find(b"\r\n")
        if line_end > self.max_request_line_bytes:
            raise ProtocolError(414, "request-line longer than %d bytes" % self.max_request_line_bytes)
        if end + 2 - line_end > self.max_header_section_bytes:
            raise ProtocolError(431, "header section larger than %d bytes" % self.max_header_section_bytes)
        end += 4
        if len(buf) == end:  # the buffer holds this head alone, as it usually does: no copy
            head = buf.decode("latin-1")
            buf.clear()
        else:
            head = buf[:end].decode("latin-1")
            del buf[:end]
        self._scan_from = 0
        return self._parse_head(head, line_end)

    def _head_incomplete(self) -> Union[Event, _Sentinel]:
        """Check what can be known before the empty line arrives; NEED_DATA if it may still come."""
        buf = self._buf
        if self._eof and not buf:  # only empty lines came before the end of stream
            self._state = _CLOSED
            return EndOfStream()
        line_end = buf.find(b"\r\n")
        line_complete = line_end >= 0
        if not line_complete:
            # The request-line is still arriving; its CR may already be here.
            line_end = len(buf) - (1 if buf.endswith(b"\r") else 0)
        if line_end > self.max_request_line_bytes:
            raise ProtocolError(414, "request-line longer than %d bytes" % self.max_request_line_bytes)
        if line_complete and len(buf) - line_end - 1 > self.max_header_section_bytes:
            # The section so far (after the request-line's CRLF) plus at least one more byte.
            raise ProtocolError(431, "header section larger than %d bytes" % self.max_header_section_bytes)
        if abnf.REQUEST_LINE_PREFIX.fullmatch(buf, 0, line_end) is None:
            raise ProtocolError(400, _request_line_problem(buf[:line_end].decode("latin-1")))
        if abnf.BARE_CR_OR_LF.search(buf, max(0, self._scan_from - 1)) is not None:
            raise ProtocolError(400, "bare CR or LF; lines must end with CRLF (RFC 9112 §2.2)")
        if self._eof:
            raise ProtocolError(400, "connection closed before the header section was complete")
        self._scan_from = max(0, len(buf) - 3)
        return NEED_DATA

    def _parse_head(self, head: str, line_end: int) -> RequestHead:
        """Turn a complete request-line and header section into a RequestHead.

        ``head`` is the request-line, the field lines and the empty line after them,
        decoded as ISO-8859-1, each ending with CRLF; the request-line ends at
        ``line_end``. Sets the state for the message body.
        """
        self.request_line = request_line = head[:line_end]
        match = abnf.REQUEST_LINE.fullmatch(request_line)
        if match is None:
            raise ProtocolError(400, _request_line_problem(request_line))
        method, target, major, minor = match.groups()
        if major != "1":
            raise ProtocolError(505, "HTTP/%s.%s is not supported; only HTTP/1.x" % (major, minor))
        http_version = "1.0" if minor == "0" else "1.1"

        fields = _parse_field_lines(head, line_end + 2, self.max_field_lines, "field lines")

        # Repeated lines of a list field are joined with "," (RFC 9110 §5.3).
        host = content_length_value = transfer_encoding = connection = expect = None
        for name, value in fields:
            if name not in _SPECIAL_FIELDS:
                continue
            if name == "host":
                if host is not None:  # Host (RFC 9112 §3.2): exactly one
                    raise ProtocolError(400, "more than one Host field line")
                host = value
            elif name == "content-length":
                content_length_value = value if content_length_value is None else content_length_value + "," + value
            elif name == "transfer-encoding":
                transfer_encoding = value if transfer_encoding is None else transfer_encoding + "," + value
            elif name == "connection":
                connection = value if connection is None else connection + "," + value
            else:  # expect
                expect = value if expect is None else expect + "," + value

        # Host (RFC 9112 §3.2): required in HTTP/1.1, and well-formed.
        if host is None:
            if http_version == "1.1":
                raise ProtocolError(400, "missing Host field (required in HTTP/1.1)")
        elif host not in _VALID_HOSTS and not _is_valid_host(host):  # a set lookup on nearly every request
            raise ProtocolError(400, "invalid Host field value")

        if target[0] == "/" and method != "CONNECT":  # origin-form, nearly every request
            target_form, path, authority = _ORIGIN, target, host
        else:
            target_form, path, authority = _classify_target(method, target)
            if authority is None:
                authority = host

        # Persistence (RFC 9112 §9.3).
        options = _list_members(connection) if connection is not None else _NO_MEMBERS
        if "close" in options or method == "CONNECT":
            keep_alive = False  # after CONNECT, what follows would be tunnel data
        else:
            keep_alive = http_version == "1.1" or "keep-alive" in options

        # Message body framing (RFC 9112 §6.3).
        chunked = False
        content_length: Optional[int] = 0
        if transfer_encoding is not None:
            if content_length_value is not None:
                # TE with CL invites request smuggling (RFC 9112 §6.1, §11.2).
                raise ProtocolError(400, "both Transfer-Encoding and Content-Length (RFC 9112 §6.1)")
            _check_transfer_codings(transfer_encoding)
            chunked = True
            content_length = None
            if http_version == "1.0":
                keep_alive = False  # RFC 9112 §6.1: framing of a 1.0 message with TE is suspect
        elif content_length_value is not None:
            content_length = _content_length(content_length_value, self.max_body_bytes)

        expect_continue = False
        if expect is not None:
            expectations = _list_members(expect)
            if expectations - {"100-continue"}:
                raise ProtocolError(417, "unsupported expectation; only 100-continue")
            # RFC 9110 §10.1.1: never send 100 (Continue) to an HTTP/1.0 client.
            expect_continue = http_version == "1.1" and bool(expectations)

        if chunked:
            self._state = _CHUNK_SIZE
            self._body_bytes = 0
            self._chunk_ext_bytes = 0
        elif content_length:
            self._state = _BODY_LENGTH
            self._remaining = content_length
        else:
            self._state = _BODY_END
        return _new_tuple(
            RequestHead,
            (
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
                options,
            ),
        )

    # -- chunked transfer coding (RFC 9112 §7.1) ----------------------------------------

    def _read_chunk_size(self) -> bool:
        """Read one chunk-size line; False if it has not fully arrived yet."""
        buf = self._buf
        line_end = buf.find(b"\r\n")
        if line_end < 0:
            if len(buf) - (1 if buf.endswith(b"\r") else 0) > self.max_chunk_line_bytes:
                raise ProtocolError(400, "chunk-size line longer than %d bytes" % self.max_chunk_line_bytes)
            if buf and buf[0] not in _HEXDIG:
                raise ProtocolError(400, "invalid chunk-size line")
            if abnf.BARE_CR_OR_LF.search(buf) is not None:
                raise ProtocolError(400, "bare CR or LF; lines must end with CRLF (RFC 9112 §2.2)")
            if self._eof:
                raise ProtocolError(400, "connection closed inside chunked message body")
            return False
        if line_end > self.max_chunk_line_bytes:
            raise ProtocolError(400, "chunk-size line longer than %d bytes" % self.max_chunk_line_bytes)
        match = abnf.CHUNK_LINE.fullmatch(buf, 0, line_end)
        if match is None:
            raise ProtocolError(400, "invalid chunk-size line")
        digits = match.group(1)
        self._chunk_ext_bytes += line_end - len(digits)
        if self._chunk_ext_bytes > self.max_header_section_bytes:
            # Extensions are ignored, but a client must not make us read without end.
            raise ProtocolError(400, "chunk extensions larger than %d bytes" % self.max_header_section_bytes)
        size = int(digits, 16)
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
        """Read the trailer section (RFC 9112 §7.1.2); None if it has not fully arrived."""
        buf = self._buf
        if buf.startswith(b"\r\n"):
            del buf[:2]
            return ()
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) + 1 > self.max_header_section_bytes:  # at least one more byte to come
                raise ProtocolError(431, "trailer section larger than %d bytes" % self.max_header_section_bytes)
            if abnf.BARE_CR_OR_LF.search(buf) is not None:
                raise ProtocolError(400, "bare CR or LF; lines must end with CRLF (RFC 9112 §2.2)")
            if self._eof:
                raise ProtocolError(400, "connection closed inside the trailer section")
            return None
        if end + 4 > self.max_header_section_bytes:
            raise ProtocolError(431, "trailer section larger than %d bytes" % self.max_header_section_bytes)
        block = buf[: end + 4].decode("latin-1")
        del buf[: end + 4]
        return _parse_field_lines(block, 0, self.max_field_lines, "trailer field lines")


# -- helpers (pure functions) ---------------------------------------------------------


def _parse_field_lines(block: str, start: int, max_lines: int, what: str) -> Fields:
    """Parse ``block[start:]``, field lines then the empty line, all ending in CRLF (RFC 9112 §5), into pairs.

    Names are lower-cased; values keep their ISO-8859-1 text with OWS trimmed.
    Raises ProtocolError: 431 for more than ``max_lines`` lines (``what`` names them in
    the reason), else 400 naming the first problem.
    """
    # Each match of abnf.FIELD_LINES is one valid line and holds exactly one LF, that of
    # its CRLF; so the block is valid exactly when there are as many matches as LFs (less
    # the empty line's), and one count serves the limit too. The limit is on CRLF-ended
    # lines, so only a block with bare LFs needs its CRLFs counted: it gets 400, not 431,
    # as it does when it arrives in pieces.
    lines = block.count("\n", start) - 1  # the empty line is no field line
    if lines > max_lines and block.count("\r\n", start) - 1 > max_lines:
        raise ProtocolError(431, "more than %d %s" % (max_lines, what))
    pairs = abnf.FIELD_LINES.findall(block, start)
    if len(pairs) != lines:
        raise ProtocolError(400, _field_lines_problem(block[start:]))
    return tuple([(name.lower(), value.rstrip(" \t")) for name, value in pairs])


def _field_lines_problem(block: str) -> str:
    """A one-line reason why ``block`` is not valid field lines (only on the error path)."""
    # The block ends with CRLF, so its last piece is "", which is never a field line:
    # the loop always returns.
    for line in block.split("\r\n"):  # pragma: no branch
        if abnf.FIELD_LINE.fullmatch(line) is None:
            return _field_line_problem(line)
    raise AssertionError("unreachable")  # pragma: no cover


def _field_line_problem(line: str) -> str:
    if line[:1] in (" ", "\t"):
        return "obs-fold (line folding) is not accepted (RFC 9112 §5.2)"
    if "\n" in line or "\r" in line:
        return "bare CR or LF; lines must end with CRLF (RFC 9112 §2.2)"
    name, colon, _ = line.partition(":")
    if not colon:
        return "field line without a colon"
    if name[-1:] in (" ", "\t"):
        return "whitespace between field name and colon (RFC 9112 §5.1)"
    if abnf.TOKEN.fullmatch(name) is None:
        return "field name is not a token"
    return "invalid character in field value (CR, LF, NUL and other controls are not allowed)"


def _request_line_problem(line: str) -> str:
    """A one-line reason why ``line`` (complete or still arriving) is not a request-line."""
    if "\n" in line or "\r" in line:
        return "bare CR or LF; lines must end with CRLF (RFC 9112 §2.2)"
    method, _, rest = line.partition(" ")
    if abnf.TOKEN.fullmatch(method) is None:
        return "method is not a token"
    target, _, version = rest.partition(" ")
    if not target or any(char < "\x21" or char > "\x7e" for char in target):
        return "invalid character in request-target"
    if " " in version:
        return "malformed request-line; expected method SP request-target SP HTTP-version"
    return "malformed HTTP-version"


def _is_valid_host(value: str) -> bool:
    """Whether ``value`` is a Host field value (RFC 9110 §7.2); remembers it if so."""
    if abnf.HOST.fullmatch(value) is None:
        return False
    if len(value) <= _VALID_HOST_MAX_CHARS:
        if len(_VALID_HOSTS) >= _VALID_HOSTS_MAX:
            _VALID_HOSTS.clear()
        _VALID_HOSTS.add(value)
    return True


def _classify_target(method: str, target: str) -> "tuple[TargetForm, str, Optional[str]]":
    """Tell the request-target's form (RFC 9112 §3.2); return it with path and authority.

    For every target but origin-form with a method other than CONNECT, which the
    caller recognises itself (nearly every request). ``authority`` is None for
    asterisk-form (the Host field applies). Raises ProtocolError(400) for a form the
    method may not use or a malformed target.
    """
    if target[0] == "/":  # with CONNECT
        raise ProtocolError(400, "CONNECT requires authority-form (RFC 9112 §3.2.3)")
    if target == "*":
        if method != "OPTIONS":
            raise ProtocolError(400, "asterisk-form is only for OPTIONS (RFC 9112 §3.2.4)")
        return TargetForm.ASTERISK, "*", None
    if method == "CONNECT":
        if abnf.AUTHORITY_FORM.fullmatch(target) is None:
            raise ProtocolError(400, "invalid authority-form request-target")
        return TargetForm.AUTHORITY, "", target
    match = abnf.ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        raise ProtocolError(400, "invalid request-target; expected origin-form or an http(s) absolute-form")
    authority, path = match.groups()
    # An http(s) URI has a non-empty host and no userinfo (RFC 9110 §4.2.1, §4.2.4).
    if authority[:1] in ("", ":") or abnf.HOST.fullmatch(authority) is None:
        raise ProtocolError(400, "invalid authority in absolute-form request-target")
    if not path.startswith("/"):
        path = "/" + path  # "http://host" and "http://host?q" mean path "/" (RFC 9110 §4.2.3)
    return TargetForm.ABSOLUTE, path, authority


def _list_members(value: str) -> "frozenset[str]":
    """The members of a comma-separated list (RFC 9110 §5.6.1), lower-cased, without empties."""
    return frozenset([part.strip(" \t") for part in value.lower().split(",")]) - {""}


def _check_transfer_codings(value: str) -> None:
    """Accept only ``chunked`` as the sole transfer coding (RFC 9112 §6.1, §6.3, §7).

    Raises ProtocolError: 400 if chunked is not the final coding (the length cannot be
    determined, §6.3), is applied twice, or the list has an empty element; 501 for
    any other coding before chunked, which this server does not implement.
    """
    codings = [part.strip(" \t").lower() for part in value.split(",")]
    if not all(codings):
        raise ProtocolError(400, "empty element in Transfer-Encoding")
    if codings[-1] != "chunked":
        raise ProtocolError(400, "final transfer coding is not chunked (RFC 9112 §6.3)")
    for coding in codings[:-1]:
        if coding == "chunked":
            raise ProtocolError(400, "chunked applied more than once (RFC 9112 §7)")
        raise ProtocolError(501, "transfer coding not implemented: %s" % coding[:40])


def _content_length(value: str, max_body_bytes: int) -> int:
    """The single Content-Length of a request (RFC 9110 §8.6, RFC 9112 §6.3).

    ``value`` is the field value, repeated lines joined with ","; it may be a list
    ("5, 5"). Every member must be ``1*DIGIT`` and all must be the same string. Raises
    ProtocolError: 400 otherwise, 413 if the length exceeds ``max_body_bytes``.
    """
    members = set()
    for part in value.split(","):
        part = part.strip(" \t")
        if abnf.CONTENT_LENGTH.fullmatch(part) is None:
            raise ProtocolError(400, "Content-Length is not a decimal number")
        members.add(part)
    if len(members) != 1:
        raise ProtocolError(400, "conflicting Content-Length values")
    digits = members.pop().lstrip("0")
    if len(digits) > _MAX_LENGTH_DIGITS or int(digits or "0") > max_body_bytes:
        raise ProtocolError(413, "message body larger than %d bytes" % max_body_bytes)
    return int(digits or "0")
