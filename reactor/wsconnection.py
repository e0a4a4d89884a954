"""One open WebSocket over a transport, as an explicit state machine (RFC 6455 §5-§7).

Theory of operation
-------------------
A :class:`WebSocketSession` is what an HTTP exchange becomes after a ``101 Switching
Protocols`` (:mod:`reactor.handlers.websocket` answers the handshake): it takes the
connection's transport, its place in the server's table of sessions, and the bytes that
arrived behind the handshake, which it parses first. It knows nothing of HTTP. Frames
are parsed by the sans-I/O :class:`~reactor.websocket.FrameParser`; whole messages go to
the endpoint's handler (``on_open``, ``on_message``, ``on_close``, on the loop thread),
which answers with :meth:`WebSocketSession.send` and ends with
:meth:`WebSocketSession.close`.

The session is in one state at a time (:class:`WsState`; ``docs/websocket.md`` draws
them from :data:`NEXT`), and every change goes through :meth:`WebSocketSession.set_state`:

- ``opening`` until the transport says ``connection_made()`` (the next loop pass);
- ``open``: messages both ways; the peer's pings are answered;
- ``closing``: the server sent a Close frame (the handler's ``close()``, a graceful stop's
  1001, a silent peer's 1011, a slow receiver's 1008) and waits for the peer's, at most
  ``websocket_close_timeout_s``; then it aborts. Messages that still arrive are dropped;
- ``lingering``: the closing handshake is over, or the connection was failed (a
  protocol error, 1002; bad UTF-8, 1007; a message too big, 1009: the Close frame goes
  out at once and nothing more is parsed). The server shuts its write side first, as
  §7.1.1 asks of servers, and reads until the peer's EOF, at most ``linger_timeout_s``;
- ``closed``: the transport is closed, the table entry gone, ``on_close`` has run.

A peer's Close is echoed with its own code (§5.5.1): ``on_close`` is told that code, or
the one the server closed with, or 1006 when the connection dropped without a Close.

Keepalive: one :class:`~reactor.deadline.Deadline` chases the state's limit. While open,
it falls ``websocket_ping_interval_s`` after the last byte received (any byte counts as
life, as aiohttp does); then a Ping goes out, and if nothing at all arrives within
``websocket_ping_timeout_s`` more, the session closes with 1011. Receiving costs one
assignment of the loop's time; the timer is looked at only when it fires.

Back-pressure: reading pauses while more than :data:`HIGH_WATER_BYTES` wait in the
transport for the kernel, and resumes when they have drained; the peer's TCP window then
holds it back. A receiver whose queue would pass ``websocket_max_queued_bytes`` with one
more message (a slow client in a broadcast) is closed with 1008 instead of being sent
to: nobody is buffered without bound.
"""

from __future__ import annotations

import enum
import logging
import typing
from typing import Any, Callable, Dict, FrozenSet, Optional, Union

from reactor.config import Config
from reactor.deadline import Deadline
from reactor.events import NEED_DATA, RequestHead
from reactor.loop import EventLoop
from reactor.sessions import InvalidTransition, SessionTable
from reactor.trace import Tracer
from reactor.transport import Transport, log_lost
from reactor.websocket import (
    CLOSE,
    PING,
    PONG,
    Close,
    CloseCode,
    FrameParser,
    Handler,
    Message,
    Ping,
    WebSocketError,
    close_payload,
    encode_close,
    encode_frame,
    encode_message,
)

log = logging.getLogger("reactor.wsconnection")

#: Reading pauses while more than this waits in the transport for the kernel.
HIGH_WATER_BYTES = 64 * 1024


class WsState(enum.Enum):
    """The states of a WebSocket session (``docs/websocket.md`` draws them)."""

    OPENING = "opening"  # the 101 is in the kernel; the transport is handed over on the next loop pass
    OPEN = "open"  # messages both ways; a Ping after the peer's silence
    CLOSING = "closing"  # our Close frame is sent; waiting for the peer's (websocket_close_timeout_s)
    LINGERING = "lingering"  # Close frames exchanged, or the connection failed: write side shut, awaiting EOF
    CLOSED = "closed"  # transport closed, out of the table, on_close called; nothing leaves it

    __hash__ = object.__hash__  # identity hashing, as ConnState


#: The allowed moves. :meth:`WebSocketSession.set_state` refuses any other.
NEXT: Dict[WsState, FrozenSet[WsState]] = {
    WsState.OPENING: frozenset({WsState.OPEN, WsState.CLOSED}),
    WsState.OPEN: frozenset({WsState.CLOSING, WsState.LINGERING, WsState.CLOSED}),
    WsState.CLOSING: frozenset({WsState.LINGERING, WsState.CLOSED}),
    WsState.LINGERING: frozenset({WsState.CLOSED}),
    WsState.CLOSED: frozenset(),
}

_OPENING = WsState.OPENING
_OPEN = WsState.OPEN
_CLOSING = WsState.CLOSING
_LINGERING = WsState.LINGERING
_CLOSED = WsState.CLOSED
_READING = frozenset({_CLOSING, _LINGERING})  # states that read whatever the queue holds


class Context(typing.Protocol):
    """What a session needs of the server (:class:`reactor.connection.Collaborators` has it)."""

    config: Config
    loop: EventLoop
    sessions: SessionTable
    tracer: Optional[Tracer]
    stopping: bool


class WebSocketSession:
    """One WebSocket connection, driven through :class:`WsState`; a :class:`~reactor.sessions.Session`.

    Made by the upgrade of a 101 (``functools.partial(WebSocketSession, ctx, handler,
    head, subprotocol)`` called with the transport and the bytes behind the request).
    What a handler may use: :meth:`send`, :meth:`close`, ``request_path`` (the path the
    endpoint is mounted at, without the query), ``request_head`` (the handshake's
    :class:`~reactor.events.RequestHead`: its fields, the query; in ``on_open`` only, None
    after it returns, so that idle sessions stay small: take what you need there),
    ``subprotocol`` (the one chosen, or None), ``id``, ``peer``, ``loop`` and ``ctx``. Loop thread only; from another
    thread, ``session.loop.call_soon_threadsafe(session.send, message)``.
    """

    __slots__ = (
        "ctx",
        "transport",
        "id",
        "handler",
        "request_head",
        "request_path",
        "subprotocol",
        "state",
        "parser",
        "timer",
        "tracer",
        "received_at",
        "pinged_at",
        "close_code",
        "close_reason",
        "__weakref__",
    )

    #: What the status page counts this session as (:attr:`reactor.sessions.Session.label`).
    label = "websocket"

    def __init__(
        self,
        ctx: Context,
        handler: Handler,
        head: RequestHead,
        subprotocol: Optional[str],
        transport: Transport,
        data: bytes,
    ) -> None:
        self.ctx = ctx
        self.transport = transport
        self.id = transport.id
        self.handler = handler
        self.request_head: Optional[RequestHead] = head  # until on_open has returned
        self.request_path = head.path.partition("?")[0]
        self.subprotocol = subprotocol
        self.state = _OPENING
        self.parser = FrameParser(ctx.config.websocket_max_message_bytes)
        self.parser.feed(data)  # what came behind the handshake is parsed first
        self.timer = Deadline(ctx.loop, self._on_timer)
        self.tracer = ctx.tracer
        self.received_at = ctx.loop.now  # loop time of the last bytes from the peer
        self.pinged_at = float("-inf")  # loop time of our last Ping
        #: What on_close is told: the peer's Close, else the one we sent; None until either.
        self.close_code: Optional[int] = None
        self.close_reason = ""

    def __repr__(self) -> str:
        return "<WebSocketSession #%d %s %s %s>" % (self.id, self.peer, self.request_path, self.state.value)

    @property
    def peer(self) -> str:
        """The client's address (:attr:`reactor.sessions.Session.peer`)."""
        return self.transport.peer

    @property
    def loop(self) -> EventLoop:
        return self.ctx.loop

    @property
    def secure(self) -> bool:
        """True over TLS (``wss://``)."""
        return self.transport.secure

    def phase(self) -> str:
        """The state's name, for the status page."""
        return self.state.value

    # -- what handlers call --------------------------------------------------------------

    def send(self, message: Union[str, bytes]) -> bool:
        """Send ``message`` as one frame: ``str`` as text, ``bytes`` as binary.

        Returns False, sending nothing, unless the session is open: after a Close frame
        no data may follow (RFC 6455 §5.5.1). A receiver with more than
        ``websocket_max_queued_bytes`` waiting is closed with 1008 instead (see
        :meth:`send_frame`). Raises TypeError for other types.
        """
        if self.state is not _OPEN:
            return False
        return self.send_frame(encode_message(message))

    def send_frame(self, frame: bytes) -> bool:
        """Queue an encoded frame (:func:`reactor.websocket.encode_message`); what :func:`~reactor.websocket.broadcast` calls.

        The byte cap: if bytes already wait for the kernel and this frame would take
        them past ``websocket_max_queued_bytes``, the receiver is too slow for what it
        is sent: it is closed with 1008 and False returned. A frame larger than the cap
        still goes to a receiver that has caught up.
        """
        if self.state is not _OPEN:
            return False
        transport = self.transport
        queued = transport.queued_bytes()
        if queued and queued + len(frame) > self.ctx.config.websocket_max_queued_bytes:
            log.info(
                "#%d %s: %d bytes still waiting for a slow receiver; closing with 1008", self.id, self.peer, queued
            )
            self.close(CloseCode.POLICY_VIOLATION, "too slow: %d bytes waiting" % queued)
            return False
        transport.write(frame)
        return True

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 §7.1.2): send a Close frame with ``code`` and ``reason``.

        The session then waits for the peer's Close, at most ``websocket_close_timeout_s``
        seconds, and aborts after that. A no-op unless open. ``reason`` is cut to 123
        bytes of UTF-8. Raises ValueError for a code no endpoint may send (1005, 1006,
        1015, or outside 1000-4999's defined ranges).
        """
        payload = close_payload(code, reason)
        if self.state is not _OPEN:
            return
        self.close_code = code
        self.close_reason = reason
        self._trace("send Close %d %s" % (code, reason))
        self.transport.write(encode_frame(CLOSE, payload))
        self.set_state(_CLOSING)
        self._update_reading()

    def abort(self) -> None:
        """End now, without a closing handshake (the transport closes; ``on_close`` hears 1006 if no Close was seen)."""
        if self.state is not _CLOSED:
            self.set_state(_CLOSED)

    def go_away(self) -> None:
        """The server is stopping: Close with 1001. One still opening does it once it opens (see :meth:`connection_made`)."""
        if self.state is _OPEN:
            self.close(CloseCode.GOING_AWAY, "server shutting down")

    # -- the state machine ---------------------------------------------------------------

    def set_state(self, new: WsState) -> None:
        """Move to ``new``: check :data:`NEXT`, then do what entering it means.

        ``open`` arms the keepalive; ``closing`` the close timeout; ``lingering`` shuts
        the write side and arms the linger timeout; ``closed`` closes the transport,
        leaves the table and calls ``on_close``. Raises InvalidTransition.
        """
        old = self.state
        if new not in NEXT[old]:
            raise InvalidTransition("%r: %s -> %s" % (self, old.value, new.value))
        self.state = new
        if self.tracer:
            self.tracer.state(self, old, new)
        config = self.ctx.config
        timer = self.timer
        if new is _OPEN:
            timer.when = self.received_at + config.websocket_ping_interval_s
        elif new is _CLOSING:
            timer.arm(config.websocket_close_timeout_s)
        elif new is _LINGERING:
            self.transport.shutdown_write()  # the server closes first (§7.1.1)
            timer.arm(config.linger_timeout_s)
        else:
            self._teardown()
            return
        timer.settle()

    def _teardown(self) -> None:
        self.timer.close()
        transport = self.transport
        transport.close()
        transport.protocol = None  # no cycle between the two
        self.ctx.sessions.discard(self)
        code = self.close_code if self.close_code is not None else CloseCode.ABNORMAL
        log.debug("#%d WebSocket closed: %d %s", self.id, code, self.close_reason)
        self._call(self.handler.on_close, code, self.close_reason)

    def _process(self) -> None:
        """Turn every frame buffered into events and act on each, until the parser needs more bytes."""
        parser = self.parser
        while True:
            state = self.state
            if state is not _OPEN and state is not _CLOSING:
                break
            try:
                event = parser.next_event()
            except WebSocketError as exc:
                self._fail(exc)
                break
            if event is NEED_DATA:
                break
            if self.tracer:
                self._trace_event(event)
            kind = type(event)
            if kind is Message:
                if state is _OPEN:  # after our Close, messages are dropped
                    self._call(self.handler.on_message, event.data)  # type: ignore[union-attr]
            elif kind is Ping:
                if state is _OPEN:
                    self.transport.write(encode_frame(PONG, event.payload))  # type: ignore[union-attr]
            elif kind is Close:
                self._on_close_frame(event)  # type: ignore[arg-type]
            # a Pong is life, already counted when its bytes arrived
        self._update_reading()

    def _on_close_frame(self, frame: Close) -> None:
        """The peer's Close: echo its code if the closing handshake is theirs (§5.5.1), then shut our side."""
        if self.state is _OPEN:
            self.transport.write(encode_close(None if frame.code == CloseCode.NO_STATUS else frame.code))
        self.close_code = frame.code
        self.close_reason = frame.reason
        self.set_state(_LINGERING)

    def _fail(self, exc: WebSocketError) -> None:
        """Fail the WebSocket connection (RFC 6455 §7.1.7): a Close with ``exc.code`` if none was sent, then linger."""
        log.debug("#%d %s: failing the WebSocket: %s", self.id, self.peer, exc)
        if self.state is _OPEN:
            self.close_code = exc.code
            self.close_reason = exc.reason
            self._trace("send Close %s" % exc)
            self.transport.write(encode_close(exc.code, exc.reason))
        self.set_state(_LINGERING)

    def _call(self, method: Callable[..., None], *args: Any) -> None:
        """Call a handler method; an exception from it is a bug: logged, and the session closes with 1011."""
        try:
            method(self, *args)
        except Exception:
            log.exception("#%d WebSocket handler %s failed", self.id, getattr(method, "__qualname__", method))
            self.close(CloseCode.INTERNAL_ERROR, "internal error")

    def _update_reading(self) -> None:
        """Read while open and the queue is under the high-water mark; always while closing or lingering."""
        state = self.state
        if state is _OPEN:
            self.transport.set_reading(self.transport.queued_bytes() <= HIGH_WATER_BYTES)
        elif state in _READING:
            self.transport.set_reading(True)

    # -- what the transport reports ------------------------------------------------------

    def connection_made(self) -> None:
        """The transport is ours: open, tell the handler, then parse the bytes that came behind the handshake."""
        if self.state is not _OPENING:
            return
        self.received_at = self.ctx.loop.now
        self.set_state(_OPEN)
        self._call(self.handler.on_open)
        # The handshake's fields (cookies, user agent...) are for on_open to look at; an idle
        # session keeping them would weigh twice as much (about 2 KiB of a browser's head).
        self.request_head = None
        if self.ctx.stopping:
            self.go_away()  # the stop began while the transport was being handed over
        self._process()

    def data_received(self, data: bytes) -> None:
        self.received_at = self.ctx.loop.now  # any byte is life (keepalive)
        if self.state is _LINGERING:
            return  # after the closing handshake or a failure: discard until EOF
        self.parser.feed(data)
        self._process()

    def eof_received(self) -> None:
        if self.state is not _LINGERING:
            log.debug("#%d %s: EOF without a closing handshake", self.id, self.peer)
        self.abort()

    def write_drained(self) -> None:
        self._update_reading()

    def connection_lost(self, exc: BaseException) -> None:
        log_lost(log, self.id, exc)
        if self.tracer:
            self.tracer.lost(self, exc)
        self.abort()

    # -- timeouts ----------------------------------------------------------------------

    def _on_timer(self) -> None:
        """The current state's deadline passed: keepalive while open, abort or close after that."""
        state = self.state
        if state is _OPEN:
            self._keepalive()
        elif state is _CLOSING:
            log.debug("#%d %s: no Close frame came back; closing", self.id, self.peer)
            self.abort()
        elif state is _LINGERING:
            self.abort()

    def _keepalive(self) -> None:
        """Ping a peer silent for the ping interval; close with 1011 one silent for the ping timeout after that."""
        config = self.ctx.config
        now = self.ctx.loop.now
        heard = self.received_at
        timeout = config.websocket_ping_timeout_s
        if timeout is None:
            timeout = config.websocket_ping_interval_s
        if self.pinged_at > heard and now >= self.pinged_at + timeout:
            log.info("#%d %s: no answer to a ping within %g s; closing", self.id, self.peer, timeout)
            self.close(CloseCode.INTERNAL_ERROR, "keepalive ping timed out")
            return
        due = heard + config.websocket_ping_interval_s
        if now >= due:
            if self.pinged_at <= heard:
                self.pinged_at = now
                self._trace("send Ping")
                self.transport.write(encode_frame(PING, b""))
            due = self.pinged_at + timeout
        self.timer.when = due
        self.timer.settle()

    # -- tracing -----------------------------------------------------------------------

    def _trace(self, text: str) -> None:
        if self.tracer:
            self.tracer.line(self.id, "websocket " + text)

    def _trace_event(self, event: Any) -> None:
        kind = type(event)
        if kind is Message:
            data = event.data
            if isinstance(data, str):
                self._trace("text message, %d characters" % len(data))
            else:
                self._trace("binary message, %d bytes" % len(data))
        elif kind is Close:
            self._trace("Close %d %s" % (event.code, event.reason))
        else:
            self._trace("%s %d bytes" % (kind.__name__, len(event.payload)))
