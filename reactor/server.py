"""The server: listening socket, accept, the table of sessions and a graceful stop.

Theory of operation
-------------------
:class:`Server` binds one non-blocking listening socket and registers it with the loop.
On readability it accepts in a bounded batch (so a flood of connects cannot starve the
connections already open), makes each socket non-blocking with ``TCP_NODELAY`` (the
response head and a small body leave in one send; Nagle would only delay it) and wraps
it in a transport (:class:`~reactor.transport.Transport`, or
:class:`~reactor.transport.TLSTransport` when a certificate is configured) beneath a
:class:`~reactor.connection.Connection`. Connections get their collaborators
(:class:`~reactor.connection.Collaborators`), never the server. The server's table holds
sessions (:class:`~reactor.sessions.SessionTable`): each client's HTTP exchange, or the
session of the protocol it switched to (a ``101`` replaces the entry). The server owns
two pools: one for the disk, and one for application code (``--threads``).

Past ``max_connections`` a new socket is answered ``503`` with ``Retry-After`` and
closed at once. When ``accept`` fails for lack of descriptors (``EMFILE``/``ENFILE``), one
descriptor kept in reserve is closed so that the waiting client can be accepted, answered
``503`` and closed (the reserve is then taken again): new clients get a quick refusal, not
a connect that hangs. If even that fails (or on any other error that is not about one dead
connection) the listener is taken out of the selector for a moment; otherwise a
level-triggered selector would report it readable forever and the loop would spin.

Under a supervisor the server is handed an :class:`~reactor.scoreboard.AcceptGate`: it
publishes the open-connection count on every accept and close, and after each accept
asks whether a peer worker holds fewer; if so the listener leaves the selector
(``DEFERRING``) and the gate is asked again every ``_DEFER_RECHECK_S`` or when one of
this worker's connections closes. A connection still queued after ``_DEFER_LIMIT_S`` is
taken anyway: no peer took it (stuck in a long callback, or swamped), and the gate is
there to share the load, never to make a client wait. The accept side's states are
:class:`AcceptState`.

A graceful stop (:meth:`Server.shutdown`) answers ``503`` to connections still waiting
in the backlog and closes the listener (new clients are refused at once), then asks each
session to go away (:meth:`~reactor.sessions.Session.go_away`: an idle HTTP connection
closes, a request in flight finishes with ``Connection: close``, a session of another
protocol says goodbye its own way) and stops the loop when none are left or
``shutdown_timeout_s`` has passed. Pool jobs still running then get what is left of
that time (see :meth:`Server.close`).
"""

from __future__ import annotations

import enum
import errno
import functools
import itertools
import logging
import os
import select
import socket
import ssl
from typing import Optional, Tuple

from reactor.config import Config
from reactor.connection import Collaborators, Connection, standalone_response
from reactor.errors import busy
from reactor.handlers import Application
from reactor.handlers.app import HostedApplication
from reactor.handlers.livereload import LiveReload, make_watcher
from reactor.handlers.status import snapshot
from reactor.loop import EVENT_READ, EventLoop, TimerHandle
from reactor.response import Response
from reactor.scoreboard import AcceptGate
from reactor.sessions import SessionTable
from reactor.stats import Stats
from reactor.trace import Tracer
from reactor.transport import TLSTransport, Transport, tls_context
from reactor.watch import Feed, Watcher
from reactor.workers import WorkerPool
from reactor.wsgi import WSGIApp

log = logging.getLogger("reactor")

_ACCEPT_BATCH = 64
_ACCEPT_PAUSE_S = 0.5
# A deferring worker asks its gate again this often: a burst of connects arrives within a
# millisecond or two, and meanwhile only the peers accept; a recheck costs a few µs.
_DEFER_RECHECK_S = 0.002
# ...and takes what has stayed queued this long itself: a healthy peer takes a connection
# within a loop pass or a scheduler time slice (a few ms), so a longer wait means it cannot.
_DEFER_LIMIT_S = 0.05
# accept(2) on Linux passes on network errors of the new connection; retry at once.
_PEER_GONE = frozenset(
    {
        errno.EPROTO,
        errno.ENOPROTOOPT,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.EOPNOTSUPP,
        errno.ECONNRESET,
        getattr(errno, "ENONET", errno.ENETDOWN),
    }
)
_NO_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


def _open_spare() -> int:
    """A descriptor kept in reserve for refusing clients at the descriptor limit; -1 if none is free."""
    try:
        return os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return -1


def _readable(sock: socket.socket) -> bool:
    """True if ``sock`` is readable now (for a listener: a connection is queued). poll(2): any descriptor number."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def open_listener(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port) with SO_REUSEADDR.

    Raises OSError (EADDRINUSE, EACCES, a name that does not resolve).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, type_, proto, _canon, sockaddr = infos[0]
    listener = socket.socket(family, type_, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(sockaddr)
        listener.listen(backlog)
    except OSError:
        listener.close()
        raise
    return listener


class AcceptState(enum.Enum):
    OFF = "off"  # the listener is not in the selector: before listen(), and from a stop on
    ACCEPTING = "accepting"  # the listener is in the selector
    PAUSED = "paused"  # accept failed for lack of descriptors: out of the selector for _ACCEPT_PAUSE_S
    DEFERRING = "deferring"  # a peer worker holds fewer connections: out of the selector, rechecked soon


ACCEPT_NEXT = {
    AcceptState.OFF: {AcceptState.ACCEPTING},
    AcceptState.ACCEPTING: {AcceptState.PAUSED, AcceptState.DEFERRING, AcceptState.OFF},
    AcceptState.PAUSED: {AcceptState.ACCEPTING, AcceptState.OFF},
    AcceptState.DEFERRING: {AcceptState.ACCEPTING, AcceptState.OFF},
}


class Server:
    """Serves ``config`` on ``loop`` (a new :class:`EventLoop` if none is given).

    Call :meth:`listen` (raises OSError, e.g. EADDRINUSE), then :meth:`serve_forever`.
    ``accept_gate``: a worker's share of a shared listener (see :class:`~reactor.scoreboard.AcceptGate`).
    ``wsgi_app``: the WSGI application of ``--app`` (loaded by the caller), served with
    ``config.static_mounts`` instead of ``config.root`` (:class:`~reactor.handlers.app.HostedApplication`).
    ``live_source``: with ``--live-reload``, the :class:`~reactor.watch.Watcher` to follow,
    or a worker's :class:`~reactor.watch.Feed` from the supervisor's; None makes a watcher
    at :meth:`listen`.
    """

    def __init__(
        self,
        config: Config,
        loop: Optional[EventLoop] = None,
        accept_gate: Optional[AcceptGate] = None,
        wsgi_app: Optional[WSGIApp] = None,
        live_source: "Watcher | Feed | None" = None,
    ) -> None:
        self.config = config
        self.wsgi_app = wsgi_app
        self.loop = loop if loop is not None else EventLoop()
        self.loop.exception_handler = self._on_loop_exception
        self.pool = WorkerPool(self.loop, config.pool_size, config.pool_queue_max)
        #: Runs application code; None with ``app_threads == 0`` (called on the loop thread).
        self.app_pool = (
            WorkerPool(self.loop, config.app_threads, config.app_queue_max, name="app") if config.app_threads else None
        )
        #: The open sessions by id: HTTP connections, and what upgraded ones became. Changes
        #: are heard only when they matter (a gate to publish to, a stop to finish): a
        #: connection per request pays no call for them otherwise.
        self.sessions = SessionTable(self._sessions_changed if accept_gate is not None else None)
        self.stats = Stats()  # counters for the status page; plain integers, loop thread only
        self.tracer: Optional[Tracer] = Tracer(self.loop) if config.trace else None
        self.address: Tuple[str, int] = (config.host, config.port)
        self.app: Application  # made by listen(), once the port is known; connections come after
        #: What each connection is handed (its ``app`` is set by listen()); ``stopping`` lives there.
        self.context = Collaborators(
            config, self.loop, self.pool, self.stats, self.tracer, self.sessions, self.app_pool
        )
        self.tls_context: Optional[ssl.SSLContext] = None  # see load_tls()
        self._listener: Optional[socket.socket] = None
        self._shared_listener = False  # listen(sock=...): the accept queue is not ours alone
        self.accept_state = AcceptState.OFF
        self._gate = accept_gate
        self._recheck: Optional[TimerHandle] = None  # while DEFERRING
        self._queued_since: Optional[float] = None  # while DEFERRING: when the queue was first seen non-empty
        self._out_of_fds = False  # an EMFILE episode is under way (logged once)
        self._spare_fd = -1  # the reserve descriptor (see _refuse_with_spare)
        self._ids = itertools.count(1)
        self._stop_deadline: Optional[float] = None  # monotonic end of a graceful stop
        #: False after :meth:`close` if a worker job was still running when time ran out.
        self.workers_finished = True
        self._live_source = live_source
        self.live: Optional[LiveReload] = None  # the live-reload hub, once listening with --live-reload

    # -- starting --------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once a stop has begun (``Collaborators.stopping``: the one place it is kept)."""
        return self.context.stopping

    def load_tls(self) -> None:
        """Load the certificate and key of ``config`` into a new TLS context (new handshakes use it).

        Raises OSError for a missing or unreadable file and ssl.SSLError (an OSError too)
        for a malformed or mismatched pair; the context in use is kept then.
        """
        config = self.config
        assert config.tls_cert_file is not None and config.tls_key_file is not None
        password = None
        if config.tls_key_password_file is not None:
            with open(config.tls_key_password_file, encoding="utf-8") as file:
                password = file.read().rstrip("\r\n")
        self.tls_context = tls_context(str(config.tls_cert_file), str(config.tls_key_file), password)

    def reload_tls(self) -> bool:
        """SIGHUP: reload the certificate and key; on failure log it and keep the old pair."""
        if not self.config.tls:
            return False
        try:
            self.load_tls()
        except (OSError, ValueError) as exc:
            log.error("TLS reload failed, keeping the certificate in use: %s", exc)
            return False
        log.info("TLS certificate and key reloaded")
        return True

    def listen(self, sock: Optional[socket.socket] = None) -> Tuple[str, int]:
        """Bind and listen; return the (host, port) actually bound.

        Raises OSError (e.g. EADDRINUSE), or, before binding, what :meth:`load_tls` raises.

        ``sock``: an already listening socket to serve instead (``--fd``, systemd's
        ``LISTEN_FDS``, or the one a supervisor shares between workers). Its accept
        queue may belong to other processes too, so a graceful stop leaves it alone
        rather than answering it 503 (see :meth:`_stop_listening`).
        """
        config = self.config
        if config.tls and self.tls_context is None:
            self.load_tls()
        if sock is not None:
            sock.setblocking(False)
            self._shared_listener = True
            listener = sock
        else:
            listener = open_listener(config.host, config.port, config.backlog)
            listener.setblocking(False)
        self._listener = listener
        self._spare_fd = _open_spare()
        self.address = listener.getsockname()[:2]
        if self.tracer:
            self.tracer.listening(self.address)
        status = functools.partial(snapshot, self.stats, self.sessions, self.pool, self.loop, self.app_pool)
        if self.wsgi_app is not None:
            self.app = self.context.app = HostedApplication(config, self.address[1], status, self.wsgi_app)
        else:
            app = self.app = self.context.app = Application(config, self.address[1], status)
            if app.live is not None:
                source = self._live_source if self._live_source is not None else make_watcher(config)
                self._live_source = None
                self.live = app.live
                self.live.start(self.loop, self.pool, source, self.tracer)
            app.upload.start(self.loop, self.pool)  # sweeps stray temp files; counts uploads/ for the quota
        self._resume_accepting()
        return self.address

    @property
    def url(self) -> str:
        host, port = self.address
        if ":" in host:
            host = "[%s]" % host
        return "%s://%s:%d/" % ("https" if self.config.tls else "http", host, port)

    def serve_forever(self) -> None:
        """Run the loop until :meth:`shutdown` completes, then release everything."""
        try:
            self.loop.run()
        finally:
            self.close()

    # -- accepting -------------------------------------------------------------------

    def _set_accept_state(self, new: AcceptState) -> None:
        """The one place the listener enters or leaves the selector; the gate hears of it."""
        old = self.accept_state
        if new is old:
            return
        if new not in ACCEPT_NEXT[old]:
            raise RuntimeError("accept: %s -> %s is not allowed" % (old.value, new.value))
        log.debug("accept: %s -> %s", old.value, new.value)
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        if new is AcceptState.ACCEPTING:
            assert self._listener is not None
            self.loop.selector.register(self._listener, EVENT_READ, self._on_acceptable)
        elif old is AcceptState.ACCEPTING:
            assert self._listener is not None
            self.loop.selector.unregister(self._listener)
        self.accept_state = new
        if self._gate is not None:
            # A deferring worker still takes connections (it is back within milliseconds):
            # it counts as a peer, so a worker that overtakes it defers in turn.
            self._gate.set_taking(new in (AcceptState.ACCEPTING, AcceptState.DEFERRING))
        if new is AcceptState.DEFERRING:
            self._queued_since = None
            self._recheck = self.loop.call_later(_DEFER_RECHECK_S, self._recheck_deferral)

    def _resume_accepting(self) -> None:
        if self._listener is not None and not self.stopping:
            self._set_accept_state(AcceptState.ACCEPTING)

    def _pause_accepting(self) -> None:
        if self.accept_state is AcceptState.ACCEPTING:
            self._set_accept_state(AcceptState.PAUSED)

    def _recheck_deferral(self) -> None:
        self._recheck = None
        if self.accept_state is not AcceptState.DEFERRING:
            return
        assert self._gate is not None and self._listener is not None
        if not self._gate.should_defer(len(self.sessions)):
            self._set_accept_state(AcceptState.ACCEPTING)
            return
        if not _readable(self._listener):
            self._queued_since = None
        elif self._queued_since is None:
            self._queued_since = self.loop.time()
        elif self.loop.time() - self._queued_since >= _DEFER_LIMIT_S:
            self._queued_since = None
            self._on_acceptable(EVENT_READ, gated=False)  # no peer takes them: the whole batch is ours
        self._recheck = self.loop.call_later(_DEFER_RECHECK_S, self._recheck_deferral)

    def _on_acceptable(self, mask: int, gated: bool = True) -> None:
        listener = self._listener
        assert listener is not None
        if self.tracer:
            self.tracer.listener_ready()
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _PEER_GONE:
                    continue  # that connection died in the backlog; the next may be fine
                if exc.errno in _NO_DESCRIPTORS:
                    if not self._out_of_fds:
                        self._out_of_fds = True
                        log.warning("accept failed (%s); answering 503 to new clients until descriptors free up", exc)
                    refused = self._refuse_with_spare(listener)
                    if refused is None:
                        return  # the backlog is empty
                    if refused:
                        continue
                # Out of descriptors (or an unexpected error): a level-triggered selector
                # would report the listener again at once, so step out for a moment.
                if not self._out_of_fds:
                    self._out_of_fds = True
                    log.warning("accept failed (%s); pausing accepts, retrying every %.1f s", exc, _ACCEPT_PAUSE_S)
                self._pause_accepting()
                self.loop.call_later(_ACCEPT_PAUSE_S, self._resume_accepting)
                return
            if self._out_of_fds:
                self._out_of_fds = False
                log.info("accepting again (%d connections open)", len(self.sessions))
            if len(self.sessions) >= self.config.max_connections:
                self.stats.refused += 1
                self._refuse(sock)
                continue
            if isinstance(address, tuple):
                self._serve_socket(sock, address[0], address[1])
            else:
                self._serve_socket(sock, "-")
            if gated and self._gate is not None and self._gate.should_defer(len(self.sessions)):
                self._set_accept_state(AcceptState.DEFERRING)  # a peer holds fewer: let it take the next
                return

    def _serve_socket(self, sock: socket.socket, peer: str, peer_port: int = 0) -> None:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (e.g. a Unix socket in tests)
        conn_id = next(self._ids)
        transport: Transport
        if self.tls_context is not None:
            transport = TLSTransport(
                self.loop, sock, self.pool, self.stats, self.tracer, conn_id, peer, self.tls_context, peer_port
            )
        else:
            transport = Transport(
                self.loop, sock, self.pool, self.stats, self.tracer, conn_id, peer, self.config.sendfile, peer_port
            )
        assert self._listener is not None, "listen() first"
        conn = Connection(self.context, transport, conn_id)
        self.stats.accepted += 1
        self.sessions.add(conn)
        conn.start()

    def _refuse_with_spare(self, listener: socket.socket) -> Optional[bool]:
        """Out of descriptors: answer one waiting client 503 using the reserve descriptor.

        Closes the spare, accepts, answers ``503`` with ``Retry-After: 1``, closes and takes
        the spare again, so a new client gets a quick refusal rather than a connect that
        hangs, and the backlog drains instead of keeping the listener readable (no spin).
        Returns True when a client was refused, None when the backlog is empty, False when
        even that failed (no spare, or accept failed again): then the caller pauses.
        """
        if self._spare_fd < 0:
            self._spare_fd = _open_spare()
            return False
        os.close(self._spare_fd)
        self._spare_fd = -1
        try:
            sock, _address = listener.accept()
        except (BlockingIOError, InterruptedError):
            self._spare_fd = _open_spare()
            return None
        except OSError:  # a worker took the descriptor first, or another error
            self._spare_fd = _open_spare()
            return False
        self.stats.refused += 1
        self._refuse(sock, "out of file descriptors")
        self._spare_fd = _open_spare()
        return True

    def _refuse(self, sock: socket.socket, reason: str = "too many connections") -> None:
        """Answer 503 to a connection we will not serve, best effort, and close it.

        Whatever of the request has arrived is read first: a HEAD request gets the head
        alone (RFC 9110 §9.3.2), and unread input would make close() send RST, which
        may destroy the reply in the client's buffer. On a TLS listener there is no
        plain-text answer a client could read, and a handshake costs what the refusal is
        meant to save: the socket is just closed.
        """
        if self.tls_context is not None:
            sock.close()
            return
        refusal = Response.from_error(busy(reason))
        try:
            sock.setblocking(False)
            try:
                received = sock.recv(65536)  # a request usually fits one read
            except (BlockingIOError, InterruptedError):
                received = b""  # nothing yet: the method is unknown, so send the body
            # Refused before a Connection exists, it still gets an id: the next connection number's first.
            request_id = "%s-%d-1" % (self.context.request_id_prefix, next(self._ids))
            sock.send(standalone_response(refusal, received.startswith(b"HEAD "), request_id))
            sock.shutdown(socket.SHUT_WR)
            sock.recv(65536)
        except OSError:
            pass
        sock.close()

    # -- sessions and the pools --------------------------------------------------------

    def _sessions_changed(self) -> None:
        """The table changed (a session was added, replaced or ended): publish the count, maybe accept or stop."""
        open_count = len(self.sessions)
        if self._gate is not None:
            self._gate.publish(open_count)
            if self.accept_state is AcceptState.DEFERRING and not self._gate.should_defer(open_count):
                self._set_accept_state(AcceptState.ACCEPTING)  # accepts wait for the next pass, not this close
        if not open_count and self.stopping:
            self.loop.stop()

    def _on_loop_exception(self, exc: BaseException, context: str) -> None:
        log.error("unhandled exception in %s", context, exc_info=exc)

    # -- stopping --------------------------------------------------------------------

    def shutdown(self, graceful: bool = True) -> None:
        """Stop accepting and close connections; the loop stops when none are left.

        With ``graceful``, requests in flight finish (their responses carry
        ``Connection: close``) for up to ``shutdown_timeout_s`` seconds; idle
        connections close at once. Without it, everything closes now. Loop thread only.
        """
        if not graceful:
            self.context.stopping = True
            self.sessions.changed = self._sessions_changed
            self._close_all()
            self.loop.stop()
            return
        if self.stopping:
            return
        self.context.stopping = True  # responses from now on carry Connection: close
        self.sessions.changed = self._sessions_changed  # the stop ends when the table is empty
        self._stop_deadline = self.loop.time() + self.config.shutdown_timeout_s
        self._stop_listening()
        for session in list(self.sessions.values()):
            session.go_away()
        if not self.sessions:
            self.loop.stop()
            return
        log.info(
            "waiting up to %g s for %d connection(s) to finish", self.config.shutdown_timeout_s, len(self.sessions)
        )
        self.loop.call_at(self._stop_deadline, self._stop_timed_out)

    def _stop_timed_out(self) -> None:
        if self.sessions:
            log.warning("shutdown timeout: closing %d unfinished connection(s)", len(self.sessions))
        self.shutdown(graceful=False)

    def _stop_listening(self) -> None:
        """Answer 503 to connections waiting in the backlog, then close the listener."""
        self._set_accept_state(AcceptState.OFF)
        listener = self._listener
        if listener is None:
            return
        if self._shared_listener:
            # Others (workers, the next process under systemd) serve what waits in the queue.
            listener.close()
            self._listener = None
            return
        for _ in range(self.config.backlog + _ACCEPT_BATCH):  # the backlog is bounded anyway
            try:
                sock, _address = listener.accept()
            except OSError:
                break  # empty (BlockingIOError), or out of descriptors: give up politely
            self._refuse(sock, "server shutting down")
        listener.close()
        self._listener = None

    def _close_all(self) -> None:
        for session in list(self.sessions.values()):
            session.abort()

    def close(self) -> None:
        """Release the listener, connections and the pool (after the loop has stopped).

        Running worker jobs (an upload being written) may finish until the end of a
        graceful stop, or for ``shutdown_timeout_s`` otherwise; queued ones are dropped.
        ``workers_finished`` tells whether all of them did.
        """
        self._set_accept_state(AcceptState.OFF)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._spare_fd >= 0:
            os.close(self._spare_fd)
            self._spare_fd = -1
        self._close_all()
        if self.live is not None:
            self.live.close()
            self.live = None
        if self._stop_deadline is not None:
            wait_s = max(0.0, self._stop_deadline - self.loop.time())
        else:
            wait_s = self.config.shutdown_timeout_s
        start = self.loop.time()
        self.workers_finished = self.pool.shutdown(wait=True, timeout_s=wait_s)
        if not self.workers_finished:
            log.warning("%d worker job(s) still running after the shutdown timeout", self.pool.busy)
        if self.app_pool is not None:
            wait_s = max(0.0, wait_s - (self.loop.time() - start))
            if not self.app_pool.shutdown(wait=True, timeout_s=wait_s):
                self.workers_finished = False
                log.warning("%d application job(s) still running after the shutdown timeout", self.app_pool.busy)
        self.loop.run_ready()  # results of jobs that ended meanwhile: released (a stream's close() runs)
        self.loop.close()
