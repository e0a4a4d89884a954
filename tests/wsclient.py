"""A raw WebSocket client for tests: the handshake by hand, then frames written and read byte for byte.

Real clients (``websockets``, ``wsproto``) refuse to send malformed frames; this one sends
whatever a test builds (:func:`reactor.websocket.encode_frame` with a mask, or corpus
bytes) and reads the server's frames with a parser of its own, strict about what a
server may send: never masked, no RSV bits, control frames whole and short.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time
from typing import List, NamedTuple, Optional, Tuple

from reactor.websocket import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, accept_key, close_payload, encode_frame

__all__ = ["RawWebSocket", "Frame", "handshake_request", "read_head"]


class Frame(NamedTuple):
    opcode: int
    fin: bool
    payload: bytes

    @property
    def close_code(self) -> Optional[int]:
        assert self.opcode == CLOSE
        return int.from_bytes(self.payload[:2], "big") if self.payload else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")


def handshake_request(
    host: str, path: str = "/echo", key: Optional[str] = None, extra: str = "", version: str = "1.1"
) -> bytes:
    """A valid opening handshake (RFC 6455 §4.1) for ``path``; ``extra`` holds more field lines with CRLFs."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    return (
        "GET %s HTTP/%s\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (path, version, host, key, extra)
    ).encode("latin-1")


def read_head(sock: socket.socket, have: bytes = b"") -> Tuple[int, dict, bytes]:
    """(status, fields lower-cased, bytes after the head) of one response head."""
    data = have
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed before the response head: %r" % data)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields: dict = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split(" ")[1]), {k: ", ".join(v) for k, v in fields.items()}, rest


class RawWebSocket:
    """A connected, handshaken WebSocket over ``sock`` (plain or TLS), for tests."""

    def __init__(self, sock: socket.socket, path: str = "/echo", extra: str = "", behind: bytes = b"") -> None:
        self.sock = sock
        host = "%s:%d" % sock.getpeername()[:2]
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(handshake_request(host, path, key, extra) + behind)
        status, fields, self.buf = read_head(sock)
        if status != 101:
            raise AssertionError("handshake answered %d %r" % (status, fields))
        assert fields["sec-websocket-accept"] == accept_key(key)
        self.fields = fields

    # -- sending ---------------------------------------------------------------------

    def send(self, data: bytes, chop: Optional[int] = None) -> None:
        """Send raw bytes, all at once or in pieces of ``chop`` bytes."""
        if chop is None:
            self.sock.sendall(data)
            return
        for start in range(0, len(data), chop):
            self.sock.sendall(data[start : start + chop])

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> None:
        self.sock.sendall(encode_frame(opcode, payload, fin=fin, mask=os.urandom(4), rsv=rsv))

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode("utf-8"))

    def send_close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        self.send_frame(CLOSE, close_payload(code, reason))

    # -- receiving -------------------------------------------------------------------

    def _fill(self, need: int) -> None:
        while len(self.buf) < need:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed after %r" % self.buf[:100])
            self.buf += chunk

    def recv_frame(self) -> Frame:
        """The next frame from the server, checked against what a server may send (RFC 6455 §5)."""
        self._fill(2)
        first, second = self.buf[0], self.buf[1]
        assert not first & 0x70, "RSV bits from the server"
        assert not second & 0x80, "a masked frame from the server (RFC 6455 §5.1)"
        size = second & 0x7F
        start = 2
        if size == 126:
            self._fill(4)
            size, start = int.from_bytes(self.buf[2:4], "big"), 4
        elif size == 127:
            self._fill(10)
            size, start = int.from_bytes(self.buf[2:10], "big"), 10
        self._fill(start + size)
        payload = bytes(self.buf[start : start + size])
        self.buf = self.buf[start + size :]
        opcode = first & 0x0F
        if opcode >= CLOSE:
            assert first & 0x80 and size <= 125, "a fragmented or long control frame from the server"
        return Frame(opcode, bool(first & 0x80), payload)

    def recv_message(self) -> Tuple[int, bytes]:
        """(opcode, payload) of the next whole data message; control frames on the way are skipped (pings answered)."""
        opcode = None
        parts: List[bytes] = []
        while True:
            frame = self.recv_frame()
            if frame.opcode == PING:
                self.send_frame(PONG, frame.payload)
                continue
            if frame.opcode in (PONG,):
                continue
            if frame.opcode == CLOSE:
                raise AssertionError("Close %s %r instead of a message" % (frame.close_code, frame.close_reason))
            if opcode is None:
                assert frame.opcode in (TEXT, BINARY), frame
                opcode = frame.opcode
            else:
                assert frame.opcode == CONTINUATION, frame
            parts.append(frame.payload)
            if frame.fin:
                return opcode, b"".join(parts)

    def expect_close(self, timeout: float = 5.0) -> Frame:
        """Read frames (data ones are an error) until the server's Close; return it."""
        self.sock.settimeout(timeout)
        while True:
            frame = self.recv_frame()
            if frame.opcode == CLOSE:
                return frame
            assert frame.opcode in (PING, PONG), "%r before the Close" % (frame,)

    def at_eof(self, timeout: float = 5.0) -> bool:
        """True once the server closes the TCP connection (EOF or reset) with nothing more sent."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                return not self.buf
            if not chunk:
                return not self.buf
            self.buf += chunk
        return False

    def close(self) -> None:
        self.sock.close()
