"""``--trace``: the lines a reader follows, and that it costs nothing when off."""

from __future__ import annotations

import functools
import http.client
import io
import re
import select
import signal
import socket
import time
from typing import List, Tuple

import pytest

from conftest import recv_until_closed
from reactor.trace import Tracer, job_name

LINE = re.compile(r"^ *(\d+\.\d{3}) (#\d+|--) (.*)$")


def trace_lines(text: str) -> List[Tuple[float, str, str]]:
    """(milliseconds, who, what) for each trace line; other log lines are skipped."""
    found = []
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            found.append((float(match.group(1)), match.group(2), match.group(3)))
    return found


def in_order(lines: List[str], expected: List[str]) -> None:
    """Assert that each expected prefix appears in ``lines``, in this order."""
    position = 0
    for prefix in expected:
        for index in range(position, len(lines)):
            if lines[index].startswith(prefix):
                position = index + 1
                break
        else:
            raise AssertionError("%r not found after line %d in:\n%s" % (prefix, position, "\n".join(lines)))


def test_cli_trace_of_two_keepalive_requests(run_cli, site):
    cli = run_cli("--port", "0", "--trace", "-d", str(site))
    assert cli.port, cli.output
    conn = http.client.HTTPConnection("127.0.0.1", cli.port, timeout=5)
    for path in ("/", "/sample.txt"):
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    conn.close()
    cli.proc.send_signal(signal.SIGTERM)
    output = cli.read_stderr().decode()
    lines = trace_lines(output)
    times = [ms for ms, _who, _what in lines]
    assert times == sorted(times), "timestamps must be monotonic"
    assert ("--",) == tuple(who for _ms, who, what in lines if what.startswith("listening on"))
    mine = [what for _ms, who, what in lines if who == "#1"]
    in_order(
        mine,
        [
            "accepted from 127.0.0.1",
            "deadline idle 30.0s",
            "timer armed, fires in 30.0s",  # settled once the connection waits
            # The first recv is tried before registering: "event read" comes first only if
            # the request had not arrived yet when the connection was accepted.
            "recv ",
            "state idle -> reading-headers",
            "parser RequestHead GET / HTTP/1.1",
            "parser RequestEnd",
            "state reading-headers -> responding",
            "pool submit open_file",
            "pool result open_file",
            "respond 200",
            "state responding -> writing",
            "send ",
            "state writing -> idle",
            "event read",
            "state idle -> reading-headers",
            "parser RequestHead GET /sample.txt HTTP/1.1",
            "pool submit open_file",
            "pool result open_file",
            "respond 200",
            "state writing -> idle",
            "state idle -> closed",
        ],
    )
    # Registered once, after the first request: the read interest then stays through both
    # hand-offs to the pool, its drop put off until the socket is readable (it never was).
    assert [what for what in mine if what.startswith("selector")] == ["selector register read"]
    # Later deadlines move no timer: the one armed for the first idle wait serves them all.
    assert sum(what.startswith("timer armed") for what in mine) == 1, mine
    # The wake-up from the worker shows as a selector event of the loop itself.
    assert any(who == "--" and what.startswith("event read waker") for _ms, who, what in lines)
    # Access-log lines stay as they are, between the trace lines.
    assert '"GET /sample.txt HTTP/1.1" 200' in output


@pytest.fixture
def traced(make_server):
    """A server with --trace whose lines go to a buffer (read on the loop thread)."""

    def make(**overrides):
        running = make_server(trace=True, **overrides)
        buffer = io.StringIO()
        running.server.tracer.stream = buffer
        running.trace = lambda: running.call(buffer.getvalue)
        return running

    return make


def test_header_timeout_and_error_are_traced(traced):
    running = traced(header_timeout_s=0.2)
    with running.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # never finished
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408 ")
    mine = [what for _ms, who, what in trace_lines(running.trace()) if who == "#1"]
    in_order(
        mine,
        [
            "state idle -> reading-headers",
            "deadline reading-headers 0.2s",
            "parser need-data",
            "timer armed, fires in 0.2s",  # earlier than the idle timer: moved when the connection waits
            "timer fired: reading-headers timed out",
            "error 408",
            "respond 408",
            "state reading-headers -> writing",
        ],
    )


def test_parser_error_and_body_events_are_traced(traced):
    running = traced()
    with running.connect() as sock:
        body = b'{"a": 1}'
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: localhost:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (running.port, len(body), body)
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 201 ")
        sock.sendall(b"BAD\x00 / HTTP/1.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400 ")
    mine = [what for _ms, who, what in trace_lines(running.trace()) if who == "#1"]
    in_order(
        mine,
        [
            "parser RequestHead POST /upload HTTP/1.1",
            "state reading-headers -> reading-body",
            "parser BodyData 8 bytes",
            "parser RequestEnd",
            "pool submit store_upload",
            "pool result store_upload",
            "respond 201",
            "error 400",
            "respond 400",
        ],
    )


def test_trace_off_calls_nothing(make_server, monkeypatch):
    """With tracing off no Tracer method runs (no formatting, no calls), and none exists."""
    called = []
    for name in dir(Tracer):
        if not name.startswith("__") and callable(getattr(Tracer, name)):
            monkeypatch.setattr(Tracer, name, lambda *a, _n=name, **k: called.append(_n))
    running = make_server()
    assert running.server.tracer is None
    conn = http.client.HTTPConnection(running.host, running.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert all(c.tracer is None for c in running.call(lambda: list(running.server.sessions.values())))
    conn.close()
    assert called == []


def test_timer_lines_tell_deadlines_from_armed_timers():
    from reactor.loop import EventLoop

    loop = EventLoop()
    try:
        stream = io.StringIO()
        tracer = Tracer(loop, stream)

        class Conn:  # the one attribute Tracer reads; the rest is passed as plain values
            id = 7

        conn = Conn()
        now = time.monotonic()
        fires_at = now + 30
        tracer.timer_armed(conn, "idle", 30.0, fires_at, now + 30)
        tracer.timer_armed(conn, "idle", 60.0, fires_at, now + 60)
        tracer.timer_set(conn, fires_at)
        tracer.timer_fired(conn, "idle", now - 1)
        tracer.timer_fired(conn, "idle", now + 60)
    finally:
        loop.close()
    whats = [what for _ms, _who, what in trace_lines(stream.getvalue())]
    assert whats[0] == "deadline idle 30.0s"
    assert whats[1].startswith("deadline idle 60.0s (armed timer fires first")
    assert whats[2] in ("timer armed, fires in 30.0s", "timer armed, fires in 29.9s")
    assert whats[3] == "timer fired: idle timed out"
    assert whats[4].startswith("timer fired early; re-armed")


def test_job_name_unwraps_partials():
    def open_file():
        pass

    assert job_name(functools.partial(functools.partial(open_file))) == "open_file"
    assert job_name(socket.socket) == "socket"


def test_waker_events_say_what_woke_the_loop():
    from reactor.trace import waker_cause

    class Pool:
        def _finished(self, callback, future):
            pass

    class Static:
        def _revalidated(self, key, future):
            pass

    def done(future):
        pass

    def graceful_stop(name):
        pass

    pool = Pool()
    revalidation = functools.partial(Static()._revalidated, "/sample.txt")
    assert waker_cause([(pool._finished, (done, None))]) == "a worker result"
    assert waker_cause([(pool._finished, (revalidation, None))]) == "a cache revalidation"
    assert waker_cause([(graceful_stop, ("SIGTERM",))]) == "a stop signal"
    both = [(pool._finished, (done, None)), (graceful_stop, ("SIGTERM",)), (pool._finished, (done, None))]
    assert waker_cause(both) == "a worker result, a stop signal"
    assert waker_cause([]) == "its callback already ran in the previous pass"


def test_cli_trace_names_the_stop_signal_on_the_waker(run_cli, site):
    cli = run_cli("--port", "0", "--trace", "-d", str(site))
    assert cli.port, cli.output
    cli.proc.send_signal(signal.SIGTERM)
    output = cli.read_stderr().decode()
    assert "-- event read waker (a stop signal)" in output, output


def test_request_there_at_accept_is_read_without_registering(traced):
    """Transport.start tries the first recv at once: a Connection: close exchange never touches the selector."""
    running = traced()
    request = b"GET /sample.txt HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (
        running.host.encode(),
        running.port,
    )
    clients = []

    def connect_and_send() -> None:
        # On the loop thread, so the server cannot accept before the request is in its kernel.
        sock = socket.create_connection((running.host, running.port), timeout=5)
        sock.sendall(request)
        clients.append(sock)

    for _ in range(2):  # the first one warms the cache, so that the second is answered on the loop
        running.call(connect_and_send)
        with clients[-1] as sock:
            reply = recv_until_closed(sock)
        assert reply.startswith(b"HTTP/1.1 200 ")
    mine = [what for _ms, who, what in trace_lines(running.trace()) if who == "#2"]
    in_order(mine, ["accepted from", "recv ", "respond 200", "send ", "state writing -> closed"])
    assert not [what for what in mine if what.startswith(("selector", "event"))], mine


def test_a_trace_that_cannot_be_written_leaves_the_loop_working():
    """stderr a closed pipe (``--trace | head``, head gone): the lines are dropped, and the
    waker is still drained (its traced drain once raised first, and the loop spun on it)."""
    from reactor.loop import EventLoop

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    loop = EventLoop()
    try:
        Tracer(loop, ClosedPipe())
        ran = []
        loop.call_soon_threadsafe(ran.append, 1)  # writes the waker's byte
        loop.run_once()
        assert ran == [1]
        waker = loop._waker
        assert select.select([waker], [], [], 0)[0] == []  # drained: the next select would sleep
    finally:
        loop.close()
