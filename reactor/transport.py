"""Transports: the bytes beneath the HTTP exchange, over plain TCP or TLS.

Theory of operation
-------------------
A transport owns one non-blocking socket and everything about moving bytes through it:
the selector registration, the outbox of bytes the kernel has not taken yet, file bodies
(``os.sendfile``, or bounded blocks: copied from the page cache on the loop thread when
they are there, read on the worker pool when they are not), ``TCP_CORK``, shutting the
write side, and closing. :class:`TLSTransport` adds the handshake, record encryption and
``close_notify``. The HTTP exchange above (:class:`reactor.connection.Connection`) sees
only this small interface, as asyncio's protocols see their transports, and cannot tell
which of the two it has:

- :meth:`Transport.start` begins; the transport calls ``protocol.connection_made()``
  when bytes can flow (at once for TCP, after the handshake for TLS);
- :meth:`Transport.set_reading` says whether the exchange wants input now; the
  transport derives the selector interest from that and from its own needs (bytes to
  send, a handshake that wants to read), and calls the selector only when the
  interest changes;
- :meth:`Transport.write` and :meth:`Transport.write_file` queue output and try to send
  at once; ``writing`` is true until all of it is in the kernel, and
  ``protocol.write_drained()`` reports the moment it gets there;
- the transport calls ``protocol.data_received(data)`` and ``protocol.eof_received()``
  with what arrives, and ``protocol.connection_lost(exc)`` when the socket fails;
- :meth:`Transport.shutdown_write` ends the output (``close_notify`` first for TLS) and
  :meth:`Transport.close` releases everything;
- :meth:`Transport.switch_protocol` hands the transport to another protocol (after a
  ``101 Switching Protocols``): from the next loop pass on, everything above goes to the
  new one, which is told ``connection_made()`` first.

A transport is in one of three states (:class:`TransportState`): ``handshaking`` (TLS
only, until the handshake is done), ``open``, and ``closed``.

Calls from the exchange into the transport never call back into the exchange
synchronously; a socket error found while writing is reported on the next loop pass.
That keeps the exchange's state machine free of re-entrance.

TLS uses :class:`ssl.SSLObject` over two memory BIOs rather than a non-blocking
:class:`ssl.SSLSocket`: the transport itself moves ciphertext between the socket and
OpenSSL, so TLS records leave through the same outbox as plain bytes, and the classic
inversion of non-blocking TLS (a read that needs the socket writable, a write that needs
it readable) becomes explicit data flow: whatever OpenSSL wants to send after any step
is in the outgoing BIO, and "wants to read" means "wait for the socket to be readable".
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import socket
import ssl
import typing
from typing import Any, List, Optional, Union

from reactor.loop import EVENT_READ, EVENT_WRITE, EventLoop
from reactor.response import AbortedStream, FileBody, MemoryBody, Pool, StreamBody, close_stream
from reactor.sessions import Protocol
from reactor.trace import Tracer

log = logging.getLogger("reactor.transport")

RECV_BYTES = 65536
BLOCK_BYTES = 256 * 1024  # one block of a file body when sendfile is not used (or cannot be: TLS)
_SENDFILE_BYTES = 4 * 1024 * 1024  # most bytes one sendfile call may move
_CACHED_BLOCKS = _SENDFILE_BYTES // BLOCK_BYTES  # most blocks one wake-up copies from the page cache
_CORK_BYTES = 1024 * 1024  # files at least this large stream corked (see _cork)
_DEFER_BYTES = 64 * 1024  # most bytes write(more=True) keeps back for one send (see write)
# Larger sends from memory ask the loop for their share of the pass (EventLoop.grant); smaller
# ones (a head, a cached small file) just go. sendfile is zero-copy and does not ask.
_FREE_SEND_BYTES = 64 * 1024
_TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux only
_QUIET_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)
_RETRY_BLOCK_S = 0.01  # the pool was full: ask again this soon
Buffer = Union[bytes, bytearray, memoryview]  # what the outbox holds: anything send() takes


class TransportState(enum.Enum):
    HANDSHAKING = "handshaking"  # TLS: the handshake is under way; nothing goes up or down yet
    OPEN = "open"  # bytes flow both ways
    CLOSED = "closed"  # socket closed, unregistered; nothing leaves it

    __hash__ = object.__hash__  # identity hashing: no Python-level call


_HANDSHAKING = TransportState.HANDSHAKING
_OPEN = TransportState.OPEN
_CLOSED = TransportState.CLOSED


class Counters(typing.Protocol):
    sent_bytes: int


def is_quiet(exc: BaseException) -> bool:
    """True for errors that only mean the peer went away (logged at debug level)."""
    if isinstance(exc, (_QUIET_ERRORS, ssl.SSLError)):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT)


def log_lost(logger: logging.Logger, conn_id: int, exc: BaseException) -> None:
    """Log the failure of a session's socket: at debug level when the peer only went away, else a warning."""
    if is_quiet(exc):
        logger.debug("#%d connection lost: %s", conn_id, exc)
    else:
        logger.warning("#%d socket error: %s", conn_id, exc)


def _closed_event(mask: int) -> None:
    """What a closed transport answers to a stale selector event: nothing."""


class Transport:
    """Plain TCP: a non-blocking socket, an outbox, and file bodies by sendfile or blocks.

    ``sock`` is connected and non-blocking. ``sendfile`` says whether file bodies may
    go by ``os.sendfile`` (zero copy); otherwise they go in blocks of
    :data:`BLOCK_BYTES`, from the page cache at once or read on ``pool``.
    ``stats.sent_bytes`` counts bytes handed to the kernel; ``tracer`` is None unless
    ``--trace``. ``id`` names the connection in trace lines.
    """

    __slots__ = (
        "loop",
        "sock",
        "pool",
        "stats",
        "tracer",
        "id",
        "peer",
        "_local_host",
        "protocol",
        "progressed_at",
        "_mask",
        "_reading",
        "_outbox",
        "_file",
        "_stream",
        "_block_pending",
        "_sendfile",
        "state",
        "_on_event_cb",
        "_deferred",
        "_watching",
        "_peer_port",
        "_waiting_turn",
    )

    #: True for transports that encrypt (the exchange never needs it; logs and status may).
    secure = False
    #: Whether a file block is done with once queued (TLS: encrypted at once), so that the
    #: next one may be read into the same buffer; a plain block waits in the outbox.
    _reuse_blocks = False

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        pool: Pool,
        stats: Counters,
        tracer: Optional[Tracer],
        conn_id: int,
        peer: str,
        sendfile: bool,
        peer_port: int = 0,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.pool = pool
        self.stats = stats
        self.tracer = tracer
        self.id = conn_id
        self.peer = peer  # the client's address, for the log
        self._local_host: Optional[str] = None  # see local_host
        self._peer_port: Optional[int] = peer_port or None  # see peer_port; accept() usually told it
        self.protocol: Optional[Protocol] = None
        self.progressed_at = 0.0  # loop time of the last send that moved bytes while the socket was full
        self._mask = 0
        self._reading = False
        # A list, not a deque: it rarely holds more than two items, and an empty deque
        # costs 760 bytes against a list's 56, which matters with 10,000 idle connections.
        self._outbox: List[Buffer] = []
        self._file: Optional[FileBody] = None
        self._stream: Optional[StreamBody] = None
        self._block_pending = False  # a pool read of the file's (or stream's) next block is in flight
        self._sendfile = sendfile
        self.state = _OPEN
        self._on_event_cb = self._on_event  # one bound method, so selector.modify sees the same data
        self._deferred = 0  # bytes at the end of the outbox that write(more=True) keeps back
        # An application's block is being made and nothing waits in the outbox: the socket
        # is watched for the peer's EOF (see _peek), so a client that leaves is noticed now.
        self._watching = False
        self._waiting_turn = False  # the pass's send allowance is spent: sending goes on at the next turn

    # -- the interface ---------------------------------------------------------------

    @property
    def tls_version(self) -> Optional[str]:
        """The TLS version in use (``"TLSv1.3"``), for the log; None over plain TCP."""
        return None

    @property
    def local_host(self) -> str:
        """The address the client reached us on (getsockname), or "" if it is unknown.

        Asked on first use only: the Host check needs it only when the common values
        miss, and a system call per connection is a cost Connection: close pays in full.
        """
        host = self._local_host
        if host is None:
            try:
                host = self.sock.getsockname()[0]
            except (OSError, IndexError, TypeError):
                host = ""
            self._local_host = host
        return host

    @property
    def peer_port(self) -> int:
        """The client's port: as accept() gave it, else getpeername on first use; 0 if it is unknown."""
        port = self._peer_port
        if port is None:
            try:
                port = int(self.sock.getpeername()[1])
            except (OSError, IndexError, TypeError, ValueError):
                port = 0
            self._peer_port = port
        return port

    def start(self, protocol: Protocol) -> None:
        """Attach the exchange; plain TCP is ready at once.

        A client sends first, and under load its request has usually arrived by the time
        the connection is accepted: so the first ``recv`` is tried at once, not after a
        registration and a pass through ``select`` (if nothing is there it costs one
        ``recv`` that says so). A request answered with ``Connection: close`` then never
        touches the selector. The interest is settled after that first read.
        """
        self.protocol = protocol
        self._reading = True  # not registered yet: the exchange's set_reading(True) changes nothing
        protocol.connection_made()
        try:
            if self._reading and self.state is not _CLOSED:
                self._read()
        except Exception as exc:
            self._bug(exc)
        self._update_interest()

    def writing(self) -> bool:
        """True while queued bytes or a file or stream body are not all in the kernel yet.

        A method, as :meth:`reactor.parser.RequestParser.buffered_bytes` is, and for the same
        reason: the connection asks once per request.

        Bytes kept back by ``write(more=True)`` do not count: they leave with the next
        write or :meth:`flush`, whichever comes first.
        """
        return (bool(self._outbox) and not self._deferred) or self._file is not None or self._stream is not None

    def waiting_for_peer(self) -> bool:
        """True while output waits for the client to read (bytes in the outbox, a file by sendfile).

        False while the next block of a stream is still being made: a slow application is
        not a client that stopped reading (the send timeout asks this).
        """
        return bool(self._outbox) or self._file is not None

    def queued_bytes(self) -> int:
        """Bytes written and not yet taken by the kernel (TLS: as records), for a protocol's back-pressure.

        A file or stream body still to come is not counted: it is read only as the outbox drains.
        """
        return sum(map(len, self._outbox))

    def set_reading(self, on: bool) -> None:
        """Whether the exchange wants input now; settles the selector interest."""
        if on is not self._reading:
            self._reading = on
            self._update_interest()

    def write(self, data: Buffer, more: bool = False) -> None:
        """Queue ``data`` after what is queued already and send what the socket takes now.

        With ``more``, the caller has more to write at once (the responses to pipelined
        requests): ``data`` is kept back, up to ``_DEFER_BYTES``, so that it leaves with
        what follows in one send. Only behind an empty outbox, so a client that does
        not read still holds up the exchange; the caller must end with :meth:`flush`.
        """
        if self.state is _CLOSED:
            return
        outbox = self._outbox
        outbox.append(data)
        if more and self._file is None and self._stream is None and (self._deferred or len(outbox) == 1):
            deferred = self._deferred + len(data)
            if deferred <= _DEFER_BYTES:
                self._deferred = deferred
                return
        if self._deferred:  # this write ends a batch
            self._join_deferred()
        self._flush()

    def flush(self) -> None:
        """Send what ``write(more=True)`` kept back."""
        if self._deferred:
            self._join_deferred()
            self._flush()

    def _join_deferred(self) -> None:
        # A batch starts behind an empty outbox (see write), so the outbox is the batch:
        # joined, it goes in one send instead of one per response.
        self._deferred = 0
        outbox = self._outbox
        if len(outbox) > 1:
            outbox[:] = [b"".join(outbox)]

    def write_file(self, file: FileBody) -> None:
        """Send ``file`` after the queued bytes: by ``sendfile``, else in blocks (see :meth:`_make_block`).

        The transport closes its descriptor.
        """
        if self.state is _CLOSED:
            file.close()
            return
        self._deferred = 0  # the file follows the queued bytes
        if not self._sendfile:
            self.write_stream(file)  # a file is a stream of known length (FileBody.read_block)
            return
        self._file = file
        if file.remaining >= _CORK_BYTES:
            self._cork(True)
        self._flush()

    def write_stream(self, stream: StreamBody) -> None:
        """Send ``stream`` after the queued bytes, a block at a time as the outbox drains.

        Each block is made on the pool (``stream.read_block``; a file's cached blocks are
        copied at once, see :meth:`_make_block`), so a client that never
        reads costs one block; the transport closes the stream at its end or on close.
        """
        if self.state is _CLOSED:
            stream.close()
            return
        self._deferred = 0
        self._stream = stream
        self._flush()

    def switch_protocol(self, protocol: Protocol) -> None:
        """Hand the transport to ``protocol``: after a ``101 Switching Protocols``, another protocol speaks.

        Input stops until ``protocol.connection_made()``, which runs on the next loop pass,
        not inside this call (a transport never calls up synchronously from a call down):
        the new protocol turns reading on there. Bytes that arrived behind the switch are
        not the transport's to give: the old protocol hands them over itself. A socket
        error before then is reported to ``protocol.connection_lost``.
        """
        self.protocol = protocol
        self.set_reading(False)
        self.loop.call_soon(self._switched, protocol)

    def _switched(self, protocol: Protocol) -> None:
        if self.state is _CLOSED or self.protocol is not protocol:
            return
        try:
            protocol.connection_made()
        except Exception as exc:
            self._bug(exc)

    def input_waiting(self) -> bool:
        """True if bytes from the peer wait in the kernel, unread (a request a moment before a stop)."""
        if self.state is _CLOSED:
            return False
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except OSError:  # BlockingIOError: nothing yet; others: it is dead anyway
            return False

    def shutdown_write(self) -> None:
        """Send nothing more: shut the write side once the outbox is empty (FIN)."""
        self.flush()
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already gone: the close that follows is all that is left

    def close(self) -> None:
        """Unregister and close the socket; release a file body. Idempotent."""
        if self.state is _CLOSED:
            return
        self.flush()  # what the exchange took as written (best effort, as for any close)
        self.state = _CLOSED
        if self._mask:
            self._mask = 0
            try:
                self.loop.selector.unregister(self.sock)
            except (KeyError, ValueError, OSError):
                pass  # already gone (the socket died first); nothing left to undo
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._stream is not None:
            if not self._block_pending:
                close_stream(self._stream)  # else the block's callback closes it
            self._stream = None
        self._outbox.clear()
        try:
            self.sock.close()
        except OSError:
            pass
        # A bound method of ours held by ourselves is a reference cycle: drop it, so a
        # closed transport is freed by reference counting, not by the cyclic collector.
        self._on_event_cb = _closed_event

    # -- selector interest -----------------------------------------------------------

    def _wants(self) -> int:
        """The selector mask: read when asked to; write while bytes wait for the kernel."""
        mask = EVENT_READ if self._reading else 0
        # Bytes kept back by write(more=True) are sent before the loop selects again; bytes
        # waiting for a turn are sent when the loop gives it, whatever the socket says.
        if ((self._outbox and not self._deferred) or self._file is not None) and not self._waiting_turn:
            mask |= EVENT_WRITE
        elif self._watching:
            mask = EVENT_READ  # for _peek: nothing to send while an application's block is made
        return mask

    def _update_interest(self) -> None:
        """Bring the selector's mask to :meth:`_wants`, except that dropping read interest waits.

        A request handed to a pool stops the reading; it is usually answered before the
        client sends anything more, and then the reading starts again. Keeping the socket
        registered for reading meanwhile saves two ``epoll_ctl`` calls a request. Should it
        become readable first (pipelined bytes, a hang-up), :meth:`_on_event` drops the
        interest then (:meth:`_set_mask`), so a client still cannot push more input in.
        """
        if self.state is _CLOSED:
            return
        mask = self._wants()
        registered = self._mask
        if mask != registered and (mask | EVENT_READ) != registered:
            self._set_mask(mask)

    def _set_mask(self, mask: int) -> None:
        """Register, modify or unregister the socket so the selector's mask is exactly ``mask``."""
        if mask == self._mask:
            return
        selector = self.loop.selector
        if mask == 0:
            selector.unregister(self.sock)  # register() rejects an empty mask
        elif self._mask == 0:
            selector.register(self.sock, mask, self._on_event_cb)
        else:
            selector.modify(self.sock, mask, self._on_event_cb)
        if self.tracer:
            self.tracer.interest(self, self._mask, mask)
        self._mask = mask

    # -- events from the loop ----------------------------------------------------------

    def _on_event(self, mask: int) -> None:
        # The selector's callback: kept short, as it runs for every request.
        try:
            if self.tracer:
                self.tracer.event(self, mask)
            if mask & EVENT_WRITE:
                self._flush()
                self._report_drained()
            if mask & EVENT_READ and self._reading and self.state is not _CLOSED:
                self._read()
            elif mask & EVENT_READ and self._watching and self.state is not _CLOSED:
                self._peek()
            elif mask & EVENT_READ and self.state is not _CLOSED:
                self._set_mask(self._wants())  # readable while nobody reads: the put-off drop, now
        except Exception as exc:
            self._bug(exc)

    def _bug(self, exc: Exception) -> None:
        """A bug costs this connection, never the loop (nor a busy spin)."""
        log.error("#%d error in the transport", self.id, exc_info=exc)
        self._lost(exc)

    def _read(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if self.tracer:
            self.tracer.recv(self, len(data))
        self._received(data)

    def _peek(self) -> None:
        """The socket is readable while an application makes the next block: has the client gone?

        EOF (or a reset) means nobody will read the rest: the transport is closed now, so
        the stream's ``close()`` runs as soon as the block being made returns, not after
        the next send fails. Bytes (a pipelined request, a TLS alert) are left queued and
        the watch ends for this block; a send error will tell then.
        """
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(ConnectionResetError("the client closed the connection during the response"))
            return
        self._watching = False
        self._update_interest()

    def _deliver(self, data: bytes) -> None:
        protocol = self.protocol
        assert protocol is not None
        if data:
            protocol.data_received(data)
        else:
            protocol.eof_received()

    #: What to do with bytes from the socket: plain TCP hands them straight up; TLS decrypts.
    _received = _deliver

    def _lost(self, exc: BaseException) -> None:
        """The socket failed: close, then tell the exchange (once)."""
        if self.state is _CLOSED:
            return
        self.close()
        protocol = self.protocol
        assert protocol is not None
        protocol.connection_lost(exc)

    def _lost_later(self, exc: BaseException) -> None:
        """A failure found inside a call from the exchange: report it on the next pass."""
        if self.state is not _CLOSED:
            self.loop.call_soon(self._lost, exc)

    # -- output ----------------------------------------------------------------------

    def _flush(self) -> None:
        """Send what the socket takes now; the rest waits for EVENT_WRITE, or for a turn.

        A buffer larger than ``_FREE_SEND_BYTES`` is sent only as far as the loop grants
        (:meth:`~reactor.loop.EventLoop.grant`); the rest waits for this transport's next
        turn (:meth:`_take_turn`), so one pass never copies more than the loop allows,
        however many clients were answered in it.
        """
        outbox = self._outbox
        sock = self.sock
        stats = self.stats
        blocks = 0  # blocks taken from the page cache in this call: bounded, as sendfile's bytes are
        try:
            while True:
                if not outbox:
                    if self._file is not None:
                        self._send_file()
                    elif (
                        self._stream is not None
                        and not self._block_pending
                        and self._make_block()
                        and blocks < _CACHED_BLOCKS
                    ):
                        blocks += 1
                        continue  # the block came from the page cache at once: send it now
                    break
                data = outbox[0]
                size = len(data)
                sent = sock.send(data) if size <= _FREE_SEND_BYTES else self._send_granted(data, size)
                if sent < 0:
                    break  # waiting for a turn
                stats.sent_bytes += sent
                if self.tracer:
                    self.tracer.send(self, sent, size)
                if sent < size:
                    outbox[0] = memoryview(data)[sent:]
                    self.progressed_at = self.loop.now
                    if len(outbox) == 1 and self._stream is not None and not self._block_pending:
                        self._make_block()  # read ahead while this block drains: the socket never waits for the disk
                    break
                del outbox[0]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._outbox.clear()
            self._lost_later(exc)
            return
        if outbox or self._file is not None or self._mask & EVENT_WRITE:
            self._update_interest()  # else all went out and no write interest is set: nothing to change

    def _send_granted(self, data: Buffer, size: int) -> int:
        """Send as much of a large ``data`` as the loop grants; -1 when it grants nothing now.

        If the socket took all that was granted (it might take more), the rest waits for
        this transport's next turn rather than for EVENT_WRITE. Raises what ``send`` raises.
        """
        loop = self.loop
        granted = loop.grant(size)
        if not granted:
            self._wait_turn()
            return -1
        try:
            sent = self.sock.send(memoryview(data)[:granted] if granted < size else data)
        except (BlockingIOError, InterruptedError):
            loop.give_back(granted)
            raise
        if sent < granted:
            loop.give_back(granted - sent)  # the socket is full: EVENT_WRITE will say when it is not
        elif sent < size:
            self._wait_turn()
        return sent

    def _wait_turn(self) -> None:
        """Stop sending until the loop's next turn (the pass's allowance is spent)."""
        if not self._waiting_turn:
            self._waiting_turn = True
            self.loop.next_turn(self._take_turn)

    def _take_turn(self) -> None:
        """The loop's turn for this transport: go on sending, as on EVENT_WRITE."""
        self._waiting_turn = False
        if self.state is _CLOSED or not self._outbox:
            return
        try:
            self._flush()
            self._report_drained()
        except Exception as exc:
            self._bug(exc)

    def _send_file(self) -> None:
        """Send from the file body by zero-copy sendfile, at most ``_SENDFILE_BYTES`` a wake-up.

        Raises BlockingIOError or OSError from the socket.
        """
        file = self._file
        assert file is not None
        out_fd = self.sock.fileno()
        moved = 0
        while file.remaining and moved < _SENDFILE_BYTES:
            sent = os.sendfile(out_fd, file.fd, file.offset, min(file.remaining, _SENDFILE_BYTES))
            if sent == 0:  # the file shrank under us: the promised length can't be met
                raise ConnectionAbortedError("file truncated while sending")
            file.offset += sent
            file.remaining -= sent
            moved += sent
            self.stats.sent_bytes += sent
            if self.tracer:
                self.tracer.sendfile(self, sent, file.remaining)
            self.progressed_at = self.loop.now
        if file.remaining:
            return
        file.close()
        self._file = None
        self._cork(False)

    def _cork(self, on: bool) -> None:
        """Hold partial TCP segments while a large file streams (Linux ``TCP_CORK``).

        Corked, the head and the file's data leave in full-sized segments instead of
        whatever each sendfile call happened to move; uncorking flushes the tail. It
        measurably lightens the receiver's work (nginx's ``tcp_nopush`` does the same).
        """
        if _TCP_CORK is None:
            return
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1 if on else 0)
        except OSError:
            pass  # not TCP, or already gone: nothing to hold back

    def _make_block(self) -> bool:
        """Queue the stream's next block now if the page cache has it, else ask the pool for it.

        Returns True when a block (or the end of a file) was dealt with at once. A file's
        block is copied on the loop thread only if it is cached
        (:meth:`~reactor.response.FileBody.read_cached`), so a disk read never holds up
        the loop; that saves a round trip through the pool per block, in which the loop
        and the worker take the GIL from each other many times. Other streams (gzip)
        and uncached blocks go to the pool, and are queued when they come back.

        The next block is asked for while the last one drains, so the socket never
        waits for the disk; at most one block is queued and one in flight, so a client
        that never reads costs two blocks of memory, whatever the body's size.
        """
        stream = self._stream
        assert stream is not None
        if type(stream) is FileBody or type(stream) is MemoryBody:
            block = stream.read_cached(BLOCK_BYTES, self._reuse_blocks)
            if block is not None:
                if block:
                    self._queue(block)
                if not stream.remaining:
                    stream.close()
                    self._stream = None
                return True
        self._block_pending = True

        def done(future: Any) -> None:
            self._block_pending = False
            if self.tracer:
                self.tracer.pool_result(self, stream.read_block, future, self.state is _CLOSED)
            if self.state is _CLOSED:
                close_stream(stream)  # close() left it open while the block was being made
                return
            if self._watching:
                self._watching = False
                self._update_interest()
            try:
                block = future.result()
            except Exception as exc:  # OSError reading a file, zlib.error: the body cannot be finished
                if isinstance(exc, AbortedStream):
                    log.debug("#%d %s", self.id, exc)  # the stream has logged why
                else:
                    log.error("#%d making the body failed: %s", self.id, exc)
                self._lost(exc)
                return
            self.progressed_at = self.loop.now  # the send timeout counts from here, not from the last block
            if block:
                self.write(block)
            if not block or (isinstance(stream, FileBody) and not stream.remaining):  # a file knows its end
                close_stream(stream)
                if self._stream is stream:
                    self._stream = None
            self._report_drained()

        pool = stream.pool or self.pool  # an application's stream names its own pool
        if self.tracer:
            self.tracer.pool_submit(self, stream.read_block, pool)
        if not pool.submit(stream.read_block, (BLOCK_BYTES,), done):
            self._block_pending = False
            self.loop.call_later(_RETRY_BLOCK_S, self._retry_stream)
        elif stream.pool is not None:
            self._watching = True  # an application may take a while: notice the client leaving meanwhile
            if not self._outbox:
                self._update_interest()
        return False

    def _queue(self, block: Buffer) -> None:
        """Put a block of the body at the end of the outbox (TLS encrypts it first)."""
        self._outbox.append(block)

    def _retry_stream(self) -> None:
        if (
            self._stream is not None
            and not self._block_pending
            and self.state is not _CLOSED
            and len(self._outbox) <= 1
        ):
            if self._make_block():  # cached by now: send it (or see the end) as a drain would
                self._flush()
                self._report_drained()

    def _report_drained(self) -> None:
        """From a loop callback, never from inside a call of the exchange: tell it all its output is in the kernel."""
        if not self.writing() and self.state is not _CLOSED:
            protocol = self.protocol
            assert protocol is not None
            protocol.write_drained()


class TLSTransport(Transport):
    """TLS over TCP (RFC 8446, RFC 5246) with :class:`ssl.SSLObject` and memory BIOs.

    Starts with the handshake, driven by readiness: each step's output goes through the
    outbox, and a step that wants more input waits for the socket to be readable. The
    exchange is told ``connection_made()`` only when the handshake is done. File bodies
    always go in blocks (``sendfile`` cannot encrypt). Closing sends ``close_notify``.

    A first byte that cannot start a TLS record is plain HTTP sent to the HTTPS port:
    it gets a short plain-text ``400`` and a close, as nginx does.
    """

    __slots__ = ("_ssl", "_incoming", "_outgoing", "_first")

    secure = True
    _reuse_blocks = True

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        pool: Pool,
        stats: Counters,
        tracer: Optional[Tracer],
        conn_id: int,
        peer: str,
        context: ssl.SSLContext,
        peer_port: int = 0,
    ) -> None:
        super().__init__(loop, sock, pool, stats, tracer, conn_id, peer, False, peer_port)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.state = _HANDSHAKING
        self._first = True  # nothing received yet (see _plain_http)

    def start(self, protocol: Protocol) -> None:
        """Attach the exchange and wait for the ClientHello."""
        self.protocol = protocol
        if self.tracer:
            self.tracer.tls(self, "handshake begins")
        self._reading = True
        self._update_interest()

    @property
    def alpn_protocol(self) -> Optional[str]:
        return self._ssl.selected_alpn_protocol()

    @property
    def tls_version(self) -> Optional[str]:
        return self._ssl.version()

    def set_reading(self, on: bool) -> None:
        if self.state is _HANDSHAKING:
            on = True  # the handshake reads whatever the exchange wants
        super().set_reading(on)

    def write(self, data: Buffer, more: bool = False) -> None:
        """Encrypt ``data`` into TLS records, queue them and send what the socket takes (``more`` is ignored).

        A body larger than a block is encrypted a block at a time as the socket takes it
        (a :class:`~reactor.response.MemoryBody`), so the records of a shared body are not
        a second copy per client and no single call encrypts megabytes.
        """
        if self.state is _CLOSED:
            return
        if len(data) > BLOCK_BYTES and self._stream is None and self._file is None:
            self.write_stream(MemoryBody(data))
            return
        self._queue(data)
        self._flush()

    def _queue(self, block: Buffer) -> None:
        """Encrypt ``block`` into TLS records and put them at the end of the outbox."""
        try:
            self._ssl.write(block)
        except ssl.SSLError as exc:
            self._lost_later(exc)
            return
        self._outbox.append(self._outgoing.read())

    def shutdown_write(self) -> None:
        """Send ``close_notify`` (RFC 8446 §6.1), then shut the TCP write side."""
        self._send_close_notify()
        super().shutdown_write()

    def close(self) -> None:
        """Send ``close_notify`` if the session is up (best effort), then close."""
        if self.state is not _CLOSED:
            self._send_close_notify()
        super().close()

    def _send_close_notify(self) -> None:
        if self.state is not _OPEN:
            return
        try:
            self._ssl.unwrap()
        except ssl.SSLError:
            pass  # SSLWantReadError: the peer's close_notify is not awaited; ours is queued
        data = self._outgoing.read()
        if data:
            try:
                self.sock.send(data)  # best effort: a full socket buffer loses only the alert
            except OSError:
                pass

    def _received(self, data: bytes) -> None:
        """Ciphertext from the socket: the handshake, then records decrypted and handed up."""
        if self._first and data:
            self._first = False
            if data[0] != 0x16:  # not a handshake record: RFC 8446 §5.1
                self._plain_http()
                return
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        if self.state is _HANDSHAKING and not self._handshake():
            return
        self._read_plaintext()

    def _read_plaintext(self) -> None:
        """Decrypt everything received and hand it up (OpenSSL keeps no plaintext back)."""
        chunks = []
        eof = False
        sslobj = self._ssl
        incoming = self._incoming
        try:
            while True:
                chunk = sslobj.read(RECV_BYTES)
                if not chunk:
                    eof = True
                    break
                chunks.append(chunk)
                if not incoming.pending and not sslobj.pending() and not incoming.eof:
                    break  # all of it decrypted: spare the read that would raise SSLWantReadError
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            eof = True  # close_notify, or a TCP EOF without it: the end of input either way
        except ssl.SSLError as exc:
            self._send_pending()  # the alert
            log.debug("#%d TLS error: %s", self.id, exc)
            self._lost(exc)
            return
        self._send_pending()  # e.g. an answer to a KeyUpdate
        if chunks and self.state is not _CLOSED:
            self._deliver(b"".join(chunks))
        if eof and self.state is not _CLOSED:
            self._deliver(b"")

    def _handshake(self) -> bool:
        """One step of the handshake; True once it is done."""
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._send_pending()  # our flight of the handshake, if this step made one
            if self._incoming.eof:
                self._lost(ConnectionAbortedError("EOF during the TLS handshake"))
            return False
        except (ssl.SSLError, OSError) as exc:
            self._send_pending()  # the alert that tells the client why
            log.debug("#%d TLS handshake failed: %s", self.id, exc)
            if self.tracer:
                self.tracer.tls(self, "handshake failed: %s" % exc)
            self._lost(exc)
            return False
        self.state = _OPEN
        self._send_pending()
        if self.tracer:
            self.tracer.tls(self, "handshake done: %s, ALPN %s" % (self._ssl.version(), self.alpn_protocol))
        protocol = self.protocol
        assert protocol is not None
        protocol.connection_made()
        return self.state is not _CLOSED

    def _send_pending(self) -> None:
        if self._outgoing.pending:
            self._outbox.append(self._outgoing.read())
            self._flush()

    def _plain_http(self) -> None:
        """Plain HTTP on the TLS port: say so in plain text, then close."""
        body = b"400 Bad Request: this port speaks HTTPS; use https://\n"
        reply = (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        log.debug("#%d plain HTTP on the TLS port; answering 400", self.id)
        if self.tracer:
            self.tracer.tls(self, "plain HTTP on the TLS port: 400, close")
        try:
            self.sock.send(reply)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._lost(ConnectionAbortedError("plain HTTP on the TLS port"))


#: TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all of that already).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def tls_context(cert_file: str, key_file: str, password: Optional[str] = None) -> ssl.SSLContext:
    """A server context: TLS 1.2 or newer, AEAD suites, ALPN ``http/1.1``, no compression or renegotiation.

    Raises OSError for a missing or unreadable file and ssl.SSLError for a bad or
    mismatched certificate and key.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(cert_file, key_file, password=password)
    return context
