"""WebSocket (RFC 6455) without I/O: the frame codec, and the shapes of the endpoint API.

Theory of operation
-------------------
:class:`FrameParser` is the WebSocket's counterpart of :class:`reactor.parser.RequestParser`:
it owns a receive buffer and nothing else (no socket, no clock, no thread). The session
(:class:`reactor.wsconnection.WebSocketSession`) ``feed``\\s it what the transport
received and calls ``next_event`` until it returns ``NEED_DATA``. Out come whole
messages (:class:`Message`: ``str`` for text, ``bytes`` for binary), and the control
frames :class:`Ping`, :class:`Pong` and :class:`Close`. Fragmented messages are
reassembled; control frames between their fragments come out when they arrive, so a
Ping is answered before the message it interrupts is complete (§5.4).

The parser is strict, and fails at the first byte that shows a fault, never later:

- every frame from a client must be masked, and RSV bits are refused (no extension is
  ever negotiated); unknown opcodes, fragmented or long (over 125 bytes) control
  frames, a continuation with nothing to continue and a new message inside a
  fragmented one are protocol errors (1002), found from the frame's first two bytes; so
  is a payload length not written in the fewest bytes (§5.2: "MUST");
- the size of a message is checked from each frame's header, before its payload is
  read: past ``max_message_bytes`` (all fragments counted together) or
  ``max_fragments`` frames it fails with 1009;
- text is decoded as UTF-8 incrementally, piece by piece as the payload arrives, so an
  invalid byte fails the connection (1007) when it arrives, not when its frame or
  message ends, also across fragment boundaries;
- a Close frame's code must be one an endpoint may send (§7.4: 1005, 1006, 1015 and the
  reserved ranges are 1002), its reason valid UTF-8 (1007).

A fault raises :class:`WebSocketError`, carrying the close code to fail the connection
with, as :class:`~reactor.errors.ProtocolError` carries a status; the error is sticky.
Events that came before the fault have been returned first: a valid message in front
of a bad frame is delivered (and answered) before the connection fails.

Payloads are unmasked with ``int.from_bytes`` and one XOR of two big integers for pieces
up to :data:`_XOR_MAX_BYTES` (the standard library has no XOR for bytes), and with
``bytes.translate`` over the four strided slices above that, whichever measured faster
for the size (both are C loops; see ``docs/websocket.md``).

The encoder makes the server's frames, which are never masked (§5.1) and never
fragmented: :func:`encode_message` and :func:`encode_close`. :func:`encode_frame` can
mask too, for clients and tests.

The endpoint API lives here as well, because it is only shapes: a :class:`Handler` has
``on_open``, ``on_message`` and ``on_close``; :class:`Echo` is the handler conformance
tools are pointed at (``reactor.websocket:Echo``); :func:`broadcast` encodes a message
once for many sessions.
"""

from __future__ import annotations

import base64
import codecs
import enum
import functools
import hashlib
import logging
import typing
from typing import Iterable, List, NamedTuple, Optional, Union

from reactor.events import NEED_DATA, _Sentinel

log = logging.getLogger("reactor.websocket")

#: Opcodes (RFC 6455 §5.2, §11.8).
CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA


class CloseCode(enum.IntEnum):
    """Close codes (RFC 6455 §7.4.1, and the IANA registry's 1012-1014)."""

    NORMAL = 1000  # the purpose of the connection is fulfilled
    GOING_AWAY = 1001  # the server is stopping (or a browser leaves the page)
    PROTOCOL_ERROR = 1002  # a frame broke RFC 6455
    UNSUPPORTED_DATA = 1003  # a kind of message the endpoint does not take
    NO_STATUS = 1005  # (never sent) a Close frame without a code
    ABNORMAL = 1006  # (never sent) the connection ended without a Close frame
    INVALID_DATA = 1007  # text that is not UTF-8
    POLICY_VIOLATION = 1008  # e.g. a receiver too slow for its broadcasts
    MESSAGE_TOO_BIG = 1009  # past --websocket-max-message-bytes
    MANDATORY_EXTENSION = 1010  # (clients only) an extension the server did not agree to
    INTERNAL_ERROR = 1011  # the handler failed, or the peer stopped answering pings
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # (never sent)


#: Codes a Close frame may carry on the wire (§7.4): the defined ones except 1004-1006 and
#: 1015, and the ranges for libraries (3000-3999) and applications (4000-4999).
SENDABLE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015)) | frozenset(range(3000, 5000))

MAX_CONTROL_PAYLOAD_BYTES = 125  # §5.5
MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD_BYTES - 2
#: The least cap on the frames of one message: Autobahn's 9.3/9.4 send 65,536 fragments.
MIN_FRAGMENTS = 65536

_XOR_MAX_BYTES = 16 * 1024  # up to this, unmask by integer XOR; above, by translate (measured)
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # §1.3


class WebSocketError(Exception):
    """Fail the WebSocket connection (RFC 6455 §7.1.7) with close ``code`` and a one-line ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return "%d %s" % (self.code, self.reason)


class Message(NamedTuple):
    """A whole data message: ``str`` from text frames, ``bytes`` from binary ones."""

    data: Union[str, bytes]


class Ping(NamedTuple):
    payload: bytes


class Pong(NamedTuple):
    payload: bytes


class Close(NamedTuple):
    """The peer's Close frame: ``code`` (1005 when it carried none) and ``reason``."""

    code: int
    reason: str


Event = Union[Message, Ping, Pong, Close]

_new_tuple = tuple.__new__
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _protocol_error(reason: str) -> WebSocketError:
    return WebSocketError(CloseCode.PROTOCOL_ERROR, reason)


@functools.lru_cache(maxsize=256)
def _xor_table(key: int) -> bytes:
    """``bytes.translate`` table that XORs every byte with ``key``."""
    return bytes(value ^ key for value in range(256))


def unmask(data: Union[bytes, bytearray, memoryview], mask: bytes) -> bytes:
    """``data`` XORed with the 4-byte ``mask`` repeated (RFC 6455 §5.3); the mask starts at ``data[0]``."""
    size = len(data)
    if size <= _XOR_MAX_BYTES:
        if not size:
            return b""
        key = int.from_bytes((mask * ((size >> 2) + 1))[:size], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")
    out = bytearray(data)
    for index in range(4):
        out[index::4] = out[index::4].translate(_xor_table(mask[index]))
    return bytes(out)


def encode_frame(opcode: int, payload: bytes, fin: bool = True, mask: Optional[bytes] = None, rsv: int = 0) -> bytes:
    """One frame (RFC 6455 §5.2): header, then ``payload`` (masked with the 4-byte ``mask`` if given).

    ``rsv`` sets the three RSV bits (0-7), for tests of peers that must refuse them. The
    server never masks (§5.1). Raises ValueError for a mask that is not 4 bytes.
    """
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode
    size = len(payload)
    masked = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, masked | size))
    elif size < 65536:
        header = bytes((first, masked | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, masked | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return header + payload
    if len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    return header + mask + unmask(payload, mask)


def encode_message(message: Union[str, bytes]) -> bytes:
    """A server's frame for ``message``: a text frame for ``str``, a binary frame for bytes.

    Raises TypeError for anything else (and UnicodeEncodeError for lone surrogates).
    """
    if isinstance(message, str):
        return encode_frame(TEXT, message.encode("utf-8"))
    if isinstance(message, (bytes, bytearray, memoryview)):
        return encode_frame(BINARY, bytes(message))
    raise TypeError("a WebSocket message is str (text) or bytes (binary), not %s" % type(message).__name__)


def close_payload(code: Optional[int], reason: str = "") -> bytes:
    """A Close frame's payload: ``code`` (2 bytes) and ``reason`` cut to 123 bytes at a character boundary.

    ``code`` None makes an empty payload (the peer sees 1005). Raises ValueError for a
    code no endpoint may send (see :data:`SENDABLE_CODES`).
    """
    if code is None:
        return b""
    if code not in SENDABLE_CODES:
        raise ValueError("%r is not a close code an endpoint may send (RFC 6455 §7.4)" % code)
    data = reason.encode("utf-8", "replace")
    if len(data) > MAX_CLOSE_REASON_BYTES:
        data = data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + data


def encode_close(code: Optional[int], reason: str = "") -> bytes:
    """A server's Close frame (see :func:`close_payload`)."""
    return encode_frame(CLOSE, close_payload(code, reason))


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2 step 5.4)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def parse_close(payload: bytes) -> Close:
    """The code and reason of a Close frame's (unmasked) payload.

    Raises WebSocketError: 1002 for a 1-byte payload or a code no endpoint may send
    (§7.4), 1007 for a reason that is not UTF-8 (§5.5.1).
    """
    if not payload:
        return Close(CloseCode.NO_STATUS, "")
    if len(payload) == 1:
        raise _protocol_error("a Close frame's payload of 1 byte")
    code = int.from_bytes(payload[:2], "big")
    if code not in SENDABLE_CODES:
        raise _protocol_error("close code %d may not be sent" % code)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketError(CloseCode.INVALID_DATA, "the close reason is not UTF-8") from None
    return Close(code, reason)


class FrameParser:
    """Parse frames from a WebSocket client into messages and control frames (RFC 6455 §5), without I/O.

    ``max_message_bytes``: the largest message payload, all its fragments together; more
    → 1009, decided from each frame's header. ``max_fragments``: the most frames in one
    message (None: ``max(65536, max_message_bytes // 64)``); more → 1009.
    """

    __slots__ = (
        "max_message_bytes",
        "max_fragments",
        "_buf",
        "_error",
        "_remaining",
        "_opcode",
        "_fin",
        "_mask",
        "_offset",
        "_message_opcode",
        "_message_bytes",
        "_fragments",
        "_parts",
        "_decoder",
    )

    def __init__(self, max_message_bytes: int = 1024 * 1024, max_fragments: Optional[int] = None) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_fragments = max(MIN_FRAGMENTS, max_message_bytes // 64) if max_fragments is None else max_fragments
        self._buf = bytearray()
        self._error: Optional[WebSocketError] = None
        self._remaining = -1  # payload bytes of the current frame still to come; -1: a header is next
        self._opcode = 0  # the current frame's
        self._fin = True
        self._mask = b""
        self._offset = 0  # payload bytes of the current frame already unmasked
        self._message_opcode = 0  # TEXT or BINARY while a message is being received; 0 between messages
        self._message_bytes = 0  # payload bytes announced so far for the current message
        self._fragments = 0
        self._parts: List[Union[str, bytes]] = []
        self._decoder: Optional[codecs.IncrementalDecoder] = None  # while a text message arrives in pieces

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer (an empty ``data`` changes nothing; after a failure, nothing does)."""
        if self._error is None:
            self._buf += data

    def buffered_bytes(self) -> int:
        """Bytes received and not yet parsed (a partial frame's payload is parsed as it arrives)."""
        return len(self._buf)

    def in_message(self) -> bool:
        """True while a fragmented message has begun and not ended."""
        return self._message_opcode != 0

    def next_event(self) -> Union[Event, _Sentinel]:
        """The next event, or ``NEED_DATA``. Raises WebSocketError (again on every later call)."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except WebSocketError as exc:
            self._error = exc
            self._buf.clear()
            self._parts = []
            raise

    def _next(self) -> Union[Event, _Sentinel]:
        buf = self._buf
        while True:
            if self._remaining < 0 and not self._read_header():
                return NEED_DATA
            remaining = self._remaining
            if self._opcode >= CLOSE:  # a control frame: at most 125 bytes, taken whole
                if len(buf) < remaining:
                    return NEED_DATA
                payload = unmask(buf[:remaining], self._mask)
                del buf[:remaining]
                self._remaining = -1
                return self._control(self._opcode, payload)
            if remaining <= len(buf):
                if self._fin and self._fragments == 1 and not self._offset:
                    return self._whole_message(remaining)  # the common case: one frame, all here
                size = remaining
            else:
                size = len(buf)
                if not size:
                    return NEED_DATA
            self._payload_piece(size)
            if self._remaining:
                return NEED_DATA  # the buffer is used up; the frame goes on
            self._remaining = -1
            if self._fin:
                return self._end_message()

    def _read_header(self) -> bool:
        """Parse the next frame header if it has all arrived; check what its first bytes already tell.

        Returns False when more bytes are needed. Raises WebSocketError.
        """
        buf = self._buf
        if len(buf) < 2:
            if buf:
                self._check_first(buf[0])  # fail at once on a first byte that is already wrong
            return False
        first = buf[0]
        second = buf[1]
        opcode = self._check_first(first)
        if not second & 0x80:
            raise _protocol_error("a client's frame must be masked")
        size = second & 0x7F
        if opcode >= CLOSE and size > MAX_CONTROL_PAYLOAD_BYTES:
            raise _protocol_error("a control frame's payload is over 125 bytes")
        if size == 126:
            if len(buf) < 8:
                return False
            size = int.from_bytes(buf[2:4], "big")
            if size < 126:
                raise _protocol_error("a payload length in 2 bytes where 1 would do")
            start = 4
        elif size == 127:
            if len(buf) < 14:
                if len(buf) >= 3 and buf[2] & 0x80:
                    raise _protocol_error("a payload length with its most significant bit set")
                return False
            size = int.from_bytes(buf[2:10], "big")
            if size >> 63:
                raise _protocol_error("a payload length with its most significant bit set")
            if size < 65536:
                raise _protocol_error("a payload length in 8 bytes where 2 would do")
            start = 10
        else:
            if len(buf) < 6:
                return False
            start = 2
        if opcode < CLOSE:
            message_bytes = self._message_bytes + size
            if message_bytes > self.max_message_bytes:
                raise WebSocketError(CloseCode.MESSAGE_TOO_BIG, "a message over %d bytes" % self.max_message_bytes)
            fragments = self._fragments + 1
            if fragments > self.max_fragments:
                raise WebSocketError(CloseCode.MESSAGE_TOO_BIG, "a message in over %d frames" % self.max_fragments)
            self._message_bytes = message_bytes
            self._fragments = fragments
            if opcode:
                self._message_opcode = opcode
        self._opcode = opcode
        self._fin = bool(first & 0x80)
        self._mask = bytes(buf[start : start + 4])
        self._remaining = size
        self._offset = 0
        del buf[: start + 4]
        return True

    def _check_first(self, first: int) -> int:
        """The opcode of a frame whose first byte is ``first``, once that byte is known to be allowed here."""
        if first & 0x70:
            raise _protocol_error("RSV bits set, and no extension was negotiated")
        opcode = first & 0x0F
        if opcode >= CLOSE:
            if opcode > PONG:
                raise _protocol_error("reserved control opcode %#x" % opcode)
            if not first & 0x80:
                raise _protocol_error("a fragmented control frame")
        elif opcode > BINARY:
            raise _protocol_error("reserved data opcode %#x" % opcode)
        elif opcode == CONTINUATION:
            if not self._message_opcode:
                raise _protocol_error("a continuation frame with no message to continue")
        elif self._message_opcode:
            raise _protocol_error("a new message inside a fragmented one")
        return opcode

    def _control(self, opcode: int, payload: bytes) -> Event:
        if opcode == PING:
            return Ping(payload)
        if opcode == PONG:
            return Pong(payload)
        return parse_close(payload)

    def _whole_message(self, size: int) -> Message:
        """A one-frame message whose payload has all arrived: unmask and decode it at once."""
        buf = self._buf
        data = unmask(buf[:size], self._mask)
        del buf[:size]
        self._remaining = -1
        self._message_bytes = self._fragments = self._message_opcode = 0
        if self._opcode == TEXT:
            try:
                return _new_tuple(Message, (data.decode("utf-8"),))
            except UnicodeDecodeError:
                raise WebSocketError(CloseCode.INVALID_DATA, "a text message that is not UTF-8") from None
        return _new_tuple(Message, (data,))

    def _payload_piece(self, size: int) -> None:
        """Unmask the next ``size`` bytes of a data frame's payload into the message, decoding text as it comes."""
        buf = self._buf
        shift = self._offset & 3
        mask = self._mask
        if shift:
            mask = mask[shift:] + mask[:shift]
        data = unmask(buf[:size], mask)
        del buf[:size]
        self._offset += size
        self._remaining -= size
        if self._message_opcode == BINARY:
            self._parts.append(data)
            return
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = _utf8_decoder()
        try:
            text = decoder.decode(data, False)
        except UnicodeDecodeError:
            raise WebSocketError(CloseCode.INVALID_DATA, "a text message that is not UTF-8") from None
        pending = decoder.getstate()[0]
        # CPython waits for the third byte of ED A0..ED BF (a UTF-16 surrogate) before
        # refusing it; the second byte is already enough (RFC 3629 §4): fail now.
        if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            raise WebSocketError(CloseCode.INVALID_DATA, "a text message that is not UTF-8")
        if text:
            self._parts.append(text)

    def _end_message(self) -> Message:
        parts = self._parts
        self._parts = []
        self._message_bytes = self._fragments = 0
        opcode = self._message_opcode
        self._message_opcode = 0
        if opcode == BINARY:
            return _new_tuple(Message, (b"".join(parts),))  # type: ignore[arg-type]
        decoder = self._decoder
        assert decoder is not None  # every fragment of a text message went through _payload_piece
        self._decoder = None
        try:
            decoder.decode(b"", True)  # a sequence cut off by the end of the message
        except UnicodeDecodeError:
            raise WebSocketError(CloseCode.INVALID_DATA, "a text message that is not UTF-8") from None
        return _new_tuple(Message, ("".join(parts),))  # type: ignore[arg-type]


# -- the endpoint API's shapes -------------------------------------------------------------


class Sender(typing.Protocol):
    """What :class:`Echo` and :func:`broadcast` use of a session (:class:`reactor.wsconnection.WebSocketSession`)."""

    request_path: str
    peer: str

    def send(self, message: Union[str, bytes]) -> bool: ...

    def send_frame(self, frame: bytes) -> bool: ...

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None: ...


class Handler(typing.Protocol):
    """One WebSocket connection's application code, made by an endpoint's factory (``factory()``) per connection.

    The session calls these on the loop thread, in order: ``on_open(session)`` once the
    connection is open, ``on_message(session, message)`` for each whole message (``str``
    for text, ``bytes`` for binary), and ``on_close(session, code, reason)`` once, when
    it has ended (the peer's close code, or the one the server closed with; 1006 if the
    connection dropped without a Close frame). They must not block: anything that could
    (a database, a file, a slow computation) goes to a pool, and its result comes back with
    ``session.loop.call_soon_threadsafe(session.send, reply)``. An exception escaping
    one of them is logged and closes the connection with 1011.
    """

    def on_open(self, session: typing.Any) -> None: ...

    def on_message(self, session: typing.Any, message: Union[str, bytes]) -> None: ...

    def on_close(self, session: typing.Any, code: int, reason: str) -> None: ...


class Echo:
    """Sends every message back as it came: text as text, binary as binary.

    The handler conformance tools are pointed at: ``--websocket /=reactor.websocket:Echo``.
    """

    def on_open(self, session: Sender) -> None:
        pass

    def on_message(self, session: Sender, message: Union[str, bytes]) -> None:
        session.send(message)

    def on_close(self, session: Sender, code: int, reason: str) -> None:
        pass


def broadcast(sessions: Iterable[Sender], message: Union[str, bytes]) -> int:
    """Send ``message`` to every session in ``sessions``, encoding its frame once; loop thread only.

    Each receiver's byte cap applies (``Config.websocket_max_queued_bytes``, see
    :meth:`reactor.wsconnection.WebSocketSession.send_frame`): one whose waiting bytes
    would pass it is closed with 1008 instead of being sent to, so a slow client costs
    at most the cap. Sessions that are closing are skipped. ``sessions`` may change
    while this runs (a closed one leaves its room). Returns how many were sent to.
    Raises TypeError for a message that is neither str nor bytes.
    """
    frame = encode_message(message)
    sent = 0
    for session in list(sessions):
        if session.send_frame(frame):
            sent += 1
    return sent
