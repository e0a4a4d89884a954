"""Faults: bugs injected into handlers, and clients that reset, half-close or vanish.

A bug in the handling of one connection is logged with its traceback, answered 500
if nothing was sent yet, and costs only that connection: the next client is served.
A client that misbehaves at the TCP level is normal life, not a bug: it must leave
no traceback (nor any ERROR record) in the log.
"""

from __future__ import annotations

import http.client
import logging
import select
import selectors
import socket
import struct
import threading

import pytest

import reactor.connection
from conftest import RawClient, recv_until_closed, wait_for
from reactor.connection import Connection
from reactor.handlers import static, upload
from reactor.loop import EventLoop, Waker
from reactor.transport import Transport

JSON_ACCESS_LOG = True  # every response these tests provoke must log one line json.loads reads (conftest)

LARGE_FILE_BYTES = 8 * 1024 * 1024


def fail_once(real, exc=None):
    """Wrap ``real`` so that its first call raises (a RuntimeError by default)."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise exc if exc is not None else RuntimeError("injected fault")
        return real(*args, **kwargs)

    wrapper.calls = calls  # type: ignore[attr-defined]
    return wrapper


def get(srv, target: str = "/notes.txt"):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("GET", target)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def tracebacks(caplog):
    return [r for r in caplog.records if r.exc_info]


def all_closed(srv):
    wait_for(lambda: not srv.call(lambda: len(srv.server.sessions)), what="all connections to close")


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="reactor")
    return caplog


# -- bugs cost one connection ------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    ["handle on the loop thread", "worker job", "result callback on the loop thread"],
)
def test_exception_in_a_handler_is_500_and_the_next_connection_is_served(make_server, monkeypatch, logs, where):
    if where == "handle on the loop thread":
        monkeypatch.setattr(static.StaticFiles, "get", fail_once(static.StaticFiles.get))
    elif where == "worker job":
        monkeypatch.setattr(static, "open_file", fail_once(static.open_file))
    else:
        monkeypatch.setattr(static.StaticFiles, "_respond", fail_once(static.StaticFiles._respond))
    srv = make_server()
    response, body = get(srv)
    assert response.status == 500
    assert response.getheader("Connection") == "close"
    assert b"injected" not in body  # no internals leak to the client
    logged = tracebacks(logs)
    assert len(logged) == 1 and "injected fault" in str(logged[0].exc_info[1])
    response, body = get(srv)
    assert response.status == 200
    assert body == (srv.root / "notes.txt").read_bytes()
    all_closed(srv)


def test_failure_while_answering_the_500_closes_only_that_connection(make_server, monkeypatch, logs):
    real = reactor.connection.field_lines
    calls = []

    def broken_twice(*args):
        calls.append(args)
        if len(calls) <= 2:
            raise RuntimeError("injected fault in the serializer")
        return real(*args)

    monkeypatch.setattr(reactor.connection, "field_lines", broken_twice)
    srv = make_server()
    bystander = RawClient(srv.connect())  # another client, mid-request, must not notice
    bystander.send(b"GET /notes.txt HTTP/1.1\r\n")
    victim = srv.connect()
    victim.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
    assert recv_until_closed(victim) == b""  # closed without a byte: nothing sane to send
    assert len(calls) == 2
    bystander.send(b"Host: 127.0.0.1:%d\r\n\r\n" % srv.port)
    assert bystander.response()[0] == 200
    response, _body = get(srv)
    assert response.status == 200
    assert len(tracebacks(logs)) >= 1


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "pool-blocks"])
def test_exception_after_the_head_was_sent_drops_the_connection(make_server, monkeypatch, logs, sendfile):
    srv = make_server(sendfile=sendfile)
    (srv.root / "big.bin").write_bytes(b"x" * LARGE_FILE_BYTES)
    if sendfile:
        monkeypatch.setattr(Transport, "_send_file", fail_once(Transport._send_file))
    else:
        monkeypatch.setattr(Transport, "_make_block", fail_once(Transport._make_block))
    sock = srv.connect()
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
    data = recv_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert len(data) < LARGE_FILE_BYTES  # cut short: the client can tell from Content-Length
    assert len(tracebacks(logs)) == 1
    response, _body = get(srv, "/big.bin")
    assert response.status == 200
    all_closed(srv)


def test_exception_in_a_timeout_callback_is_contained(make_server, monkeypatch, logs):
    monkeypatch.setattr(Connection, "_fail", fail_once(Connection._fail))
    srv = make_server(header_timeout_s=0.2)
    sock = srv.connect()
    sock.sendall(b"GET / HTTP/1.1\r\n")
    status, fields, _body = RawClient(sock).response()
    assert status == 500  # the 408 path broke; the connection still gets an answer
    assert fields["connection"] == "close"
    assert len(tracebacks(logs)) == 1
    assert get(srv)[0].status == 200


# -- clients that reset, half-close or vanish: no tracebacks ---------------------------------------


def reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def upload_head(port: int, length: int) -> bytes:
    return (
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % (port, length)
    )


def assert_quiet_and_serving(srv, logs):
    all_closed(srv)
    noisy = [r for r in logs.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert get(srv)[0].status == 200
    assert list((srv.root / "uploads").glob("upload_*")) == []


def test_reset_mid_body(make_server, logs):
    srv = make_server()
    sock = srv.connect()
    sock.sendall(upload_head(srv.port, 1000) + b'{"partial": ')
    wait_for(lambda: srv.call(lambda: any(c.request for c in srv.server.sessions.values())), what="the head")
    reset(sock)
    assert_quiet_and_serving(srv, logs)


def test_half_close_mid_body_gets_400_and_no_traceback(make_server, logs):
    srv = make_server()
    sock = srv.connect()
    sock.sendall(upload_head(srv.port, 1000) + b'{"partial": ')
    sock.shutdown(socket.SHUT_WR)
    client = RawClient(sock)
    assert client.response()[0] == 400
    assert client.at_eof()
    assert_quiet_and_serving(srv, logs)


def test_disconnect_mid_headers(make_server, logs):
    srv = make_server()
    for close in (socket.socket.close, reset):
        sock = srv.connect()
        sock.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: 127.")
        close(sock)
    assert_quiet_and_serving(srv, logs)


def test_half_close_after_a_complete_request_still_gets_the_response(make_server, logs):
    srv = make_server()
    sock = srv.connect()
    sock.sendall(b"GET /notes.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
    sock.shutdown(socket.SHUT_WR)  # like `printf ... | nc`
    client = RawClient(sock)
    status, _fields, body = client.response()
    assert status == 200 and body == (srv.root / "notes.txt").read_bytes()
    assert client.at_eof()
    assert_quiet_and_serving(srv, logs)


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "pool-blocks"])
def test_reset_mid_response(make_server, logs, sendfile):
    srv = make_server(sendfile=sendfile)
    (srv.root / "big.bin").write_bytes(b"x" * LARGE_FILE_BYTES)
    sock = srv.connect()
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    reset(sock)
    assert_quiet_and_serving(srv, logs)


def test_reset_while_the_upload_is_on_the_pool(make_server, monkeypatch, logs):
    started, release = threading.Event(), threading.Event()
    stored = []

    def slow_store(directory, body, quota=None):
        started.set()
        assert release.wait(10)
        stored.append(body)
        raise upload.HTTPError(400, "not stored: the test only needs the job to finish")

    monkeypatch.setattr(upload, "store_upload", slow_store)
    srv = make_server()
    body = b'{"a": 1}'
    sock = srv.connect()
    client = RawClient(sock)  # a first request, so that the socket is in the selector when the upload comes
    assert client.send(b"GET /notes.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port).response()[0] == 200
    sock.sendall(upload_head(srv.port, len(body)) + body)
    assert started.wait(10)

    def registered():
        return srv.call(lambda: [c.transport._mask for c in srv.server.sessions.values()])

    assert registered() == [selectors.EVENT_READ]  # the drop of the read interest is put off...
    reset(sock)
    wait_for(lambda: registered() == [0], what="the reset to drop it")  # ...until the socket turns readable
    release.set()
    wait_for(lambda: stored, what="the job to finish")
    assert_quiet_and_serving(srv, logs)


def test_reset_of_an_idle_keep_alive_connection(make_server, logs):
    srv = make_server()
    sock = srv.connect()
    client = RawClient(sock)
    assert client.send(b"GET /notes.txt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port).response()[0] == 200
    reset(sock)
    assert_quiet_and_serving(srv, logs)


# -- the loop itself ------------------------------------------------------------------------------


def test_wake_up_racing_with_drain_is_not_lost():
    """A wake() between the loop's drain and its next select must still wake it."""
    waker = Waker()
    real_recv = waker._recv
    raced = []

    class RacingSocket:
        def recv(self, size):
            if not raced:  # another thread wakes the loop while it is draining
                raced.append(True)
                waker.wake()
            return real_recv.recv(size)

    try:
        waker.wake()
        waker._recv = RacingSocket()  # type: ignore[assignment]
        waker.drain()
        waker._recv = real_recv
        waker.wake()  # a later wake-up must reach select
        assert select.select([waker], [], [], 0)[0] == [waker]
    finally:
        waker._recv = real_recv
        waker.close()


def test_callbacks_from_other_threads_always_run():
    loop = EventLoop()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:

        def producer(errors):
            for _ in range(2000):
                done = threading.Event()
                loop.call_soon_threadsafe(done.set)
                if not done.wait(5):
                    errors.append("a wake-up was lost")
                    return

        errors: list = []
        producers = [threading.Thread(target=producer, args=(errors,)) for _ in range(3)]
        for p in producers:
            p.start()
        for p in producers:
            p.join(30)
        assert errors == []
    finally:
        loop.stop()
        thread.join(5)
        loop.close()
