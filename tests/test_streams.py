"""Streamed bodies: made on the pool they name, framed in one place, counted, and closed once there.

A handler answers with ``Response(stream=IterableStream(iterable, pool=ctx.app_pool))``, as an
application's response will: the blocks are pulled on the application pool only as fast as the
client reads, and ``close()`` runs on that pool too, also when the client goes away.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time

import pytest

from conftest import RawClient, recv_until_closed, wait_for
from reactor import log as logmod
from reactor.response import IterableStream, Response

BOTH_TRANSPORTS = True


class Body:
    """An application iterable that remembers where it was closed, and how often."""

    def __init__(self, blocks, endless: bool = False) -> None:
        self.blocks = list(blocks)
        self.endless = endless
        self.closed_on = []
        self.read_on = set()

    def __iter__(self):
        self.read_on.add(threading.current_thread().name)
        yield from self.blocks
        while self.endless:
            self.read_on.add(threading.current_thread().name)
            yield b"z" * 65536

    def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


CASES = {
    "/empty-chunk": ([], [b"abc", b"", b"def"]),
    "/stated-long": ([("Content-Length", "4")], [b"abc", b"def"]),
    "/stated-exact": ([("Content-Length", "6")], [b"abc", b"def"]),
    "/stated-short": ([("Content-Length", "10")], [b"abc", b"def"]),
}


@pytest.fixture
def streaming(make_server, monkeypatch):
    """A server whose /empty-chunk, /stated-*, /endless answer with streams on the application pool."""
    running = make_server()
    app = running.server.app
    original = app.route
    bodies = []

    def route(conn, request):
        path = request.head.path
        if path in CASES or path == "/endless":
            fields, blocks = CASES.get(path, ([], []))
            body = Body(blocks, endless=path == "/endless")
            bodies.append(body)
            stream = IterableStream(body, pool=conn.ctx.app_pool)
            request.route = lambda conn, request: Response(
                200, [("Content-Type", "text/plain"), *fields], stream=stream
            )
            return None
        return original(conn, request)

    monkeypatch.setattr(app, "route", route)
    running.bodies = bodies
    return running


@pytest.fixture
def access(monkeypatch):
    """The access log's records (peer, started, request-line, status, body bytes, fields), as written."""

    class Recorder:
        enabled = True

        def __init__(self) -> None:
            self.records = []

        def write(self, *record) -> None:
            self.records.append(record)

    recorder = Recorder()
    monkeypatch.setattr(logmod, "access_log", recorder)
    return recorder


def test_an_empty_block_is_skipped_never_read_as_the_end(streaming, access):
    conn = streaming.http()
    conn.request("GET", "/empty-chunk")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked" and response.getheader("Content-Length") is None
    assert response.read() == b"abcdef"
    conn.request("GET", "/sample.txt")  # the same connection: the framing ended where it should
    follow = conn.getresponse()
    assert follow.status == 200 and follow.read() == (streaming.root / "sample.txt").read_bytes()
    conn.close()
    record = next(r for r in access.records if r[2] == "GET /empty-chunk HTTP/1.1")
    assert record[3:5] == (200, 6)  # the body's bytes, without the chunked coding


def test_a_stated_content_length_is_sent_once_and_the_surplus_cut(streaming, caplog):
    caplog.set_level(logging.WARNING, logger="reactor")
    client = RawClient(streaming.connect())
    status, fields, body = client.get("/stated-long").response()
    assert status == 200 and body == b"abcd"
    assert fields["content-length"] == "4" and "transfer-encoding" not in fields
    assert client.get("/sample.txt").response()[0] == 200  # nothing of the surplus reached the wire
    assert any("longer than its Content-Length" in r.getMessage() for r in caplog.records)
    status, fields, body = client.get("/stated-exact").response()
    assert (status, body, fields["content-length"]) == (200, b"abcdef", "6")


def test_a_body_short_of_its_content_length_aborts_the_connection(streaming):
    sock = streaming.connect()
    sock.sendall(b"GET /stated-short HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % streaming.port)
    head, _, body = recv_until_closed(sock).partition(b"\r\n\r\n")
    assert b"content-length: 10" in head.lower() and body == b"abcdef"  # 6 of 10 bytes, then the close


def test_close_runs_once_on_the_streams_pool(streaming):
    conn = streaming.http()
    conn.request("GET", "/empty-chunk")
    assert conn.getresponse().read() == b"abcdef"
    conn.close()
    body = streaming.bodies[0]
    wait_for(lambda: body.closed_on, what="close()")
    assert len(body.closed_on) == 1 and body.closed_on[0].startswith("reactor-app")
    assert body.read_on and all(name.startswith("reactor-app") for name in body.read_on)


def test_close_runs_once_on_the_streams_pool_when_the_client_leaves(streaming):
    sock = streaming.connect()
    sock.sendall(b"GET /endless HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % streaming.port)
    got = b""
    while len(got) < 200_000:
        got += sock.recv(65536)
    sock.close()
    body = streaming.bodies[0]
    wait_for(lambda: body.closed_on, what="close() after the client left")
    wait_for(lambda: not streaming.call(lambda: len(streaming.server.sessions)), what="the connection to end")
    assert len(body.closed_on) == 1 and body.closed_on[0].startswith("reactor-app")


def test_http_1_0_gets_a_close_delimited_body(streaming, access):
    sock = streaming.connect()
    sock.sendall(b"GET /empty-chunk HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    reply = recv_until_closed(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert body == b"abcdef"
    lowered = head.lower()
    assert b"transfer-encoding" not in lowered and b"content-length" not in lowered
    assert b"connection: close" in lowered  # the body ends with the connection, whatever was asked
    wait_for(lambda: any(r[2] == "GET /empty-chunk HTTP/1.0" for r in access.records), what="the log line")
    assert next(r for r in access.records if r[2] == "GET /empty-chunk HTTP/1.0")[4] == 6


def test_head_of_a_stream_sends_no_body(streaming):
    conn = streaming.http()
    conn.request("HEAD", "/stated-exact")
    response = conn.getresponse()
    assert response.getheader("Content-Length") == "6" and response.read() == b""
    conn.request("GET", "/sample.txt")
    assert conn.getresponse().status == 200
    conn.close()
    wait_for(lambda: streaming.bodies[0].closed_on, what="the unsent stream's close()")
    assert streaming.bodies[0].closed_on[0].startswith("reactor-app")


def test_an_item_that_is_not_bytes_aborts_after_the_head(make_server, monkeypatch):
    running = make_server()
    app = running.server.app
    original = app.route

    def route(conn, request):
        if request.head.path == "/bad":
            stream = IterableStream(iter([b"ok", "not bytes"]), pool=conn.ctx.app_pool)
            request.route = lambda conn, request: Response(200, [], stream=stream)
            return None
        return original(conn, request)

    monkeypatch.setattr(app, "route", route)
    conn = running.http()
    conn.request("GET", "/bad")
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        response.read()  # no last-chunk: the client can tell the body is not whole
    conn.close()


def test_close_runs_on_the_streams_pool_when_the_answer_comes_after_the_client_left(make_server, monkeypatch):
    """The stale-result path: the job made a stream, but its connection is gone by the time it is back."""
    running = make_server()
    app = running.server.app
    original = app.route
    release = threading.Event()
    body = Body([b"never sent"])

    def make_stream(pool):
        release.wait(10)
        return IterableStream(body, pool=pool)

    def handler(conn, request):
        pool = conn.ctx.app_pool
        conn.run_in_pool(make_stream, (pool,), lambda stream: Response(200, [], stream=stream), pool=pool)
        return None

    def route(conn, request):
        if request.head.path == "/slow":
            request.route = handler
            return None
        return original(conn, request)

    monkeypatch.setattr(app, "route", route)
    sock = running.connect()
    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % running.port)
    wait_for(lambda: running.call(lambda: [s.phase() for s in running.server.sessions.values()]) == ["responding"])
    # The connection ends while the job runs (reading is off while RESPONDING, so the server
    # ends it here rather than wait for the client's close to be noticed).
    running.call(lambda: [session.abort() for session in list(running.server.sessions.values())])
    assert running.call(lambda: len(running.server.sessions)) == 0
    release.set()
    wait_for(lambda: body.closed_on, what="close() of the stale stream")
    assert len(body.closed_on) == 1 and body.closed_on[0].startswith("reactor-app")


class Slow:
    """An application iterable that makes a block every ``pause_s`` (a stream of events), ``count`` times (0: forever)."""

    def __init__(self, pause_s: float, count: int = 0) -> None:
        self.pause_s = pause_s
        self.count = count
        self.closed_on = []
        self.made = 0

    def __iter__(self):
        while not self.count or self.made < self.count:
            time.sleep(self.pause_s)
            self.made += 1
            yield b"event %d\n" % self.made

    def close(self) -> None:
        self.closed_on.append(threading.current_thread().name)


@pytest.fixture
def slow_streams(make_server, monkeypatch):
    """``/slow?PAUSE,COUNT`` answers with a Slow body on the application pool; ``running.bodies`` holds them."""

    def start(**config):
        running = make_server(**config)
        app = running.server.app
        original = app.route
        running.bodies = []

        def route(conn, request):
            if request.head.path.startswith("/slow?"):
                pause, count = request.head.path.partition("?")[2].split(",")
                body = Slow(float(pause), int(count))
                running.bodies.append(body)
                stream = IterableStream(body, pool=conn.ctx.app_pool)
                request.route = lambda conn, request: Response(200, [("Content-Type", "text/plain")], stream=stream)
                return None
            return original(conn, request)

        monkeypatch.setattr(app, "route", route)
        return running

    return start


def test_a_stream_that_takes_its_time_is_not_a_client_that_stopped_reading(slow_streams):
    """The send timeout is for a client that does not read; waiting for the next block is not that (fails before)."""
    running = slow_streams(send_timeout_s=0.3)
    conn = running.http()
    conn.request("GET", "/slow?0.2,4")
    response = conn.getresponse()
    assert response.read() == b"".join(b"event %d\n" % n for n in range(1, 5))  # 0.8 s: two send timeouts
    conn.close()


def test_a_client_that_leaves_while_a_block_is_made_is_noticed_at_once(slow_streams):
    """The socket is watched for EOF while the application makes a block: close() runs when that block returns.

    Without the watch, the disconnect shows only when a later send fails: two more blocks (fails before).
    """
    running = slow_streams()
    sock = running.connect()
    sock.sendall(b"GET /slow?0.4,0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % running.port)
    got = b""
    while b"event 1" not in got:
        got += sock.recv(65536)
    sock.close()
    body = running.bodies[0]
    wait_for(lambda: body.closed_on, timeout_s=5, what="close() after the client left")
    assert body.made <= 2, body.made  # the block under way when it left, no more
    assert len(body.closed_on) == 1 and body.closed_on[0].startswith("reactor-app")
