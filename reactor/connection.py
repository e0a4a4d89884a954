"""One HTTP/1.1 exchange over a transport, as an explicit state machine.

Theory of operation
-------------------
A :class:`Connection` is the HTTP side of one client: a sans-I/O
:class:`~reactor.parser.RequestParser`, at most one :class:`Request` in progress, and
the state it is in (:class:`ConnState`). The bytes move through a
:class:`~reactor.transport.Transport` beneath it (plain TCP or TLS; the connection
cannot tell which), and everything else it needs comes in its :class:`Collaborators`:
the config, the loop, the pools, the counters, the tracer, the application that routes
requests, and the server's table of sessions, which it leaves when it closes. It never
sees the server; to the server it is one :class:`~reactor.sessions.Session` among others.

A response goes out in four named steps (:meth:`Connection.respond`): its framing and
the connection's persistence are decided by two small functions of
:mod:`reactor.framing`, the head is serialized from parts made once where it can be,
and the bytes are handed to the transport. A ``101 Switching Protocols`` that carries an
upgrade ends the exchange: once the 101 is in the kernel, the parser hands over the
bytes it holds, the connection enters ``UPGRADED`` (terminal: its timer stops, the
transport stays open), the new protocol's session takes its place in the table, and the
transport switches protocol.

Every change of state goes through :meth:`Connection.set_state`, which checks the move
against :data:`NEXT` and arms the timeout of the new state. The diagram in
``docs/states.md`` is generated from :data:`NEXT` (``docs/make_state_diagram.py``).

The machine advances in one place, :meth:`Connection._run`, like lighttpd's
``connection_state_machine_loop``: whenever something happens (bytes or EOF arrived,
the transport drained, the pool answered, a timer fired), the connection takes every
step it can until it must wait, for input, for the client to read, or for the pool.
Then it tells the transport once whether it wants input, and the transport settles the
selector interest. A buffer that holds several pipelined requests is answered request
by request within one pass, in order, because the parser pauses after each request
until its response has been handed to the kernel.

Timeouts use one :class:`~reactor.deadline.Deadline` per connection: a change of state
only sets the deadline (a plain assignment, from the loop's time of the pass); the
timer is settled once, when the pass ends and the connection waits, and is moved only
if it would fire too late. So a keep-alive request that arrives whole and is answered in
one pass touches the timer heap not at all, and extending the deadline on every body
read is O(1).
"""

from __future__ import annotations

import base64
import enum
import logging
import os
import time
import typing
from typing import Any, Callable, Dict, FrozenSet, Optional, Sequence, Tuple

from reactor import log as logmod
from reactor.config import Config
from reactor.deadline import Deadline
from reactor.errors import HTTPError, ProtocolError, busy
from reactor.events import NEED_DATA, PAUSED, BodyData, RequestEnd, RequestHead
from reactor.framing import CHUNKED, BodyFraming, Framing, persists, response_framing
from reactor.loop import EventLoop
from reactor.parser import RequestParser
from reactor.response import FramedStream, FrozenFields, Outcome, Pool, Response, Upgrade, close_stream
from reactor.serializer import field_lines, http_date, response_head, status_line
from reactor.sessions import InvalidTransition, SessionTable
from reactor.stats import Stats
from reactor.trace import Tracer
from reactor.transport import Transport, log_lost

log = logging.getLogger("reactor.connection")

SERVER_NAME = "reactor"
_JOIN_BODY_BYTES = 64 * 1024  # bodies up to this size go out in one send with the head
_CONTINUE = b"HTTP/1.1 100 Continue\r\n"  # then the request id's field line and the empty line
_ID_FIELD = b"X-Request-ID: "
_HEAD_CACHE_ENTRIES = 256  # serialized heads kept by Collaborators.cached_head (one per hot file variant)
_CONTENT_LENGTH = BodyFraming.CONTENT_LENGTH
_CLOSE_TAIL = b"Connection: close\r\n\r\n"
# RequestHead.request_id by index: CPython 3.11 does not specialize an attribute of a
# NamedTuple (about 130 instructions each time), and an index into a tuple it does.
_REQUEST_ID = RequestHead._fields.index("request_id")
# A graceful stop gives a connection accepted but still silent this long to send its
# first request (more than a round trip); a reload must not fail a client that connected.
FRESH_GRACE_S = 1.0


class ConnState(enum.Enum):
    """The states of a connection (``docs/states.md`` draws them)."""

    HANDSHAKING = "handshaking"  # the transport is being set up (the TLS handshake); plain TCP leaves at once
    IDLE = "idle"  # keep-alive wait; idle timer running
    READING_HEADERS = "reading-headers"  # request-line + field lines, until the empty line
    READING_BODY = "reading-body"  # Content-Length or chunked message body
    RESPONDING = "responding"  # the response is being made on the worker pool
    WRITING = "writing"  # the response is queued on the transport, until the kernel has all of it
    CLOSING = "closing"  # final response sent, write side shut; discarding input (lingering close)
    CLOSED = "closed"  # transport closed; nothing leaves it
    UPGRADED = "upgraded"  # a 101 is in the kernel: the transport and the table entry belong to another protocol

    # Members are singletons, so identity hashing is correct, and unlike Enum's own
    # __hash__ (Python code hashing the name) it costs no function call: states are
    # looked up in NEXT and in sets several times per request.
    __hash__ = object.__hash__


#: The allowed moves. :meth:`Connection.set_state` refuses any other.
NEXT: Dict[ConnState, FrozenSet[ConnState]] = {
    ConnState.HANDSHAKING: frozenset({ConnState.IDLE, ConnState.CLOSED}),
    ConnState.IDLE: frozenset({ConnState.READING_HEADERS, ConnState.CLOSED}),
    ConnState.READING_HEADERS: frozenset(
        {ConnState.READING_BODY, ConnState.RESPONDING, ConnState.WRITING, ConnState.CLOSED}
    ),
    ConnState.READING_BODY: frozenset({ConnState.RESPONDING, ConnState.WRITING, ConnState.CLOSED}),
    ConnState.RESPONDING: frozenset({ConnState.WRITING, ConnState.CLOSED}),
    ConnState.WRITING: frozenset(
        {ConnState.IDLE, ConnState.READING_HEADERS, ConnState.CLOSING, ConnState.CLOSED, ConnState.UPGRADED}
    ),
    ConnState.CLOSING: frozenset({ConnState.CLOSED}),
    ConnState.CLOSED: frozenset(),
    ConnState.UPGRADED: frozenset(),
}

_HANDSHAKING = ConnState.HANDSHAKING
_IDLE = ConnState.IDLE
_READING_HEADERS = ConnState.READING_HEADERS
_READING_BODY = ConnState.READING_BODY
_RESPONDING = ConnState.RESPONDING
_WRITING = ConnState.WRITING
_CLOSING = ConnState.CLOSING
_CLOSED = ConnState.CLOSED
_UPGRADED = ConnState.UPGRADED
#: Each state's own time limit: the :class:`~reactor.config.Config` field that holds it
#: in seconds, or None. ``set_state`` sets the deadline from it; WRITING has a limit
#: only while the client does not read (``send_timeout_s``, set in ``_run``).
TIMEOUT_FIELDS: Dict[ConnState, Optional[str]] = {
    _HANDSHAKING: "tls_handshake_timeout_s",
    _IDLE: "keepalive_timeout_s",
    _READING_HEADERS: "header_timeout_s",
    _READING_BODY: "body_timeout_s",
    _RESPONDING: None,  # the pool's job has no deadline; the client waits for it
    _WRITING: None,
    _CLOSING: "linger_timeout_s",
    _CLOSED: None,
    _UPGRADED: None,
}
_PARSING = frozenset({_READING_HEADERS, _READING_BODY})
_ENDED = frozenset({_CLOSED, _UPGRADED})  # the connection has let go of its transport
_WANTS_INPUT = frozenset({_IDLE, _READING_HEADERS, _READING_BODY, _CLOSING})


Handler = Callable[["Connection", "Request"], Optional[Response]]


class Request:
    """One request and what is known of its response, for handlers and the access log.

    ``route`` is the handler the application picked; it answers once the request is
    complete. ``body`` is None unless the route asked for the message body
    (:meth:`want_body`); then it collects the decoded bytes (the parser bounds it by
    ``max_body_bytes``). ``complete`` turns true at the end of the message; a response
    sent before that (an early refusal) closes the connection, lingering. ``status``
    and ``body_bytes_sent`` describe the response, for the log; ``stream`` is a
    streamed body on its way (its bytes are counted as they go), ``upgrade`` the
    protocol switch a 101 carries until it is in the kernel.
    """

    __slots__ = (
        "head",
        "request_line",
        "body",
        "started",
        "status",
        "body_bytes_sent",
        "route",
        "complete",
        "body_started",
        "body_received",
        "stream",
        "upgrade",
    )

    def __init__(self, head: Optional[RequestHead], request_line: Optional[str]) -> None:
        self.head = head
        self.request_line = request_line
        #: A bytearray, or the sink a handler gave want_body(); the connection does ``body += data``.
        self.body: Any = None
        self.started = time.time()
        self.status = 0
        self.body_bytes_sent = 0
        self.route: Optional[Handler] = None
        self.complete = False
        self.body_started = 0.0  # loop time of the first body byte (for the minimum rate)
        self.body_received = 0  # bytes of the message body received so far (as framed)
        self.stream: Optional[FramedStream] = None
        self.upgrade: Optional[Upgrade] = None

    def want_body(self, sink: Optional["BodySink"] = None) -> None:
        """Ask for the message body to be collected into ``body``: a bytearray, or ``sink``."""
        if self.body is None:
            self.body = bytearray() if sink is None else sink


class BodySink(typing.Protocol):
    """Where a request's message body goes as it arrives, if not a bytearray: ``sink += data``, on the loop thread."""

    def __iadd__(self, data: bytes) -> Any: ...


class Application(typing.Protocol):
    """What the connection asks of the application (:class:`reactor.handlers.Application`)."""

    def route(self, conn: "Connection", request: Request) -> Optional[Response]:
        """Pick ``request.route``, or return a refusal (4xx/5xx) that needs no message body.

        Called once the head is known. Raises HTTPError for a refusal too.
        """
        ...


class Collaborators:
    """What every connection of one server is handed: never the server itself.

    ``pool`` does the disk work; ``app_pool`` runs application code (None: the
    application is called on the loop thread, ``--threads 0``). ``sessions`` is the
    server's table: a connection leaves it when it closes, and an upgrade replaces its
    entry. ``stopping`` is set once by whoever runs a graceful stop: from then on every
    response carries ``Connection: close``. ``app`` is set by the server once the port is
    bound, before the first connection. ``request_id_prefix`` (random, made once per
    server, so once per worker process) begins the request ids its connections make.
    """

    __slots__ = (
        "config",
        "loop",
        "pool",
        "app_pool",
        "stats",
        "tracer",
        "app",
        "sessions",
        "stopping",
        "_keep_alive_values",
        "_heads",
        "_date_second",
        "_date_line",
        "_tails",
        "_tails_after_client_id",
        "timeouts",
        "request_id_prefix",
    )

    def __init__(
        self,
        config: Config,
        loop: EventLoop,
        pool: Pool,
        stats: Stats,
        tracer: Optional[Tracer],
        sessions: SessionTable,
        app_pool: Optional[Pool] = None,
    ) -> None:
        self.config = config
        self.loop = loop
        self.pool = pool
        self.app_pool = app_pool
        self.stats = stats
        self.tracer = tracer  # None unless --trace: then each trace point below writes a line
        self.app: Application
        self.sessions = sessions
        self.stopping = False
        self._keep_alive_values: Dict[int, str] = {}
        # See cached_head(): id(fields) -> (fields, status, length, status-line, field lines Server..Content-Length).
        self._heads: Dict[int, Tuple[FrozenFields, int, int, bytes, bytes]] = {}
        self._date_second = -1.0  # the second (time.time(), whole) _date_line was made for
        self._date_line = b""
        # See persistence_tail(): (response number, how it persists) -> the end of the head.
        self._tails: Dict[Tuple[int, Optional[bool]], bytes] = {}
        self._tails_after_client_id: Dict[Tuple[int, Optional[bool]], bytes] = {}
        self.request_id_prefix = new_request_id_prefix()
        #: Each state's time limit in seconds (TIMEOUT_FIELDS read from ``config``), or None.
        self.timeouts: Dict[ConnState, Optional[float]] = {
            state: None if field is None else getattr(config, field) for state, field in TIMEOUT_FIELDS.items()
        }

    def keep_alive_value(self, responses: int) -> str:
        """The Keep-Alive field value (RFC 9112 §9.3) for the ``responses``-th response.

        ``max`` counts the responses left, Apache's way. Each string is formatted once
        (the cache holds at most one per response number up to 1024).
        """
        value = self._keep_alive_values.get(responses)
        if value is None:
            config = self.config
            value = "timeout=%d, max=%d" % (config.keepalive_timeout_s, config.keepalive_max_requests - responses + 1)
            if responses <= 1024:
                self._keep_alive_values[responses] = value
        return value

    def date_line(self) -> bytes:
        """``Date: <IMF-fixdate>\\r\\n`` for now (RFC 9110 §6.6.1), made once a second."""
        now = time.time()
        if not self._date_second <= now < self._date_second + 1.0:
            second = float(int(now))
            self._date_line = ("Date: %s\r\n" % http_date(second)).encode("latin-1")
            self._date_second = second
        return self._date_line

    def persistence_tail(self, keep_alive: bool, head: Optional[RequestHead], responses: int) -> bytes:
        """How the head of a connection's ``responses``-th response ends: the number that
        ends its X-Request-ID field line, the persistence fields and the empty line.

        The request id's field line is begun by the connection (``X-Request-ID:
        <prefix>-<id>-``, see :func:`id_line_start`) and ended here by the request's
        number on the connection and CRLF: the number changes with every response, and
        so do the persistence fields (``max`` counts down), so the two are made together,
        once per response number, and the hot path joins no extra piece. When the
        request brought its own id (``head.request_id``), its line is whole already, and
        the tail begins with the persistence fields.

        The persistence fields (RFC 9112 §9.3): ``Connection: close``, or ``Keep-Alive:
        timeout=…, max=…`` after ``Connection: keep-alive`` when the request ``head``
        needs it (HTTP/1.0) or asked (a 1.1 ``Connection: keep-alive``). Each tail is
        made once per response number (up to 1024) and kind.
        """
        say: Optional[bool] = None  # None: Connection: close
        if keep_alive:
            say = head is not None and (head.http_version == "1.0" or "keep-alive" in head.connection_options)
        own_id = head is None or head.request_id is None
        tails = self._tails if own_id else self._tails_after_client_id
        key = (responses, say)
        tail = tails.get(key)
        if tail is None:
            if say is None:
                tail = _CLOSE_TAIL
            else:
                tail = (
                    "%sKeep-Alive: %s\r\n\r\n"
                    % ("Connection: keep-alive\r\n" if say else "", self.keep_alive_value(responses))
                ).encode("latin-1")
            if own_id:
                tail = b"%d\r\n%s" % (responses, tail)
            if responses <= 1024:
                tails[key] = tail
        return tail

    def cached_head(
        self,
        status: int,
        fields: FrozenFields,
        length: int,
        keep_alive: bool,
        head: Optional[RequestHead],
        responses: int,
        id_start: bytes,
    ) -> bytes:
        """The head :meth:`Connection._head` makes, from parts made once: for FrozenFields with a Content-Length.

        The status-line and the field lines from Server to Content-Length (``length``
        bytes) are serialized (and checked) once per fields, status and length; the
        Date line once per second (:meth:`date_line`); the X-Request-ID line's start is
        the connection's ``id_start``, made once per connection; its end, the
        persistence fields and the empty line once per response number
        (:meth:`persistence_tail`). The bytes are what the general path makes, from the
        same pieces; the common cases are looked up here without a call.
        """
        entry = self._heads.get(id(fields))
        if entry is None or entry[0] is not fields or entry[1] != status or entry[2] != length:
            # Holding the fields keeps their id from being reused while the entry exists.
            if len(self._heads) >= _HEAD_CACHE_ENTRIES:
                self._heads.clear()  # a full cache means many files: start again, cheaply
            middle = field_lines(
                [("Server", SERVER_NAME), *fields, *self.config.added_fields, ("Content-Length", str(length))]
            )
            entry = self._heads[id(fields)] = (fields, status, length, status_line(status), middle)
        second = self._date_second
        date_line = self._date_line if second <= time.time() < second + 1.0 else self.date_line()
        if (
            keep_alive
            and head is not None
            and head.http_version == "1.1"
            and not head.connection_options
            and head[_REQUEST_ID] is None  # head.request_id, a tuple index away (see _REQUEST_ID)
        ):  # an HTTP/1.1 client that keeps alive without saying so, with no id of its own: the common case
            tail = self._tails.get((responses, False)) or self.persistence_tail(True, head, responses)
        elif not keep_alive and (head is None or head[_REQUEST_ID] is None):  # closing: inline too
            tail = self._tails.get((responses, None)) or self.persistence_tail(False, head, responses)
        else:
            tail = self.persistence_tail(keep_alive, head, responses)
            id_start = id_line_start(id_start, head)
        return b"".join((entry[3], date_line, entry[4], id_start, tail))


def id_line_start(own: bytes, head: Optional[RequestHead]) -> bytes:
    """How the X-Request-ID field line of a response to ``head`` starts: ``own`` (the
    connection's start; :meth:`Collaborators.persistence_tail` ends it), or the whole
    line with the client's id when it sent one (RFC 9110 knows no such field; proxies
    and tracing tools expect their id back)."""
    if head is None or head.request_id is None:
        return own
    return _ID_FIELD + head.request_id.encode("ascii") + b"\r\n"


class Connection:
    """The HTTP exchange of one client, driven through :class:`ConnState`; a :class:`~reactor.sessions.Session`."""

    __slots__ = (
        "ctx",
        "transport",
        "id",
        "tracer",
        "state",
        "parser",
        "request",
        "responses",
        "keep_alive",
        "timer",
        "_batching",
        "_id_base",
        "_id_start",
    )

    #: What the status page counts this session as (:attr:`reactor.sessions.Session.label`).
    label = "http"

    def __init__(self, ctx: Collaborators, transport: Transport, conn_id: int) -> None:
        config = ctx.config
        self.ctx = ctx
        self.transport = transport
        self.id = conn_id
        self.tracer = ctx.tracer
        self.state = _HANDSHAKING
        self.parser = RequestParser(
            max_request_line_bytes=config.max_request_line_bytes,
            max_header_section_bytes=config.max_header_section_bytes,
            max_field_lines=config.max_field_lines,
            max_body_bytes=config.max_body_bytes,
        )
        self.request: Optional[Request] = None
        self.responses = 0  # requests (and so responses) begun on this connection; the current one's number
        self.keep_alive = True  # whether the current response leaves the connection open
        #: The deadline of the current state, and the one timer that enforces it.
        self.timer = Deadline(ctx.loop, self._on_timer, self._trace_timer if self.tracer else None)
        self._batching = False  # inside _run: responses to pipelined requests may leave in one send
        #: The request ids this connection makes: ``<prefix>-<id>-`` and the request's number.
        self._id_base = "%s-%d-" % (ctx.request_id_prefix, conn_id)
        self._id_start = _ID_FIELD + self._id_base.encode("ascii")  # the X-Request-ID line up to the number

    def __repr__(self) -> str:
        return "<Connection #%d %s %s>" % (self.id, self.client, self.state.value)

    # What handlers (and the server's table) may use.

    @property
    def client(self) -> str:
        """The peer's address, for the log and loopback checks."""
        return self.transport.peer

    @property
    def peer(self) -> str:
        """The peer's address (:attr:`reactor.sessions.Session.peer`)."""
        return self.transport.peer

    def phase(self) -> str:
        """The state's name, for the status page."""
        return self.state.value

    @property
    def request_id(self) -> str:
        """The id of the request in progress, from its head to its access-log line.

        Sent back in ``X-Request-ID`` and written in the access log: the client's own when
        it sent a sane one (:attr:`reactor.events.RequestHead.request_id`), else
        ``<prefix>-<connection id>-<request number>`` (e.g. ``k7f3q9x2-15-3``): a random
        prefix per server (so per worker process), then two counters, so an id costs no
        random bytes and no lock.
        """
        request = self.request
        head = request.head if request is not None else None
        if head is not None and head.request_id is not None:
            return head.request_id
        return self._id_base + str(self.responses)

    @property
    def local_host(self) -> str:
        """The address this connection arrived on (``getsockname``)."""
        return self.transport.local_host

    @property
    def secure(self) -> bool:
        """True when the transport encrypts (HTTPS)."""
        return self.transport.secure

    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def pool(self) -> Pool:
        return self.ctx.pool

    @property
    def loop(self) -> EventLoop:
        return self.ctx.loop

    # -- the state machine ---------------------------------------------------------------

    def start(self) -> None:
        """Begin in HANDSHAKING; the transport says when bytes can flow."""
        if self.tracer:
            self.tracer.accepted(self, self.client)
        self.transport.start(self)
        if self.state is _HANDSHAKING:  # not ready at once: a TLS handshake has begun
            self._arm(self.ctx.config.tls_handshake_timeout_s)
            self._settle_timer()

    def set_state(self, new: ConnState) -> None:
        """Move to ``new``: check :data:`NEXT` and set the new state's deadline.

        The limits are :data:`TIMEOUT_FIELDS`. CLOSED closes the transport and leaves the
        table; UPGRADED only stops the timer (the transport has a new owner). Raises
        InvalidTransition if the move is not allowed.
        """
        old = self.state
        if new not in NEXT[old]:
            raise InvalidTransition("%r: %s -> %s" % (self, old.value, new.value))
        self.state = new
        if self.tracer:
            self.tracer.state(self, old, new)
        timeout = self.ctx.timeouts[new]
        if timeout is not None:
            self._arm(timeout)
            if new is _READING_BODY:
                self.request.body_started = self.ctx.loop.now  # type: ignore[union-attr]
        elif new in _ENDED:
            self._teardown(new)
        else:
            self.timer.when = None  # RESPONDING, WRITING: no limit of their own

    def _run(self) -> None:
        """Take every step possible until the connection must wait; then settle the interest.

        Responses made meanwhile to pipelined requests are sent together at the end
        (see :meth:`respond`): one send for a batch instead of one per response. A call
        from inside another (through a handler) leaves the sending to the outer one.
        """
        outer = self._batching
        self._batching = True
        try:
            parser = self.parser
            while True:
                state = self.state
                try:
                    if state is _WRITING:
                        if self.transport.writing():
                            if self.timer.when is None:
                                self._arm(self.ctx.config.send_timeout_s)  # the client must read first
                            break
                        self._response_done()
                        continue
                    if state not in _PARSING:
                        break  # HANDSHAKING, IDLE, RESPONDING, CLOSING, CLOSED, UPGRADED wait for something outside
                    try:
                        event = parser.next_event()
                    except ProtocolError as exc:
                        self._fail(exc)
                        continue
                    if self.tracer:
                        self.tracer.parser(self, event)
                    if event is NEED_DATA or event is PAUSED:
                        break
                    kind = type(event)
                    if kind is RequestHead:
                        self._on_head(event)  # type: ignore[arg-type]
                    elif kind is BodyData:
                        data = event.data  # type: ignore[union-attr]
                        self._body_progress(len(data))
                        body = self.request.body  # type: ignore[union-attr]
                        if body is not None:
                            body += data
                    elif kind is RequestEnd:
                        self._on_request_end()
                    else:  # EndOfStream between requests
                        self.close()
                except Exception as exc:  # a bug in a handler must cost one connection, not the loop
                    self._internal_error(exc)
            if self.state not in _ENDED:
                self.transport.set_reading(self.state in _WANTS_INPUT)
                timer = self.timer
                when = timer.when
                if when is not None and (timer.handle is None or timer.handle.when > when):
                    self._settle_timer()  # the timer would fire too late (or there is none): move it
        finally:
            if not outer:
                self._batching = False
                self.transport.flush()

    # -- what the transport reports ------------------------------------------------------

    def connection_made(self) -> None:
        """The transport is ready (at once for TCP, after the TLS handshake)."""
        if self.state is _HANDSHAKING:
            self.set_state(_IDLE)
            if self.ctx.stopping:
                self._grace()
            self._run()

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is _CLOSING:
            return  # lingering close: discard
        if state is _IDLE:
            self.set_state(_READING_HEADERS)
        self.parser.feed(data)
        self._run()

    def eof_received(self) -> None:
        state = self.state
        if state is _IDLE or state is _CLOSING or state is _HANDSHAKING:
            self.close()
            return
        self.parser.feed(b"")
        self._run()

    def write_drained(self) -> None:
        self._run()

    def connection_lost(self, exc: BaseException) -> None:
        log_lost(log, self.id, exc)
        if self.tracer:
            self.tracer.lost(self, exc)
        self.abort()

    # -- timeouts -------------------------------------------------------------------

    def _arm(self, delay_s: float) -> None:
        """Set the deadline ``delay_s`` seconds from now; the timer follows when the pass ends."""
        self.timer.when = self.ctx.loop.now + delay_s  # Deadline.arm, without the call (3 a request)
        if self.tracer:
            timer = self.timer
            self.tracer.timer_armed(self, self.state.value, delay_s, timer.fires_at(), timer.when)

    def _settle_timer(self) -> None:
        """Make the timer fire by the deadline (see :meth:`reactor.deadline.Deadline.settle`)."""
        if self.timer.settle() and self.tracer:
            self.tracer.timer_set(self, self.timer.fires_at())

    def _trace_timer(self, deadline: Optional[float]) -> None:
        assert self.tracer is not None
        self.tracer.timer_fired(self, self.state.value, deadline)

    def _body_progress(self, size: int) -> None:
        """Body bytes arrived: push the deadline back, but no further than the minimum rate allows.

        Like Apache's ``mod_reqtimeout`` (``MinRate``): after ``body_rate_grace_s``, each
        ``min_body_rate`` bytes buy one more second, so a body that trickles is cut off
        while a slow but steady upload never is. ``body_timeout_s`` still bounds a pause.
        """
        request = self.request
        assert request is not None
        config = self.ctx.config
        now = self.ctx.loop.now
        request.body_received += size
        deadline = now + config.body_timeout_s
        rate = config.min_body_rate
        if rate:
            by_rate = request.body_started + config.body_rate_grace_s + request.body_received / rate
            if by_rate < deadline:
                deadline = by_rate
        self.timer.when = deadline  # the timer follows when the pass ends (the rate may bring it forward)

    def _on_timer(self) -> None:
        """The deadline of the current state has passed (:class:`~reactor.deadline.Deadline` calls it)."""
        state = self.state
        if state is _CLOSED:
            return
        if state is _WRITING:  # the send timeout counts from the last progress, while output waits for the client
            send_timeout_s = self.ctx.config.send_timeout_s
            progressed = self.transport.progressed_at + send_timeout_s
            now = self.ctx.loop.now
            if now < progressed or not self.transport.waiting_for_peer():  # not: a stream's next block is being made
                self.timer.when = progressed if now < progressed else now + send_timeout_s
                self._settle_timer()
                return
        try:
            if state is _IDLE:
                log.debug("#%d keep-alive timeout", self.id)
                self.close()
            elif state is _HANDSHAKING:
                log.debug("#%d %s: TLS handshake timed out", self.id, self.client)
                self.close()
            elif state is _READING_HEADERS:
                self._fail(HTTPError(408, "timed out waiting for the header section", close=True))
            elif state is _READING_BODY:
                self._fail(HTTPError(408, "the message body arrived too slowly", close=True))
            elif state is _WRITING:
                log.info("#%d %s stopped reading the response; closing", self.id, self.client)
                self.abort()
            else:  # CLOSING
                self.close()
        except Exception as exc:
            self._internal_error(exc)
        self._run()

    # -- requests ----------------------------------------------------------------------

    def _on_head(self, head: RequestHead) -> None:
        self.responses += 1  # the request's number; its response is the same number
        request = self.request = Request(head, self.parser.request_line)
        if not (head.chunked or head.content_length):  # has_body, without the property's call
            return  # RequestEnd follows at once; the request is routed there
        self.set_state(_READING_BODY)
        refusal = self._route(request)
        if refusal is not None:
            # Refuse before reading the body (also the answer to Expect: 100-continue),
            # then close: the unread body cannot be told apart from a next request.
            refusal.close = True
            self.respond(refusal)
        elif head.expect_continue:
            self.ctx.stats.responses[1] += 1
            self.transport.write(b"".join((_CONTINUE, *self._id_line(head), b"\r\n")))

    def _route(self, request: Request) -> Optional[Response]:
        try:
            return self.ctx.app.route(self, request)
        except HTTPError as exc:
            return Response.from_error(exc)

    def _on_request_end(self) -> None:
        """The message is complete (its body framed and read): answer it.

        A request with a body was routed when its head arrived; one without is routed
        now. Success answers are only ever made here, after the framing is known to be
        good, so a malformed body is a 400 whatever the cache holds.
        """
        request = self.request
        assert request is not None and request.head is not None
        request.complete = True
        try:
            # With a body, the request was routed at its head (see _on_head).
            response = self.ctx.app.route(self, request) if request.route is None else None
            if response is None:
                route = request.route
                assert route is not None, "route() must pick a handler or refuse"
                response = route(self, request)
        except HTTPError as exc:
            response = Response.from_error(exc)
        if response is not None:
            self.respond(response)

    def run_in_pool(
        self,
        job: Callable[..., Any],
        args: Tuple[Any, ...],
        on_result: Callable[[Any], Optional[Response]],
        pool: Optional[Pool] = None,
    ) -> None:
        """Make the response on a pool: run ``job(*args)``, answer ``on_result(result)``.

        ``pool`` is the disk pool unless given (an application's job names
        ``ctx.app_pool``). Moves to RESPONDING until the result is back. ``on_result``
        runs on the loop thread and returns the Response, or None after it called
        :meth:`respond_when`. An exception from the job or ``on_result`` is answered as
        :meth:`reactor.response.Response.for_exception` says (HTTPError; 503 for EMFILE,
        ENFILE, ENOMEM), else it is a bug: a 500, its traceback logged. A saturated pool
        is a 503 with Retry-After. A result that comes back after the connection closed
        or moved on is dropped (``on_result`` is not called) and anything it holds is
        closed (:func:`discard_result`).
        """
        request = self.request
        self.set_state(_RESPONDING)
        if pool is None:
            pool = self.ctx.pool

        def done(future: "Outcome[Any]") -> None:
            stale = not self._awaits(request)
            if self.tracer:
                self.tracer.pool_result(self, job, future, stale)
            if stale:
                discard_result(future)
                return
            try:
                try:
                    response = on_result(future.result())
                except Exception as exc:
                    response = Response.for_exception(exc)
                    if response is None:
                        raise
                if response is not None:  # None: respond_when() answers later
                    self.respond(response)
            except Exception as exc:  # from the job, on_result or respond: a bug
                self._internal_error(exc)
            self._run()

        if self.tracer:
            self.tracer.pool_submit(self, job, pool)
        if not pool.submit(job, args, done):
            self.respond(Response.from_error(busy()))

    def _awaits(self, request: Optional[Request]) -> bool:
        """True while the connection is RESPONDING for ``request``: an answer for it is not stale."""
        return self.state is _RESPONDING and self.request is request

    def respond_when(self, wait: Callable[[Callable[[Response], None]], None]) -> None:
        """Wait in RESPONDING for a response that comes from elsewhere than the pool bridge.

        ``wait(answer)`` is called at once and arranges for ``answer(response)`` to be
        called once, on the loop thread, now or later (a request that waits for a
        compression another request started). An answer that comes after the client left
        is dropped, and its file body closed.
        """
        request = self.request
        if self.state is not _RESPONDING:
            self.set_state(_RESPONDING)
        waiting = False  # True once wait() has returned: then answer() must advance the machine

        def answer(response: Response) -> None:
            if not self._awaits(request):
                response.release()
                return
            try:
                self.respond(response)
            except Exception as exc:  # a bug
                self._internal_error(exc)
            if waiting:
                self._run()

        wait(answer)
        waiting = True

    # -- responding: framing, persistence, head, send ------------------------------------

    def respond(self, response: Response) -> None:
        """Send ``response`` to the current request. Loop thread only, once per request.

        Four steps: the framing (:func:`reactor.framing.response_framing`: Content-Length,
        chunked, close-delimited or no body; a stream is held to a Content-Length its
        fields state), the persistence (:func:`reactor.framing.persists`), the head
        (:meth:`Collaborators.cached_head` or :meth:`_head`: Date, Server, the framing
        field, ``Connection: close`` or ``Keep-Alive: timeout=…, max=…``), and
        :meth:`_send`. A response to HEAD, and a 1xx, 204 or 304, never carries content
        (RFC 9110 §9.3.2, §6.4.1), errors included. Raises ValueError for a response no
        handler may give (a 1xx other than a 101 with an upgrade, a bad Content-Length or
        field value).
        """
        if self.state is _CLOSED:
            response.release()
            return
        request = self.request
        if request is None:  # an error before any request-line arrived: it counts as a request
            self.responses += 1
            request = self.request = Request(None, self.parser.request_line)
        if response.upgrade is not None or response.status < 200:
            response = self._switch(request, response)
        status = response.status
        head = request.head
        # 1. Framing.
        if response.stream is None:
            file = response.file
            length: Optional[int] = file.remaining if file is not None else len(response.body)
        else:
            length = response.stated_length()
        if head is not None:
            framing = response_framing(head.method == "HEAD", head.http_version, status, length)
        else:  # before a head was parsed (a limit, a header timeout), the parser may still know it is HEAD
            framing = response_framing(self.parser.head_request, None, status, length)
        # 2. Persistence.
        ctx = self.ctx
        keep_alive = self.keep_alive = persists(
            framing,
            request.complete,
            head is not None and head.keep_alive,
            response.close,
            self.responses,
            ctx.config.keepalive_max_requests,
            ctx.stopping,
        )
        if self.tracer:
            self.tracer.respond(self, response, keep_alive)
        # 3. The head: made once for a hot file's FrozenFields, else serialized now.
        fields = response.fields
        if framing[0] is _CONTENT_LENGTH and type(fields) is FrozenFields:
            data = ctx.cached_head(
                status,
                fields,
                length,  # type: ignore[arg-type]
                keep_alive,
                head,
                self.responses,
                self._id_start,
            )
        else:
            data = self._head(status, fields, framing, length, keep_alive, head)
        # 4. Hand it to the transport.
        self._send(request, response, framing, length, data)

    def _switch(self, request: Request, response: Response) -> Response:
        """Check a protocol switch: a 101 with an upgrade, to a complete GET without a body.

        While the server is stopping the switch is refused (503), as the new protocol
        would be asked to go away at once. Raises ValueError for any other 1xx, a 101
        without an upgrade, or an upgrade on another status or request (a handler's bug).
        """
        head = request.head
        if response.status != 101 or response.upgrade is None:
            raise ValueError(
                "a handler answered %d %s an upgrade" % (response.status, "with" if response.upgrade else "without")
            )
        if head is None or head.method != "GET" or not request.complete or head.chunked or head.content_length:
            raise ValueError("a protocol switch answers a complete GET without a body only")
        if self.ctx.stopping:
            return Response.from_error(busy("server shutting down"))
        request.upgrade = response.upgrade
        response.close = True  # the HTTP exchange does not go on after it (and a 101 is never held back)
        return response

    def _head(
        self,
        status: int,
        fields: Sequence[Tuple[str, str]],
        framing: Framing,
        length: Optional[int],
        keep_alive: bool,
        head: Optional[RequestHead],
    ) -> bytes:
        """Serialize a head: status-line, Date, Server, ``fields``, the framing field,
        X-Request-ID, persistence.

        A 1xx carries no persistence fields (what follows it decides the connection's
        future). The pieces are those :meth:`Collaborators.cached_head` joins.
        """
        ctx = self.ctx
        kind = framing[0]
        if kind is _CONTENT_LENGTH:
            framing_fields: Tuple[Tuple[str, str], ...] = (("Content-Length", str(length)),)
        elif kind is BodyFraming.CHUNKED:
            framing_fields = (("Transfer-Encoding", "chunked"),)
        else:
            framing_fields = ()
        middle = field_lines([("Server", SERVER_NAME), *fields, *ctx.config.added_fields, *framing_fields])
        if status < 200:
            id_line = b"".join(self._id_line(head))
            tail = b"\r\n"
        else:
            id_line = id_line_start(self._id_start, head)
            tail = ctx.persistence_tail(keep_alive, head, self.responses)
        return b"".join((status_line(status), ctx.date_line(), middle, id_line, tail))

    def _id_line(self, head: Optional[RequestHead]) -> Tuple[bytes, bytes]:
        """The current request's X-Request-ID field line, whole, in two pieces (start, end)."""
        start = id_line_start(self._id_start, head)
        return (start, b"%d\r\n" % self.responses) if start is self._id_start else (start, b"")

    def _send(self, request: Request, response: Response, framing: Framing, length: Optional[int], data: bytes) -> None:
        """Move to WRITING and hand the head and body to the transport.

        A small body leaves in one send with the head. Behind a pipelined request the
        bytes may wait for the next response (``write(more=True)``), never a 101's.
        """
        body = response.body
        file = response.file
        stream = response.stream
        if not framing[1]:  # HEAD, 1xx, 204, 304: the head is the whole message
            body = b""
            response.release()
            file = stream = None
        if body:
            request.body_bytes_sent = len(body)
            if len(body) <= _JOIN_BODY_BYTES:
                data += body  # one send for head and small body: no Nagle stall, one syscall
                body = b""
        if self.state is not _WRITING:
            self.set_state(_WRITING)
        request.status = response.status
        transport = self.transport
        # Another request already waits in the buffer and this one keeps the connection:
        # let this response leave with the next one (_run sends what is left at its end).
        transport.write(data, self._batching and self.keep_alive and not body and bool(self.parser.buffered_bytes()))
        if body:
            transport.write(body)
        if file is not None:
            request.body_bytes_sent += file.remaining
            transport.write_file(file)
        if stream is not None:
            framed = request.stream = FramedStream(stream, framing is CHUNKED, length)
            transport.write_stream(framed)

    def _response_done(self) -> None:
        """The whole response is in the kernel: log it, then keep alive, close, or hand over."""
        request = self.request
        linger = True
        if request is not None:
            self._log_access(request)
            if request.upgrade is not None:
                self._hand_over(request.upgrade)
                return
            linger = not request.complete
        self.request = None
        if not self.keep_alive or self.ctx.stopping:  # a graceful stop: no next request
            self._close_after_response(linger or bool(self.parser.buffered_bytes()))
            return
        self.set_state(_READING_HEADERS if self.parser.start_next_cycle() else _IDLE)

    def _hand_over(self, upgrade: Upgrade) -> None:
        """The 101 is in the kernel: give the transport, and the bytes behind the request, to the new protocol.

        Its session takes this connection's place in the table; the transport tells it
        ``connection_made()`` on the next pass.
        """
        self.request = None
        session = upgrade(self.transport, self.parser.detach())
        self.set_state(_UPGRADED)
        self.ctx.sessions.replace(self, session)
        self.transport.switch_protocol(session)

    def _close_after_response(self, linger: bool) -> None:
        """Close after a final response; linger if the client may still be sending.

        Closing a socket with unread input makes the kernel send RST, which can destroy
        the response in the client's receive buffer. So when input may follow (an unread
        body, an error mid-request), shut the write side and discard input until EOF or
        the linger timeout, as nginx's lingering_close does.
        """
        if not linger:
            self.close()
            return
        self.transport.shutdown_write()
        self.set_state(_CLOSING)

    # -- errors and closing -----------------------------------------------------------

    def _fail(self, exc: HTTPError) -> None:
        """Answer a request that cannot go on (bad syntax, a limit, a timeout) and close."""
        if self.state is _CLOSED:
            return
        log.debug("#%d %s", self.id, exc)
        if self.tracer:
            self.tracer.fail(self, exc)
        if self.state is _WRITING or self.state is _RESPONDING:
            self.abort()  # a response is already under way; nothing sensible can follow
            return
        response = Response.from_error(exc)
        response.close = True
        self.respond(response)

    def _internal_error(self, exc: BaseException) -> None:
        """Log a bug with its traceback; answer 500 if nothing was sent, else drop the connection.

        Only this connection pays: if answering fails too, it is closed at once.
        """
        request = self.request
        log.error("#%d error handling %r", self.id, request.request_line if request else None, exc_info=exc)
        if self.state in _ENDED:
            return
        try:
            if self.state is _WRITING:  # respond() ran: bytes may be out already
                self.abort()
                return
            self.respond(Response.error(500, "internal server error", close=True))
        except Exception as again:
            log.error("#%d cannot answer 500 (%r); closing the connection", self.id, again)
            self.close()

    def go_away(self) -> None:
        """The server is stopping (``ctx.stopping`` is set): end this exchange when it is between requests.

        An idle connection closes now, unless a request is already arriving (it is served,
        with ``Connection: close``, as is any request under way); one accepted but still
        silent gets :data:`FRESH_GRACE_S` to send its first request. Others finish their
        response, which closes (:func:`reactor.framing.persists` sees the stop).
        """
        if self.state is not _IDLE or self.transport.input_waiting():
            return
        if self.responses:
            self.close()
        else:
            self._grace()

    def _grace(self) -> None:
        """Stopping: an idle connection that never had a request waits at most FRESH_GRACE_S for one."""
        timer = self.timer
        grace = self.ctx.loop.now + FRESH_GRACE_S
        if timer.when is None or timer.when > grace:
            timer.when = grace
            self._settle_timer()

    def abort(self) -> None:
        """Close at once, logging the unfinished request if a response to it had begun."""
        request = self.request
        if request is not None and self.state is _WRITING:
            self._log_access(request)
        self.request = None
        self.close()

    def close(self) -> None:
        """Close the transport and leave the session table. Idempotent; a no-op once UPGRADED."""
        if self.state not in _ENDED:
            self.set_state(_CLOSED)

    def _teardown(self, state: ConnState) -> None:
        self.timer.close()
        if state is _UPGRADED:
            return  # the transport and the table entry are the new protocol's now
        self.transport.close()
        self.transport.protocol = None  # no cycle: both go as soon as the table lets go of us
        self.ctx.sessions.discard(self)

    def _log_access(self, request: Request) -> None:
        self.ctx.stats.responses[request.status // 100] += 1
        access = logmod.access_log
        if not access.enabled:
            return
        stream = request.stream
        transport = self.transport
        head = request.head
        request_id = None if head is None else head.request_id
        if request_id is None:  # the connection's own (see request_id), without the property's call
            request_id = self._id_base + str(self.responses)
        access.write(
            (  # a reactor.log.AccessRecord, as a plain tuple
                transport.peer,
                transport.peer_port,
                request.started,
                time.time(),
                request.request_line,
                head,
                request.status,
                request.body_bytes_sent if stream is None else request.body_bytes_sent + stream.body_bytes,
                request.body_received,
                transport.tls_version if transport.secure else None,
                request_id,
            )
        )


def new_request_id_prefix() -> str:
    """Eight random characters (40 bits, base32, lower-case) that begin a server's request ids.

    Random rather than a process id, so ids stay distinct across restarts and machines.
    """
    return base64.b32encode(os.urandom(5)).decode("ascii").lower()


def standalone_response(response: Response, head_only: bool = False, request_id: Optional[str] = None) -> bytes:
    """A whole response with ``Connection: close``, for a socket no Connection serves (a refusal at accept).

    ``response`` has a bytes body; ``head_only`` leaves it out (the request was HEAD,
    RFC 9110 §9.3.2); ``request_id`` goes in an X-Request-ID field. Raises ValueError
    like :func:`reactor.serializer.response_head`.
    """
    body = response.body
    fields = [("Date", http_date()), ("Server", SERVER_NAME), *response.fields]
    if request_id is not None:
        fields.append(("X-Request-ID", request_id))
    fields += [("Content-Length", str(len(body))), ("Connection", "close")]
    head = response_head(response.status, fields)
    return head if head_only else head + body


def discard_result(future: "Outcome[object]") -> None:
    """Release what a pool job opened when its connection is gone (a file, a response, a stream).

    A response is released (:meth:`reactor.response.Response.release`) and a stream is
    closed on its own pool (:func:`reactor.response.close_stream`), as if they had been sent.
    """
    if future.cancelled() or future.exception() is not None:
        return
    result = future.result()
    if isinstance(result, Response):
        result.release()
    elif getattr(result, "pool", None) is not None:
        close_stream(result)  # type: ignore[arg-type]
    else:
        close = getattr(result, "close", None)
        if close is not None:
            close()
