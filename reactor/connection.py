"""One HTTP/1.1 exchange over a transport, as an explicit state machine.

Theory of operation
-------------------
A :class:`Connection` is the HTTP side of one client: a sans-I/O
:class:`~reactor.parser.RequestParser`, at most one :class:`Request` in progress, and
the state it is in (:class:`ConnState`). The bytes move through a
:class:`~reactor.transport.Transport` beneath it (plain TCP or TLS; the connection
cannot tell which), and everything else it needs comes in its :class:`Collaborators`:
the config, the loop, the worker pool, the counters, the tracer, the application that
routes requests, and a callback for when it closes. It never sees the server.

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

Timeouts use one timer per connection and a ``deadline`` attribute. A change of state
only sets the deadline (a plain assignment, from the loop's time of the pass); the
timer is settled once, when the pass ends and the connection waits, and is moved only
if it would fire too late. A timer that fires early re-arms itself at the deadline.
So a keep-alive request that arrives whole and is answered in one pass touches the
timer heap not at all, and extending the deadline on every body read is O(1).
"""

from __future__ import annotations

import concurrent.futures
import enum
import errno
import logging
import time
import typing
from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple

from reactor import log as logmod
from reactor.config import Config
from reactor.errors import HTTPError, ProtocolError
from reactor.events import NEED_DATA, PAUSED, BodyData, RequestEnd, RequestHead
from reactor.loop import EventLoop, TimerHandle
from reactor.parser import RequestParser
from reactor.response import ChunkedStream, Response
from reactor.serializer import http_date, response_head, status_line
from reactor.stats import Stats
from reactor.transport import Transport, is_quiet

log = logging.getLogger("reactor.connection")

SERVER_NAME = "reactor"
_JOIN_BODY_BYTES = 64 * 1024  # bodies up to this size go out in one send with the head
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_CONTENT_LENGTH = frozenset({204, 304})
_HEAD_CACHE_ENTRIES = 256  # serialized heads kept by Collaborators.cached_head (one per hot file variant)
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})  # back-pressure, not a bug
_BUSY = "server busy; try again shortly"


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
    ConnState.WRITING: frozenset({ConnState.IDLE, ConnState.READING_HEADERS, ConnState.CLOSING, ConnState.CLOSED}),
    ConnState.CLOSING: frozenset({ConnState.CLOSED}),
    ConnState.CLOSED: frozenset(),
}

_HANDSHAKING = ConnState.HANDSHAKING
_IDLE = ConnState.IDLE
_READING_HEADERS = ConnState.READING_HEADERS
_READING_BODY = ConnState.READING_BODY
_RESPONDING = ConnState.RESPONDING
_WRITING = ConnState.WRITING
_CLOSING = ConnState.CLOSING
_CLOSED = ConnState.CLOSED
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
}
_PARSING = frozenset({_READING_HEADERS, _READING_BODY})
_WANTS_INPUT = frozenset({_IDLE, _READING_HEADERS, _READING_BODY, _CLOSING})


class InvalidTransition(RuntimeError):
    """A state change that :data:`NEXT` does not allow (a bug in the server)."""


Handler = Callable[["Connection", "Request"], Optional[Response]]


class Request:
    """One request and what is known of its response, for handlers and the access log.

    ``route`` is the handler the application picked; it answers once the request is
    complete. ``body`` is None unless the route asked for the message body
    (:meth:`want_body`); then it collects the decoded bytes (the parser bounds it by
    ``max_body_bytes``). ``complete`` turns true at the end of the message; a response
    sent before that (an early refusal) closes the connection.
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
    )

    def __init__(self, head: Optional[RequestHead], request_line: Optional[str]) -> None:
        self.head = head
        self.request_line = request_line
        self.body: Optional[bytearray] = None
        self.started = time.time()
        self.status = 0
        self.body_bytes_sent = 0
        self.route: Optional[Handler] = None
        self.complete = False
        self.body_started = 0.0  # loop time of the first body byte (for the minimum rate)
        self.body_received = 0  # bytes of the message body received so far (as framed)

    def want_body(self) -> None:
        """Ask for the message body to be collected into ``body``."""
        if self.body is None:
            self.body = bytearray()


class Application(typing.Protocol):
    """What the connection asks of the application (:class:`reactor.handlers.Application`)."""

    def route(self, conn: "Connection", request: Request) -> Optional[Response]:
        """Pick ``request.route``, or return a refusal (4xx/5xx) that needs no message body.

        Called once the head is known. Raises HTTPError for a refusal too.
        """
        ...


class Pool(typing.Protocol):
    """The part of :class:`reactor.workers.WorkerPool` a connection uses."""

    def submit(self, job: Callable[..., Any], args: Tuple[Any, ...], callback: Callable[[Any], None]) -> bool: ...


class Collaborators:
    """What every connection of one server is handed: never the server itself.

    ``closed(conn)`` is called once when a connection reaches CLOSED. ``stopping`` is set
    by whoever runs a graceful stop; responses then carry ``Connection: close``.
    """

    __slots__ = (
        "config",
        "loop",
        "pool",
        "stats",
        "tracer",
        "app",
        "closed",
        "stopping",
        "_keep_alive_values",
        "_heads",
        "_date",
        "_date_line",
        "_keep_alive_tails",
        "timeouts",
    )

    def __init__(
        self,
        config: Config,
        loop: EventLoop,
        pool: Any,
        stats: Stats,
        tracer: Any,
        app: Application,
        closed: Callable[["Connection"], None],
    ) -> None:
        self.config = config
        self.loop = loop
        self.pool = pool
        self.stats = stats
        self.tracer = tracer  # None unless --trace: then each trace point below writes a line
        self.app = app
        self.closed = closed
        self.stopping = False
        self._keep_alive_values: Dict[int, str] = {}
        # See cached_head(): id(fields) -> (fields, status, length, status-line, field lines Server..Content-Length).
        self._heads: Dict[int, Tuple[Tuple[Tuple[str, str], ...], int, int, bytes, bytes]] = {}
        self._date = ""  # the http_date() that _date_line was made from
        self._date_line = b""
        self._keep_alive_tails: Dict[Tuple[int, bool], bytes] = {}
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

    def cached_head(
        self,
        status: int,
        fields: Tuple[Tuple[str, str], ...],
        length: int,
        keep_alive: bool,
        say_keep_alive: bool,
        responses: int,
    ) -> bytes:
        """The response head :meth:`Connection.respond` would build, from parts made once.

        For a response whose ``fields`` are a tuple (a hot file's fields are made once
        per file version, see :mod:`reactor.handlers.files`) and whose body has a
        Content-Length of ``length`` bytes: the status-line and the field lines from
        Server to Content-Length are serialized (and checked) once per tuple, the Date
        line once per second and the persistence fields once per response number. The
        bytes are exactly what the general path makes, in the same order.
        """
        entry = self._heads.get(id(fields))
        if entry is None or entry[0] is not fields or entry[1] != status or entry[2] != length:
            # Holding the tuple keeps its id from being reused while the entry exists.
            config = self.config
            lines = response_head(
                status, [("Server", SERVER_NAME), *fields, *config.added_fields, ("Content-Length", str(length))]
            )
            if len(self._heads) >= _HEAD_CACHE_ENTRIES:
                self._heads.clear()  # a full cache means many files: start again, cheaply
            line = status_line(status)
            entry = self._heads[id(fields)] = (fields, status, length, line, lines[len(line) : -2])
        date = http_date()
        if date is not self._date:
            self._date = date
            self._date_line = ("Date: %s\r\n" % date).encode("latin-1")
        if keep_alive:
            key = (responses, say_keep_alive)
            tail = self._keep_alive_tails.get(key)
            if tail is None:
                tail = (
                    "%sKeep-Alive: %s\r\n\r\n"
                    % ("Connection: keep-alive\r\n" if say_keep_alive else "", self.keep_alive_value(responses))
                ).encode("latin-1")
                if responses <= 1024:
                    self._keep_alive_tails[key] = tail
        else:
            tail = b"Connection: close\r\n\r\n"
        return b"".join((entry[3], self._date_line, entry[4], tail))


class Connection:
    """The HTTP exchange of one client, driven through :class:`ConnState`."""

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
        "deadline",
        "_timer",
        "_batching",
    )

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
        self.responses = 0  # responses started on this connection
        self.keep_alive = True  # whether the current response leaves the connection open
        self.deadline: Optional[float] = None
        self._timer: Optional[TimerHandle] = None
        self._batching = False  # inside _run: responses to pipelined requests may leave in one send

    def __repr__(self) -> str:
        return "<Connection #%d %s %s>" % (self.id, self.client, self.state.value)

    # What handlers may use.

    @property
    def client(self) -> str:
        """The peer's address, for the log and loopback checks."""
        return self.transport.peer

    @property
    def local_host(self) -> str:
        """The address this connection arrived on (``getsockname``)."""
        return self.transport.local_host

    @property
    def config(self) -> Config:
        return self.ctx.config

    @property
    def pool(self) -> Any:
        return self.ctx.pool

    @property
    def loop(self) -> EventLoop:
        return self.ctx.loop

    # -- the state machine ---------------------------------------------------------------

    def start(self) -> None:
        """Begin in HANDSHAKING; the transport says when bytes can flow."""
        if self.tracer:
            self.tracer.accepted(self)
        self.transport.start(self)
        if self.state is _HANDSHAKING:  # not ready at once: a TLS handshake has begun
            self._arm(self.ctx.config.tls_handshake_timeout_s)
            self._settle_timer()

    def set_state(self, new: ConnState) -> None:
        """Move to ``new``: check :data:`NEXT` and set the new state's deadline.

        The limits are :data:`TIMEOUT_FIELDS`. Raises InvalidTransition if the move is
        not allowed.
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
        elif new is _CLOSED:
            self._teardown()
        else:
            self.deadline = None  # RESPONDING, WRITING: no limit of their own

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
                            if self.deadline is None:
                                self._arm(self.ctx.config.send_timeout_s)  # the client must read first
                            break
                        self._response_done()
                        continue
                    if state not in _PARSING:
                        break  # HANDSHAKING, IDLE, RESPONDING, CLOSING, CLOSED wait for something outside
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
            if self.state is not _CLOSED:
                self.transport.set_reading(self.state in _WANTS_INPUT)
                deadline = self.deadline
                if deadline is not None and (self._timer is None or self._timer.when > deadline):
                    self._settle_timer()
        finally:
            if not outer:
                self._batching = False
                self.transport.flush()

    # -- what the transport reports ------------------------------------------------------

    def connection_made(self) -> None:
        """The transport is ready (at once for TCP, after the TLS handshake)."""
        if self.state is _HANDSHAKING:
            self.set_state(_IDLE)
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
        if is_quiet(exc):
            log.debug("#%d connection lost: %s", self.id, exc)
        else:
            log.warning("#%d socket error: %s", self.id, exc)
        if self.tracer:
            self.tracer.lost(self, exc)
        self.abort()

    # -- timeouts -------------------------------------------------------------------

    def _arm(self, delay_s: float) -> None:
        """Set the deadline ``delay_s`` seconds from now; the timer follows when the pass ends."""
        self.deadline = self.ctx.loop.now + delay_s
        if self.tracer:
            self.tracer.timer_armed(self, delay_s)

    def _settle_timer(self) -> None:
        """Make the timer fire by the deadline: move it only if it would fire later."""
        deadline = self.deadline
        assert deadline is not None
        timer = self._timer
        if timer is None or timer.when > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.ctx.loop.call_at(deadline, self._on_timer)
            if self.tracer:
                self.tracer.timer_set(self)

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
        self.deadline = deadline  # the timer follows when the pass ends (the rate may bring it forward)

    def _on_timer(self) -> None:
        if self.tracer:
            self.tracer.timer_fired(self)
        self._timer = None
        deadline = self.deadline
        state = self.state
        if state is _CLOSED or deadline is None:
            return
        if state is _WRITING:  # the send timeout counts from the last progress
            deadline = max(deadline, self.transport.progressed_at + self.ctx.config.send_timeout_s)
        if self.ctx.loop.now < deadline:
            self._timer = self.ctx.loop.call_at(deadline, self._on_timer)
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
            self.transport.write(_CONTINUE)

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
        response = self._route(request) if request.route is None else None  # with a body: routed at its head
        if response is None:
            route = request.route
            assert route is not None, "route() must pick a handler or refuse"
            try:
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
    ) -> None:
        """Make the response on the worker pool: run ``job(*args)``, answer ``on_result(result)``.

        Moves to RESPONDING until the result is back. ``on_result`` runs on the loop
        thread and returns the Response, or None after it called :meth:`respond_when`.
        If the job raises HTTPError, that is the answer;
        running out of descriptors or memory (EMFILE, ENFILE, ENOMEM) is a 503 with
        Retry-After, like a saturated pool; any other exception is a 500 with its
        traceback logged. A result that comes back after the connection closed or moved
        on is dropped (``on_result`` is not called) and anything it holds is closed
        (:func:`discard_result`).
        """
        request = self.request
        self.set_state(_RESPONDING)

        def done(future: "concurrent.futures.Future[Any]") -> None:
            stale = not self._awaits(request)
            if self.tracer:
                self.tracer.pool_result(self, job, future, stale)
            if stale:
                discard_result(future)
                return
            try:
                try:
                    response = on_result(future.result())
                except HTTPError as exc:
                    response = Response.from_error(exc)
                except OSError as exc:
                    if exc.errno not in _EXHAUSTED:
                        raise
                    log.warning("#%d %s; answering 503", self.id, exc)
                    response = Response.error(503, _BUSY, [("Retry-After", "1")])
                if response is not None:  # None: respond_when() answers later
                    self.respond(response)
            except Exception as exc:  # from the job, on_result or respond: a bug
                self._internal_error(exc)
            self._run()

        if self.tracer:
            self.tracer.pool_submit(self, job)
        if not self.ctx.pool.submit(job, args, done):
            self.respond(Response.error(503, _BUSY, [("Retry-After", "1")]))

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

    def respond(self, response: Response) -> None:
        """Send ``response`` to the current request. Loop thread only, once per request.

        Adds Date, Server, Content-Length and the persistence fields (RFC 9112 §9.3:
        ``Connection: close``, or ``Keep-Alive: timeout=…, max=…`` with the requests left).
        A response to HEAD never carries content (RFC 9110 §9.3.2), errors included.
        """
        if self.state is _CLOSED:
            response.release()
            return
        request = self.request
        if request is None:  # an error before any request-line arrived
            request = self.request = Request(None, self.parser.request_line)
        head = request.head
        ctx = self.ctx
        config = ctx.config
        self.responses += 1
        stream = response.stream
        # A body of unknown length is chunked for HTTP/1.1; for HTTP/1.0 the close ends it.
        chunked = stream is not None and head is not None and head.http_version == "1.1"
        keep_alive = (
            request.complete
            and head is not None
            and head.keep_alive
            and not response.close
            and self.responses < config.keepalive_max_requests
            and not ctx.stopping
            and (stream is None or chunked)
        )
        self.keep_alive = keep_alive
        if self.tracer:
            self.tracer.respond(self, response, keep_alive)
        status = response.status
        body = response.body
        file = response.file
        # HTTP/1.0 needs it to persist; a 1.1 client that asked gets the answer it asked for.
        say_keep_alive = (
            keep_alive and head is not None and (head.http_version == "1.0" or "keep-alive" in head.connection_options)
        )
        response_fields = response.fields
        if type(response_fields) is tuple and stream is None and status not in _NO_CONTENT_LENGTH:
            # A hot file: the same head as below, from parts made once (see cached_head).
            length = file.remaining if file is not None else len(body)
            data = ctx.cached_head(status, response_fields, length, keep_alive, say_keep_alive, self.responses)
        else:
            fields = [("Date", http_date()), ("Server", SERVER_NAME), *response_fields, *config.added_fields]
            if chunked:
                fields.append(("Transfer-Encoding", "chunked"))
            elif status not in _NO_CONTENT_LENGTH and stream is None:
                fields.append(("Content-Length", str(file.remaining if file is not None else len(body))))
            if keep_alive:
                if say_keep_alive:
                    fields.append(("Connection", "keep-alive"))
                fields.append(("Keep-Alive", ctx.keep_alive_value(self.responses)))
            else:
                fields.append(("Connection", "close"))
            data = response_head(status, fields)
        # Before a head was parsed (a limit, a header timeout), the parser may still know it is HEAD.
        if status in _NO_CONTENT_LENGTH or (head.method == "HEAD" if head is not None else self.parser.head_request):
            body = b""
            if file is not None:
                file.close()
                file = None
            if stream is not None:
                stream.close()
                stream = None
        if body:
            request.body_bytes_sent = len(body)
            if len(body) <= _JOIN_BODY_BYTES:
                data += body  # one send for head and small body: no Nagle stall, one syscall
                body = b""
        if self.state is not _WRITING:
            self.set_state(_WRITING)
        request.status = status  # from here on, bytes may be on the wire
        transport = self.transport
        # Another request already waits in the buffer and this one keeps the connection:
        # let this response leave with the next one (_run sends what is left at its end).
        transport.write(data, self._batching and keep_alive and not body and bool(self.parser.buffered_bytes()))
        if body:
            transport.write(body)
        if file is not None:
            request.body_bytes_sent += file.remaining
            transport.write_file(file)
        if stream is not None:
            transport.write_stream(ChunkedStream(stream) if chunked else stream)

    def _response_done(self) -> None:
        """The whole response is in the kernel: log it, then keep alive or close."""
        request = self.request
        linger = True
        if request is not None:
            self._log_access(request)
            linger = not request.complete
        self.request = None
        if not self.keep_alive or self.ctx.stopping:  # a graceful stop: no next request
            self._close_after_response(linger or bool(self.parser.buffered_bytes()))
            return
        self.set_state(_READING_HEADERS if self.parser.start_next_cycle() else _IDLE)

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
        if self.request is not None:
            self.request.complete = False  # the rest of it may still come: linger
        response = Response.from_error(exc)
        response.close = True
        self.respond(response)

    def _internal_error(self, exc: BaseException) -> None:
        """Log a bug with its traceback; answer 500 if nothing was sent, else drop the connection.

        Only this connection pays: if answering fails too, it is closed at once.
        """
        request = self.request
        log.error("#%d error handling %r", self.id, request.request_line if request else None, exc_info=exc)
        if self.state is _CLOSED:
            return
        try:
            if request is not None and request.status:  # respond() ran: bytes may be out already
                self.abort()
                return
            if request is not None:
                request.complete = False
            self.respond(Response.error(500, "internal server error", close=True))
        except Exception as again:
            log.error("#%d cannot answer 500 (%r); closing the connection", self.id, again)
            self.close()

    def abort(self) -> None:
        """Close at once, logging the unfinished request if there was one."""
        request = self.request
        if request is not None and request.status:
            self._log_access(request)
        self.request = None
        self.close()

    def close(self) -> None:
        """Close the transport and leave the connection table. Idempotent."""
        if self.state is not _CLOSED:
            self.set_state(_CLOSED)

    def _teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.deadline = None
        self.transport.close()
        self.transport.protocol = None  # no cycle: both go as soon as the table lets go of us
        self.ctx.closed(self)

    def _log_access(self, request: Request) -> None:
        self.ctx.stats.responses[request.status // 100] += 1
        access = logmod.access_log
        if not access.enabled:
            return
        head = request.head
        access.write(
            self.transport.peer,
            request.started,
            request.request_line,
            request.status,
            request.body_bytes_sent,
            head.fields if head is not None else (),
        )


def discard_result(future: "concurrent.futures.Future[object]") -> None:
    """Release what a pool job opened when its connection is gone (e.g. a file)."""
    if future.cancelled() or future.exception() is not None:
        return
    close = getattr(future.result(), "close", None)
    if close is not None:
        close()
