"""One client connection as an explicit state machine.

Theory of operation
-------------------
A :class:`Connection` owns a non-blocking socket, a sans-I/O :class:`RequestParser`, an
outbox of bytes waiting to be sent and at most one :class:`Request` in progress. It is
always in exactly one :class:`ConnState`::

    IDLE ──first byte──▶ READING_HEADERS ──head with body──▶ READING_BODY
      ▲                        │                                 │
      │                   head, no body                      RequestEnd
      │                        ▼                                 ▼
      └──── keep-alive ─── WRITING ◀─────────────────────────────┘
                               │
                  Connection: close ──▶ CLOSING ──▶ CLOSED

Every change of state goes through :meth:`Connection.set_state`, which checks the move
against :data:`NEXT`, re-arms the state's timeout and re-derives the selector interest
(:meth:`Connection._update_interest`): the reading states want ``EVENT_READ``;
``WRITING`` wants ``EVENT_WRITE`` only while bytes are queued, and nothing at all while
a worker is still producing the response, so a client cannot push more requests at us
while we answer (back-pressure for pipelining). Handlers never touch the selector.

After each readiness event the connection keeps going until it blocks: a buffer that
holds several pipelined requests is answered request by request without waiting for
another wake-up, in order, because the parser pauses after each request until the
response is sent.

Timeouts use one timer per connection and a ``deadline`` attribute. Extending the
deadline (on every body read or send) is a plain assignment; when the timer fires
early it re-arms itself at the new deadline. That keeps the timer heap small and the
per-read cost O(1).
"""

from __future__ import annotations

import concurrent.futures
import enum
import errno
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, List, Optional, Tuple, Union

from reactor import log as logmod
from reactor.errors import HTTPError, ProtocolError
from reactor.events import NEED_DATA, PAUSED, BodyData, RequestEnd, RequestHead
from reactor.loop import EVENT_READ, EVENT_WRITE, TimerHandle
from reactor.parser import RequestParser
from reactor.response import FileBody, Response
from reactor.serializer import http_date, response_head

if TYPE_CHECKING:  # pragma: no cover
    from reactor.server import Server

log = logging.getLogger("reactor.connection")

SERVER_NAME = "reactor"
_RECV_BYTES = 65536
_SEND_BLOCK_BYTES = 256 * 1024  # one pool read when sendfile is not used
_SENDFILE_BYTES = 4 * 1024 * 1024  # most bytes one sendfile call may move
_JOIN_BODY_BYTES = 64 * 1024  # bodies up to this size go out in one send with the head
_CORK_BYTES = 1024 * 1024  # files at least this large stream corked (see _cork)
_TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux only
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_CONTENT_LENGTH = frozenset({204, 304})
_QUIET_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})  # back-pressure, not a bug


class ConnState(enum.Enum):
    """The states of a connection (see the module docstring for the diagram)."""

    IDLE = "idle"  # keep-alive wait; idle timer running
    READING_HEADERS = "reading-headers"  # request-line + field lines, until the empty line
    READING_BODY = "reading-body"  # Content-Length or chunked message body
    WRITING = "writing"  # response being made on the pool, or queued for sending
    CLOSING = "closing"  # final response sent, write side shut; discarding input (lingering close)
    CLOSED = "closed"  # unregistered and closed; nothing leaves it

    # Members are singletons, so identity hashing is correct, and unlike Enum's own
    # __hash__ (Python code hashing the name) it costs no function call: states are
    # looked up in NEXT and in sets several times per request.
    __hash__ = object.__hash__


#: The allowed moves. :meth:`Connection.set_state` refuses any other.
NEXT: Dict[ConnState, FrozenSet[ConnState]] = {
    ConnState.IDLE: frozenset({ConnState.READING_HEADERS, ConnState.CLOSED}),
    ConnState.READING_HEADERS: frozenset({ConnState.READING_BODY, ConnState.WRITING, ConnState.CLOSED}),
    ConnState.READING_BODY: frozenset({ConnState.WRITING, ConnState.CLOSED}),
    ConnState.WRITING: frozenset(
        {ConnState.IDLE, ConnState.READING_HEADERS, ConnState.CLOSING, ConnState.CLOSED}
    ),
    ConnState.CLOSING: frozenset({ConnState.CLOSED}),
    ConnState.CLOSED: frozenset(),
}

_IDLE = ConnState.IDLE
_READING_HEADERS = ConnState.READING_HEADERS
_READING_BODY = ConnState.READING_BODY
_WRITING = ConnState.WRITING
_CLOSING = ConnState.CLOSING
_CLOSED = ConnState.CLOSED
_READING_STATES = frozenset({_IDLE, _READING_HEADERS, _READING_BODY})


def answers_head(head: Optional[RequestHead], parser: RequestParser) -> bool:
    """True if the response goes to a HEAD request, so no content may follow its head.

    RFC 9110 §9.3.2 holds for every response, errors included: before a head was parsed
    (a bad field line, a limit, a header timeout) the method comes from what ``parser``
    has seen of the request-line.
    """
    if head is not None:
        return head.method == "HEAD"
    return parser.head_request


class InvalidTransition(RuntimeError):
    """A state change that :data:`NEXT` does not allow (a bug in the server)."""


class Request:
    """One request and what is known of its response, for handlers and the access log.

    ``body`` is None unless a handler asked for the message body (``want_body()``);
    then it collects the decoded bytes (the parser bounds it by ``max_body_bytes``).
    """

    __slots__ = ("head", "request_line", "body", "started", "status", "body_bytes_sent", "route", "checked")

    def __init__(self, head: Optional[RequestHead], request_line: Optional[str]) -> None:
        self.head = head
        self.request_line = request_line
        self.body: Optional[bytearray] = None
        self.started = time.time()
        self.status = 0
        self.body_bytes_sent = 0
        self.route: Optional[Callable[["Connection", "Request"], Optional[Response]]] = None
        self.checked = False

    def want_body(self) -> None:
        """Ask for the message body to be collected into ``body``."""
        if self.body is None:
            self.body = bytearray()


class Connection:
    """A client socket driven through :class:`ConnState` by the loop."""

    __slots__ = (
        "server",
        "loop",
        "sock",
        "client",
        "id",
        "tracer",
        "state",
        "parser",
        "request",
        "responses",
        "keep_alive",
        "deadline",
        "_timer",
        "_mask",
        "_on_event_cb",
        "_outbox",
        "_file",
        "_file_reading",
        "_processing",
        "_response_pending",
        "_body_unread",
    )

    def __init__(self, server: "Server", sock: socket.socket, client: str, conn_id: int) -> None:
        config = server.config
        self.server = server
        self.loop = server.loop
        self.sock = sock
        self.client = client  # the peer's address, for the log
        self.id = conn_id
        self.tracer = server.tracer  # None unless --trace: then each trace point below writes a line
        self.state = _IDLE
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
        self._mask = 0
        self._on_event_cb = self._on_event  # one bound method, so selector.modify sees the same data
        # A list, not a deque: it rarely holds more than two items, and an empty deque
        # costs 760 bytes against a list's 56, which matters with 10,000 idle connections.
        self._outbox: List[Union[bytes, memoryview]] = []
        self._file: Optional[FileBody] = None
        self._file_reading = False  # a pool read of the next block is in flight
        self._processing = False  # inside _process(); stops re-entry from synchronous responses
        self._response_pending = False  # WRITING and the response is not complete yet
        self._body_unread = False  # a final response went out before the request was fully read

    def __repr__(self) -> str:
        return "<Connection #%d %s %s>" % (self.id, self.client, self.state.value)

    # -- the state machine ---------------------------------------------------------------

    def start(self) -> None:
        """Begin in IDLE, waiting for the first byte. Called once by the server."""
        if self.tracer:
            self.tracer.accepted(self)
        self._arm(self.server.config.keepalive_timeout_s)
        self._update_interest()

    def set_state(self, new: ConnState) -> None:
        """Move to ``new``: check :data:`NEXT`, re-arm the timeout, update the interest.

        Raises InvalidTransition if the move is not allowed.
        """
        old = self.state
        if new not in NEXT[old]:
            raise InvalidTransition("%r: %s -> %s" % (self, old.value, new.value))
        self.state = new
        if self.tracer:
            self.tracer.state(self, old, new)
        config = self.server.config
        if new is _READING_HEADERS:
            self._arm(config.header_timeout_s)
        elif new is _READING_BODY:
            self._arm(config.body_timeout_s)
        elif new is _IDLE:
            self._arm(config.keepalive_timeout_s)
        elif new is _WRITING:
            self.deadline = None  # armed when bytes are queued (see _queue)
        elif new is _CLOSING:
            self._arm(config.linger_timeout_s)
        if new is _CLOSED:
            self._teardown()
        else:
            self._update_interest()

    def _update_interest(self) -> None:
        """Derive the selector mask from the state and the outbox; register, modify or unregister.

        Inside :meth:`_process` this waits until processing ends: a request answered from
        memory passes through WRITING and back to IDLE without the selector hearing of it,
        which saves an unregister and a register (two system calls) per request.
        """
        if self._processing:
            return
        state = self.state
        if state is _WRITING:
            mask = EVENT_WRITE if (self._outbox or (self._file is not None and self._sendfile_ready())) else 0
        else:
            mask = EVENT_READ | EVENT_WRITE if self._outbox else EVENT_READ
        if mask == self._mask:
            return
        selector = self.loop.selector
        if mask == 0:
            selector.unregister(self.sock)
        elif self._mask == 0:
            selector.register(self.sock, mask, self._on_event_cb)
        else:
            selector.modify(self.sock, mask, self._on_event_cb)
        if self.tracer:
            self.tracer.interest(self, self._mask, mask)
        self._mask = mask

    # -- timeouts -------------------------------------------------------------------

    def _arm(self, delay_s: float) -> None:
        deadline = self.loop.time() + delay_s
        self.deadline = deadline
        timer = self._timer
        if timer is None or timer.when > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)
        if self.tracer:
            self.tracer.timer_armed(self, delay_s)

    def _on_timer(self) -> None:
        if self.tracer:
            self.tracer.timer_fired(self)
        self._timer = None
        deadline = self.deadline
        if self.state is _CLOSED or deadline is None:
            return
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._on_timer)
            return
        state = self.state
        try:
            if state is _IDLE:
                log.debug("#%d keep-alive timeout", self.id)
                self.close()
            elif state is _READING_HEADERS or state is _READING_BODY:
                what = "header section" if state is _READING_HEADERS else "message body"
                self._fail(HTTPError(408, "timed out waiting for the %s" % what, close=True))
            elif state is _WRITING:
                log.info("#%d %s stopped reading the response; closing", self.id, self.client)
                self.abort()
            else:  # CLOSING
                self.close()
        except Exception as exc:
            self._internal_error(exc)

    # -- I/O events ------------------------------------------------------------------

    def _on_event(self, mask: int) -> None:
        if self.tracer:
            self.tracer.event(self, mask)
        try:
            if mask & EVENT_WRITE:
                self._flush()
            if mask & EVENT_READ and self.state is not _CLOSED and self.state is not _WRITING:
                self._on_readable()
        except Exception as exc:  # a bug costs this connection, never the loop (nor a busy spin)
            self._internal_error(exc)

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._connection_lost(exc)
            return
        if self.tracer:
            self.tracer.recv(self, len(data))
        state = self.state
        if state is _CLOSING:
            if not data:
                self.close()
            return  # lingering close: discard
        if state is _IDLE:
            if not data:
                self.close()
                return
            self.set_state(_READING_HEADERS)
        elif state is _READING_BODY and data:
            self.deadline = self.loop.time() + self.server.config.body_timeout_s
        self.parser.feed(data)
        self._process()

    def _process(self) -> None:
        """Turn buffered bytes into events and act on them until more input is needed."""
        if self._processing:
            return
        self._processing = True
        parser = self.parser
        try:
            while self.state in _READING_STATES:
                try:
                    event = parser.next_event()
                except ProtocolError as exc:
                    self._fail(exc)
                    break
                if self.tracer:
                    self.tracer.parser(self, event)
                if event is NEED_DATA or event is PAUSED:
                    break
                kind = type(event)
                if kind is RequestHead:
                    self._on_head(event)  # type: ignore[arg-type]
                elif kind is BodyData:
                    body = self.request.body if self.request is not None else None
                    if body is not None:
                        body += event.data  # type: ignore[union-attr]
                elif kind is RequestEnd:
                    self._on_request_end()
                else:  # EndOfStream between requests
                    self.close()
        except Exception as exc:  # a bug in a handler must cost one connection, not the loop
            self._internal_error(exc)
        finally:
            self._processing = False
        if self.state is not _CLOSED:
            self._update_interest()  # once, for all the moves made above

    # -- requests ----------------------------------------------------------------------

    def _on_head(self, head: RequestHead) -> None:
        request = self.request = Request(head, self.parser.request_line)
        if not head.has_body:
            return  # RequestEnd follows at once; the handler decides there
        self.set_state(_READING_BODY)
        early = self._check(request)
        if early is not None:
            # Answer before reading the body (also the answer to Expect: 100-continue),
            # then close: the unread body cannot be told apart from a next request.
            early.close = True
            self._body_unread = True
            self.set_state(_WRITING)
            self.respond(early)
        elif head.expect_continue:
            self.server.stats.responses[1] += 1
            self._queue(_CONTINUE)
            self._flush()

    def _check(self, request: Request) -> Optional[Response]:
        request.checked = True
        try:
            return self.server.app.check(self, request)
        except HTTPError as exc:
            return Response.error(exc.status, exc.reason, exc.headers, close=exc.close)

    def _on_request_end(self) -> None:
        request = self.request
        assert request is not None
        self.set_state(_WRITING)
        self._response_pending = True
        response = None if request.checked else self._check(request)
        if response is None:
            try:
                response = self.server.app.handle(self, request)
            except HTTPError as exc:
                response = Response.error(exc.status, exc.reason, exc.headers, close=exc.close)
        if response is not None:
            self.respond(response)

    def run_in_pool(
        self,
        job: Callable[..., Any],
        args: Tuple[Any, ...],
        on_result: Callable[[Any], Optional[Response]],
    ) -> None:
        """Run ``job(*args)`` on the worker pool; answer with ``on_result(result)``.

        ``on_result`` runs on the loop thread and returns the Response, or None if it
        has arranged to call :meth:`respond` itself later (a request waiting for a
        compression another request started). If the job
        raises HTTPError, that is the answer; running out of descriptors or memory
        (EMFILE, ENFILE, ENOMEM) is a 503 with Retry-After, like a saturated pool; any
        other exception is a 500 with its traceback logged. A result that
        comes back after the connection closed or moved on is dropped (``on_result`` is
        not called, so it must not hold resources the job opened; see
        :meth:`Server.discard_result`).
        """
        request = self.request

        def done(future: "concurrent.futures.Future[Any]") -> None:
            stale = self.state is _CLOSED or self.request is not request
            if self.tracer:
                self.tracer.pool_result(self, job, future, stale)
            if stale:
                self.server.discard_result(future)
                return
            try:
                try:
                    response = on_result(future.result())
                except HTTPError as exc:
                    response = Response.error(exc.status, exc.reason, exc.headers, close=exc.close)
                except OSError as exc:
                    if exc.errno not in _EXHAUSTED:
                        raise
                    log.warning("#%d %s; answering 503", self.id, exc)
                    response = Response.error(503, "server busy; try again shortly", [("Retry-After", "1")])
                if response is not None:  # None: on_result arranged to call respond() later
                    self.respond(response)
            except Exception as exc:  # from the job, on_result or respond: a bug
                self._internal_error(exc)

        if self.tracer:
            self.tracer.pool_submit(self, job)
        if not self.server.pool.submit(job, args, done):
            self.respond(
                Response.error(503, "server busy; try again shortly", [("Retry-After", "1")])
            )

    def respond(self, response: Response) -> None:
        """Send ``response`` to the current request. Loop thread only, once per request.

        Adds Date, Server, Content-Length and the persistence fields (RFC 9112 §9.3:
        ``Connection: close``, or ``Keep-Alive: timeout=…, max=…`` with the requests left).
        """
        if self.state is _CLOSED:
            if response.file is not None:
                response.file.close()
            return
        request = self.request
        if request is None:  # an error before any request-line arrived
            request = self.request = Request(None, self.parser.request_line)
        head = request.head
        config = self.server.config
        self.responses += 1
        keep_alive = (
            head is not None
            and head.keep_alive
            and not response.close
            and not self._body_unread
            and self.responses < config.keepalive_max_requests
            and not self.server.stopping
        )
        self.keep_alive = keep_alive
        if self.tracer:
            self.tracer.respond(self, response, keep_alive)
        self._response_pending = True
        status = response.status
        body = response.body
        file = response.file
        fields = [("Date", http_date()), ("Server", SERVER_NAME), *response.fields, *config.added_fields]
        if status not in _NO_CONTENT_LENGTH:
            fields.append(("Content-Length", str(file.remaining if file is not None else len(body))))
        if keep_alive:
            if head is not None and head.http_version == "1.0":
                fields.append(("Connection", "keep-alive"))
            fields.append(("Keep-Alive", self.server.keep_alive_value(self.responses)))
        else:
            fields.append(("Connection", "close"))
        data = response_head(status, fields)
        if status in _NO_CONTENT_LENGTH or answers_head(head, self.parser):
            body = b""
            if file is not None:
                file.close()
                file = None
        if body:
            request.body_bytes_sent = len(body)
            if len(body) <= _JOIN_BODY_BYTES:
                data += body  # one send for head and small body: no Nagle stall, one syscall
                body = b""
        if self.state is not _WRITING:
            self.set_state(_WRITING)
        request.status = status  # from here on, bytes may be on the wire
        self._queue(data)
        if body:
            self._queue(body)
        if file is not None:
            request.body_bytes_sent += file.remaining
            self._file = file
            if file.remaining >= _CORK_BYTES and self.server.config.sendfile:
                self._cork(True)
        self._flush()

    # -- output ---------------------------------------------------------------------

    def _queue(self, data: Union[bytes, memoryview]) -> None:
        if not self._outbox and self.state is _WRITING:
            self._arm(self.server.config.send_timeout_s)
        self._outbox.append(data)

    def _flush(self) -> None:
        """Send what the socket takes now; the rest waits for EVENT_WRITE."""
        outbox = self._outbox
        sock = self.sock
        try:
            while outbox:
                data = outbox[0]
                sent = sock.send(data)
                self.server.stats.sent_bytes += sent
                if self.tracer:
                    self.tracer.send(self, sent, len(data))
                if sent < len(data):
                    outbox[0] = memoryview(data)[sent:]
                    self._progress()
                    break
                del outbox[0]
            else:
                if self._file is not None and self._send_file() is False:
                    self._update_interest()
                    return
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self._connection_lost(exc)
            return
        if not outbox and self._file is None and self._response_pending and self.state is _WRITING:
            self._response_done()
        else:
            self._update_interest()

    def _progress(self) -> None:
        self.deadline = self.loop.time() + self.server.config.send_timeout_s

    def _sendfile_ready(self) -> bool:
        """True when the file body goes by sendfile (so EVENT_WRITE is wanted)."""
        return self.server.config.sendfile and not self._file_reading

    def _send_file(self) -> Optional[bool]:
        """Send from ``self._file``: zero-copy sendfile, or blocks read on the pool.

        Returns True when the file is done, None when the socket is full, and False while
        a pool read is in flight. Raises BlockingIOError or OSError from the socket.
        """
        file = self._file
        assert file is not None
        if not self.server.config.sendfile:
            if not self._file_reading:
                self._read_next_block()
            return False
        out_fd = self.sock.fileno()
        moved = 0
        while file.remaining and moved < _SENDFILE_BYTES:
            sent = os.sendfile(out_fd, file.fd, file.offset, min(file.remaining, _SENDFILE_BYTES))
            if sent == 0:  # the file shrank under us: the promised length can't be met
                raise ConnectionAbortedError("file truncated while sending")
            file.offset += sent
            file.remaining -= sent
            moved += sent
            self.server.stats.sent_bytes += sent
            if self.tracer:
                self.tracer.sendfile(self, sent, file.remaining)
            self._progress()
        if file.remaining:
            return None
        file.close()
        self._file = None
        self._cork(False)
        return True

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

    def _read_next_block(self) -> None:
        """Ask the pool for the next block of the file (used when sendfile is off)."""
        file = self._file
        assert file is not None
        self._file_reading = True

        def done(future: "concurrent.futures.Future[bytes]") -> None:
            self._file_reading = False
            if self.tracer:
                self.tracer.pool_result(self, os.pread, future, self.state is _CLOSED)
            if self.state is _CLOSED:
                file.close()  # _teardown left it open while the read was in flight
                return
            try:
                block = future.result()
            except OSError as exc:
                log.error("#%d reading file failed: %s", self.id, exc)
                self.abort()
                return
            if not block:
                self.abort()  # truncated file: the promised Content-Length can't be met
                return
            try:
                file.offset += len(block)
                file.remaining -= len(block)
                if not file.remaining:
                    file.close()
                    self._file = None
                self._queue(block)
                self._flush()
            except Exception as exc:
                self._internal_error(exc)

        size = min(file.remaining, _SEND_BLOCK_BYTES)
        if self.tracer:
            self.tracer.pool_submit(self, os.pread)
        if not self.server.pool.submit(os.pread, (file.fd, size, file.offset), done):
            self._file_reading = False
            self.loop.call_later(0.01, self._retry_block)

    def _retry_block(self) -> None:
        if self.state is _WRITING and self._file is not None and not self._file_reading:
            self._read_next_block()

    def _response_done(self) -> None:
        """The whole response is handed to the kernel: log it, then keep alive or close."""
        self._response_pending = False
        request = self.request
        if request is not None:
            self._log_access(request)
        self.request = None
        if not self.keep_alive or self.server.stopping:  # a graceful stop: no next request
            self._close_after_response()
            return
        parser = self.parser
        parser.start_next_cycle()
        if parser.buffered_bytes:
            self.set_state(_READING_HEADERS)  # a pipelined request is already here
            self._process()
        else:
            self.set_state(_IDLE)

    def _close_after_response(self) -> None:
        """Close after a final response; linger if the client may still be sending.

        Closing a socket with unread input makes the kernel send RST, which can destroy
        the response in the client's receive buffer. So when input may follow (an unread
        body, an error mid-request), shut the write side and discard input until EOF or
        the linger timeout, as nginx's lingering_close does.
        """
        if not (self._body_unread or self.parser.buffered_bytes):
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.set_state(_CLOSING)

    # -- errors and closing -----------------------------------------------------------

    def _fail(self, exc: HTTPError) -> None:
        """Answer a request that cannot go on (bad syntax, a limit, a timeout) and close."""
        if self.state is _CLOSED:
            return
        log.debug("#%d %s", self.id, exc)
        if self.tracer:
            self.tracer.fail(self, exc)
        if self._response_pending and self.state is _WRITING:
            self.abort()  # a response is already under way; nothing sensible can follow
            return
        self._body_unread = self.state is not _IDLE or self._body_unread  # the rest may still come
        if self.state is not _WRITING:
            self.set_state(_WRITING)
        self.respond(Response.error(exc.status, exc.reason, exc.headers, close=True))

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
            self._body_unread = True
            if self.state is not _WRITING:
                self.set_state(_WRITING)
            self.respond(Response.error(500, "internal server error", close=True))
        except Exception as again:
            log.error("#%d cannot answer 500 (%r); closing the connection", self.id, again)
            self.close()

    def _connection_lost(self, exc: OSError) -> None:
        if isinstance(exc, _QUIET_ERRORS) or exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT):
            log.debug("#%d connection lost: %s", self.id, exc)
        else:
            log.warning("#%d socket error: %s", self.id, exc)
        if self.tracer:
            self.tracer.lost(self, exc)
        self.abort()

    def abort(self) -> None:
        """Close at once, logging the unfinished request if there was one."""
        request = self.request
        if request is not None and request.status:
            self._log_access(request)
        self.request = None
        self.close()

    def close(self) -> None:
        """Unregister and close the socket; release the file. Idempotent."""
        if self.state is not _CLOSED:
            self.set_state(_CLOSED)

    def _teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.deadline = None
        if self._mask:
            self._mask = 0
            try:
                self.loop.selector.unregister(self.sock)
            except (KeyError, ValueError, OSError):
                pass  # already gone (the socket died first); nothing left to undo
        if self._file is not None:
            if not self._file_reading:
                self._file.close()
            self._file = None
        self._outbox.clear()
        try:
            self.sock.close()
        except OSError:
            pass
        self.server.connection_closed(self)

    def _log_access(self, request: Request) -> None:
        self.server.stats.responses[request.status // 100] += 1
        access = logmod.access_log
        if not access.isEnabledFor(logging.INFO):
            return
        head = request.head
        access.info(
            logmod.access_line(
                self.client,
                request.started,
                request.request_line,
                request.status,
                request.body_bytes_sent,
                head.get("referer") if head is not None else None,
                head.get("user-agent") if head is not None else None,
            )
        )
