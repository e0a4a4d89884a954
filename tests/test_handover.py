"""The exchange hands over: a 101 gives the transport (and the bytes behind the request) to another
protocol, whose session takes the connection's place in the server's table; a graceful stop asks
every session, of any protocol, to go away its own way.

The second protocol here is a toy (``Shout``: it echoes its input upper-cased and says ``BYE``
when the server stops), so that only the seam is under test.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest

from conftest import RawClient, recv_until_closed, wait_for
from reactor.connection import ConnState
from reactor.response import Response

BOTH_TRANSPORTS = True


class Shout:
    """A second protocol on the transport: a Session the server's table can hold."""

    label = "shout"

    def __init__(self, ctx, transport, data: bytes) -> None:
        self.ctx = ctx
        self.transport = transport
        self.id = transport.id
        self.first = data  # the bytes that came behind the upgrade request
        self.state = "switching"
        self.events = []  # what the transport told us, in order

    @property
    def peer(self) -> str:
        return self.transport.peer

    def phase(self) -> str:
        return self.state

    def connection_made(self) -> None:
        self.events.append("connection_made")
        self.state = "open"
        self.transport.set_reading(True)
        if self.first:
            self.transport.write(self.first.upper())

    def data_received(self, data: bytes) -> None:
        self.events.append(data)
        if self.state == "open":
            self.transport.write(data.upper())

    def eof_received(self) -> None:
        self.events.append("eof")
        self.close()

    def write_drained(self) -> None:
        pass

    def connection_lost(self, exc: BaseException) -> None:
        self.close()

    def close(self) -> None:
        if self.state != "closed":
            self.state = "closed"
            self.transport.close()
            self.ctx.sessions.discard(self)

    abort = close

    def go_away(self) -> None:
        self.events.append("go_away")
        self.state = "closing"  # the goodbye, then wait for the peer's EOF
        self.transport.write(b"BYE\n")
        self.transport.shutdown_write()


@pytest.fixture
def shouting(make_server, monkeypatch):
    """A server whose ``GET /shout`` (with ``Upgrade: shout``) switches to :class:`Shout`."""

    def make(**config):
        running = make_server(**config)
        app = running.server.app
        original = app.route
        made = []

        def upgrade(transport, data):
            session = Shout(running.server.context, transport, data)
            made.append(session)
            return session

        def route(conn, request):
            head = request.head
            if head.path.startswith("/shout"):
                if "/body" in head.path:
                    request.route = lambda conn, request: Response(101, [("Upgrade", "shout")], upgrade=upgrade)
                elif "/not-101" in head.path:
                    request.route = lambda conn, request: Response(200, [], b"x", upgrade=upgrade)
                else:
                    fields = [("Upgrade", "shout"), ("Connection", "Upgrade")]
                    request.route = lambda conn, request: Response(101, fields, upgrade=upgrade)
                return None
            return original(conn, request)

        monkeypatch.setattr(app, "route", route)
        running.made = made
        return running

    return make


def upgrade_request(running, path: str = "/shout", extra: bytes = b"") -> bytes:
    host = b"127.0.0.1:%d" % running.port
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: "
        + host
        + b"\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\n"
        + extra
    )


def read_head(sock: socket.socket) -> "tuple[bytes, bytes]":
    """The head of one response (up to the empty line), and whatever came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the head was complete: %r" % data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_exactly(sock: socket.socket, size: int, have: bytes = b"") -> bytes:
    while len(have) < size:
        chunk = sock.recv(65536)
        assert chunk, "closed after %r" % have
        have += chunk
    return have


def test_a_101_hands_the_transport_and_the_bytes_behind_it_to_the_new_protocol(shouting):
    running = shouting(status_path="/_status")
    sock = running.connect()
    # Pipelined behind the upgrade: bytes of the new protocol, and what looks like an HTTP
    # request. Both belong to the new protocol; the HTTP parser must not take either.
    behind = b"hello GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(upgrade_request(running, extra=behind))
    head, rest = read_head(sock)
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 101 ")
    names = [line.split(b":")[0].lower() for line in lines[1:]]
    # RFC 9110 §8.6, §15.2: a 1xx has no Content-Length; a switch has no persistence fields.
    assert b"content-length" not in names and b"keep-alive" not in names and b"transfer-encoding" not in names
    assert b"upgrade: shout" in head.lower() and b"connection: upgrade" in head.lower()
    assert read_exactly(sock, len(behind), rest) == behind.upper()
    sock.sendall(b"and more")
    assert read_exactly(sock, len(b"AND MORE")) == b"AND MORE"

    session = running.made[0]
    table = running.call(lambda: dict(running.server.sessions))
    assert table == {session.id: session}  # the new session took the connection's place
    assert running.call(lambda: list(session.events)) == ["connection_made", b"and more"]
    status = json.loads(_get(running, "/_status"))
    assert status["connections"]["by_protocol"] == {"http": 1, "shout": 1}  # the page's own request is http
    assert status["connections"]["open"] == 2
    sock.close()
    wait_for(lambda: running.call(lambda: session.id not in running.server.sessions), what="the session to end")


def _get(running, path: str) -> bytes:
    conn = running.http()
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        conn.close()


def test_an_upgrade_after_earlier_requests_on_a_kept_alive_connection(shouting):
    running = shouting()
    client = RawClient(running.connect())
    assert client.get("/sample.txt").response()[0] == 200
    client.send(upgrade_request(running))
    assert client.buf == b""
    head, rest = read_head(client.sock)
    assert head.startswith(b"HTTP/1.1 101 ")
    client.sock.sendall(b"ok")
    assert read_exactly(client.sock, 2, rest) == b"OK"


def test_a_switch_is_refused_with_503_while_the_server_stops(shouting):
    running = shouting(shutdown_timeout_s=5)
    sock = running.connect()
    request = upgrade_request(running)
    sock.sendall(request[:20])  # mid-head: the connection is not idle, so the stop lets it finish
    wait_for(
        lambda: running.call(lambda: [s.phase() for s in running.server.sessions.values()]) == ["reading-headers"],
        what="the request to begin",
    )
    running.call(lambda: running.server.shutdown(graceful=True))
    sock.sendall(request[20:])
    reply = recv_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 503 ")
    assert b"connection: close" in reply.lower() and b"retry-after: 1" in reply.lower()
    assert running.made == []


@pytest.mark.parametrize(
    "path, why",
    [("/shout/not-101", "an upgrade on a 200"), ("/shout/body", "a switch for a request with a body")],
)
def test_a_switch_a_handler_may_not_make_is_a_500(shouting, path, why):
    running = shouting()
    sock = running.connect()
    request = upgrade_request(running, path)
    if "body" in path:
        request = request.replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\n\r\nhi")
    sock.sendall(request)
    reply = recv_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 500 "), why
    assert running.made == []


def test_a_graceful_stop_says_goodbye_to_a_never_idle_session_and_ends_promptly(shouting):
    running = shouting(shutdown_timeout_s=10)
    sock = running.connect()
    sock.sendall(upgrade_request(running))
    head, rest = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101 ")
    sock.sendall(b"x")
    assert read_exactly(sock, 1, rest) == b"X"
    idle = running.connect()  # an idle HTTP connection beside it: closed at once by the stop
    wait_for(lambda: running.call(lambda: len(running.server.sessions)) == 2, what="both connections")

    goodbye = []

    def client() -> None:  # answers the goodbye as a polite peer does: by closing its side
        if isinstance(sock, ssl.SSLSocket):
            goodbye.append(_tls_goodbye(sock))
        else:
            goodbye.append(recv_until_closed(sock))
            sock.shutdown(socket.SHUT_WR)

    reader = threading.Thread(target=client)
    reader.start()
    started = time.monotonic()
    running.stop(graceful=True)
    elapsed = time.monotonic() - started
    reader.join(10)
    assert goodbye and goodbye[0].startswith(b"BYE\n")
    assert elapsed < 3.0, "the stop waited %.1f s of its 10 s for a session that was never idle" % elapsed
    assert running.made[0].events[-2:] == ["go_away", "eof"]  # goodbye said, then the peer's close awaited
    assert recv_until_closed(idle) == b""
    sock.close()
    idle.close()


def _tls_goodbye(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        data += chunk
        if data.endswith(b"BYE\n"):
            break
    try:
        sock.unwrap()  # our close_notify: the end of our side
    except (ssl.SSLError, OSError):
        sock.close()
    return data


def test_the_upgraded_connection_is_terminal_and_its_timer_stopped(shouting):
    running = shouting()
    seen = []
    original = type(running.server.sessions).replace

    def replace(table, old, new):
        seen.append((old.state, old.timer.when, old.timer.handle))
        original(table, old, new)

    table = running.server.sessions
    table.replace = replace.__get__(table)
    sock = running.connect()
    sock.sendall(upgrade_request(running))
    assert read_head(sock)[0].startswith(b"HTTP/1.1 101 ")
    wait_for(lambda: seen, what="the switch")
    state, when, handle = seen[0]
    assert state is ConnState.UPGRADED and when is None and handle is None
    sock.close()
